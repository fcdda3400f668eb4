"""Procedural scene generator, sampler and evaluation-protocol selection."""
import math

import pytest
import torch

from lrm4d_ros.cameras import invert_pose
from lrm4d_ros.data.generator import STAMP_BASE_NS, SceneConfig, all_views, generate, sample_scene
from lrm4d_ros.data.primitives import INTERSECT
from lrm4d_ros.data.protocols import protocol_indices, split_protocol
from lrm4d_ros.data.primitives import local_extent
from lrm4d_ros.data.raycast import NO_PRIMITIVE, render_views, surface_ids
from lrm4d_ros.data.sampler import VAL_SEED_START, SceneSampler, collate_list
from lrm4d_ros.views import ViewSet

SMALL = SceneConfig(frames=3, cameras=4, height=48, width=64, rig_kinds=("orbit",), ground_prob=0.0,
                    backdrop_prob=0.0)


def reproject_errors(views: ViewSet, a: int, b: int):
    """Unproject view a's depth, project into view b; relative depth errors where b sees the same surface."""
    H, W = views.height, views.width
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                          indexing="ij")
    z = views.depths[a].double()
    ok = z > 0
    pix = torch.stack([u[ok], v[ok], torch.ones_like(u[ok])], -1)
    cam = (torch.linalg.inv(views.Ks[a]) @ pix.T).T * z[ok][:, None]
    world = (views.camtoworlds[a, :3, :3] @ cam.T).T + views.camtoworlds[a, :3, 3]
    w2c = invert_pose(views.camtoworlds[b])
    pb = (w2c[:3, :3] @ world.T).T + w2c[:3, 3]
    uv = (views.Ks[b] @ (pb / pb[:, 2:]).T).T[:, :2].round().long()
    inside = (pb[:, 2] > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    zb = views.depths[b].double()[uv[inside, 1], uv[inside, 0]]
    rel = (zb - pb[inside, 2]).abs() / pb[inside, 2]
    return rel, int(inside.sum())


def test_depth_reprojects_between_views_of_every_primitive_kind():
    for kind in ("sphere", "box", "cylinder", "cone", "capsule", "torus"):
        cfg = SceneConfig(frames=1, cameras=8, height=96, width=96, num_primitives=(3, 3), primitive_kinds=(kind,),
                          motion_kinds=("static",), rig_kinds=("orbit",), ground_prob=0.0, backdrop_prob=0.0)
        views = generate(3, cfg)
        rel, inside = reproject_errors(views, 0, 1)
        visible = rel < 0.05  # the rest is occluded in view b (or falls on a silhouette edge)
        assert inside > 300, kind
        assert visible.float().mean() > 0.6, (kind, float(visible.float().mean()))
        assert rel[visible].median() < 0.01, kind


def test_surface_ids_name_the_primitive_under_each_pixel():
    cfg = SceneConfig(frames=2, cameras=3, height=40, width=48, num_primitives=(3, 3), rig_kinds=("orbit",),
                      ground_prob=0.0, backdrop_prob=0.0)
    scene = sample_scene(5, cfg)
    cams, stamps = all_views(scene)
    views = render_views(scene, cams, stamps, cfg.height, cfg.width)
    ids = surface_ids(scene, cams, stamps, cfg.height, cfg.width, max_rays=2 * cfg.height * cfg.width)  # 3 chunks
    assert ids.shape == views.depths.shape and ids.dtype == torch.int64
    assert torch.equal(ids >= 0, views.depths > 0)  # no ground or backdrop: every hit is on a primitive
    assert set(ids.unique().tolist()) <= {NO_PRIMITIVE, 0, 1, 2} and (ids >= 0).sum() > 100
    # Each hit lies inside the bounding box of the primitive its id names, at its pose at the view's time.
    R, c, sc = scene.motion.at((stamps - scene.start_ns).double() / scene.duration_ns)
    H, W = cfg.height, cfg.width
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    for k in range(len(cams)):
        hit = ids[k] >= 0
        pix = torch.stack([u[hit], v[hit], torch.ones_like(u[hit])], -1)
        cam = (torch.linalg.inv(views.Ks[k]) @ pix.T).T * views.depths[k][hit].double()[:, None]
        world = cam @ views.camtoworlds[k, :3, :3].T + views.camtoworlds[k, :3, 3]
        p = ids[k][hit]
        local = ((world - c[k, p])[:, None, :] @ R[k, p])[:, 0] / sc[k, p]  # object space of primitive p
        extent = torch.stack([local_extent(scene.kinds[i], scene.params[i]) for i in p.tolist()]).double()
        assert (local.abs() <= extent * 1.02 + 1e-3).all(), k


def test_sphere_depth_matches_closed_form():
    cfg = SceneConfig(frames=1, cameras=2, height=40, width=40, num_primitives=(1, 1), primitive_kinds=("sphere",),
                      motion_kinds=("static",), ground_prob=0.0, backdrop_prob=0.0)
    scene = sample_scene(11, cfg)
    r = 0.3
    scene.motion.scale0[:] = r
    cams, stamps = all_views(scene)
    views = render_views(scene, cams, stamps, 40, 40)
    centre = scene.motion.c0[0]
    for i in range(len(views)):
        Kinv = torch.linalg.inv(views.Ks[i])
        R, o = views.camtoworlds[i, :3, :3], views.camtoworlds[i, :3, 3]
        v, u = torch.meshgrid(torch.arange(40.0, dtype=torch.float64), torch.arange(40.0, dtype=torch.float64),
                              indexing="ij")
        d = (R @ (Kinv @ torch.stack([u, v, torch.ones_like(u)], -1).reshape(-1, 3).T)).T  # z-depth rays
        oc = o - centre
        a, b, c = (d * d).sum(-1), d @ oc, oc @ oc - r * r
        disc = b * b - a * c
        t = torch.where(disc >= 0, (-b - disc.clamp_min(0).sqrt()) / a, torch.zeros_like(a)).reshape(40, 40)
        hit = disc.reshape(40, 40) > 1e-3 * a.reshape(40, 40)  # leave out grazing pixels
        assert hit.sum() > 20
        torch.testing.assert_close(views.depths[i].double()[hit], t[hit], atol=1e-4, rtol=1e-5)
        assert (views.alphas[i][disc.reshape(40, 40) < -1e-3] == 0).all()
        # Background pixels keep the configured colour exactly.
        assert (views.images[i][views.alphas[i] == 0] == 1.0).all()


def test_same_seed_same_pixels_and_stamps_are_absolute():
    a, b = generate(7, SMALL), generate(7, SMALL)
    assert torch.equal(a.images, b.images) and torch.equal(a.depths, b.depths)
    assert torch.equal(a.stamps_ns, b.stamps_ns) and torch.equal(a.camtoworlds, b.camtoworlds)
    c = generate(8, SMALL)
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (12, 48, 64, 3) and a.images.dtype == torch.float32
    assert a.camera_names == ["cam0", "cam1", "cam2", "cam3"]
    assert int(a.stamps_ns.min()) >= STAMP_BASE_NS
    T_C = a.stamps_ns.reshape(3, 4)
    assert (T_C[1:] > T_C[:-1]).all()  # each camera's stamps increase
    assert len(set(T_C[0].tolist())) == 4  # cameras are not synchronised
    torch.testing.assert_close(a.Ks[0, :2, 2], torch.tensor([31.5, 23.5], dtype=torch.float64))
    # Poses are rigid and optical: z forward points at the content near the origin.
    R = a.camtoworlds[:, :3, :3]
    torch.testing.assert_close(R.transpose(1, 2) @ R, torch.eye(3, dtype=torch.float64).expand(12, 3, 3))
    to_origin = torch.nn.functional.normalize(-a.camtoworlds[:, :3, 3], dim=-1)
    assert ((to_origin * R[:, :, 2]).sum(-1) > 0.95).all()


def test_every_motion_and_rig_kind_renders_moving_content():
    for i, (motion, rig) in enumerate([("rigid", "moving"), ("articulated", "workcell"), ("scaling", "shell"),
                                       ("static", "canonical")]):
        cfg = SceneConfig(frames=3, cameras=4, height=32, width=32, motion_kinds=(motion,), rig_kinds=(rig,),
                          num_primitives=(3, 5))
        scene = sample_scene(100 + i, cfg)
        R0, c0, s0 = scene.motion.at(torch.tensor([0.0]))
        R1, c1, s1 = scene.motion.at(torch.tensor([1.0]))
        moved = (c1 - c0).abs().max() + (R1 - R0).abs().max() + (s1 - s0).abs().max()
        assert (moved > 1e-3) == (motion != "static"), motion
        if motion == "scaling":
            assert (s1 - s0).abs().max() > 1e-3
        views = generate(100 + i, cfg)
        assert views.alphas.mean() > 0.01 and torch.isfinite(views.depths).all()
        if rig == "workcell":
            assert views.alphas.min() > 0 or scene.ground is not None
        moving = (views.camtoworlds[::4] - views.camtoworlds[0]).abs().max() > 1e-6
        assert bool(moving) == (rig == "moving"), rig


def test_box_intersection_closed_form():
    o = torch.tensor([[0.0, 0.0, -5.0], [3.0, 0.5, 0.2], [0.0, 3.0, 0.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [-2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    t, n = INTERSECT["box"](o, d)
    torch.testing.assert_close(t[:2], torch.tensor([4.0, 1.0]))
    assert math.isinf(t[2])
    torch.testing.assert_close(n[:2], torch.tensor([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]))


def test_sampler_shapes_and_disjoint_splits():
    cfg = SceneConfig(frames=4, cameras=3, height=32, width=32, num_primitives=(1, 3))
    train = SceneSampler(cfg, num_inputs=5, num_targets=6, split="train")
    it = iter(train)
    items = [next(it) for _ in range(2)]
    for item in items:
        assert item["inputs"].images.shape == (5, 32, 32, 3)
        assert item["targets"].images.shape == (6, 32, 32, 3)
        assert (item["inputs"].stamps_ns[1:] >= item["inputs"].stamps_ns[:-1]).all()
        # Inputs are stratified: 5 inputs over 4 frames cover every frame.
        frames = {int(s) for s in item["inputs"].stamps_ns}
        assert len(frames) == 5
    assert [x["seed"] for x in items] == [0, 1]
    val = SceneSampler(cfg, num_inputs=5, num_targets=6, split="val", num_scenes=3)
    val_seeds = [x["seed"] for x in val]
    assert val_seeds == [VAL_SEED_START, VAL_SEED_START + 1, VAL_SEED_START + 2]
    assert not set(val_seeds) & set(train_seed for train_seed, _ in zip(train.seeds(), range(1000)))
    # The same seed gives the same pixels whichever split object draws it.
    again = SceneSampler(cfg, num_inputs=5, num_targets=6, first_seed=1).sample(1)
    assert torch.equal(again["targets"].images, items[1]["targets"].images)
    with pytest.raises(ValueError):
        SceneSampler(cfg, num_inputs=13, num_targets=2)


def test_sampler_workers_take_distinct_seeds():
    cfg = SceneConfig(frames=2, cameras=2, height=16, width=16, num_primitives=(1, 2))
    ds = SceneSampler(cfg, num_inputs=2, num_targets=2, split="val", num_scenes=4)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_list)
    seeds = sorted(x["seed"] for batch in loader for x in batch)
    assert seeds == [VAL_SEED_START + i for i in range(4)]


def _grid_viewset(T, C, shuffle_seed=0):
    g = torch.Generator().manual_seed(shuffle_seed)
    stamps = (10**18 + torch.arange(T)[:, None] * 10**8 + torch.randint(0, 10**6, (T, C), generator=g))
    cams = torch.arange(C).repeat(T)
    perm = torch.randperm(T * C, generator=g)
    V = T * C
    return ViewSet(images=torch.zeros(V, 2, 2, 3), Ks=torch.eye(3, dtype=torch.float64).expand(V, 3, 3),
                   camtoworlds=torch.eye(4, dtype=torch.float64).expand(V, 4, 4),
                   stamps_ns=stamps.reshape(-1)[perm], camera_ids=cams[perm],
                   camera_names=[f"cam{i}" for i in range(C)])


def _frame_cam(views, idx):
    frame = (views.stamps_ns[idx] - 10**18) // 10**8
    return list(zip(frame.tolist(), views.camera_ids[idx].tolist()))


def test_protocols_pick_the_documented_views():
    views = _grid_viewset(6, 5)
    inp, tgt = protocol_indices(views, "alternating")
    assert _frame_cam(views, inp) == [(k, k % 5) for k in range(6)]
    assert sorted(_frame_cam(views, tgt)) == sorted((k, c) for k in range(6) for c in range(5) if c != k % 5)
    inp, tgt = protocol_indices(views, "novel-camera")
    assert _frame_cam(views, inp) == [(k, 2 * (k % 3)) for k in range(6)]
    assert sorted(_frame_cam(views, tgt)) == sorted((k, c) for k in range(6) for c in (1, 3))
    i_views, t_views = split_protocol(views, "novel-camera")
    assert len(i_views) == 6 and len(t_views) == 12
    with pytest.raises(ValueError, match="same number"):
        protocol_indices(views.select(list(range(29))), "alternating")
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol_indices(views, "random")


def test_supersampling_keeps_centre_depths_and_averages_subpixels():
    cfg = SceneConfig(frames=1, cameras=2, height=24, width=32, num_primitives=(2, 2), rig_kinds=("orbit",),
                      motion_kinds=("static",), ground_prob=0.0, backdrop_prob=0.0)
    scene = sample_scene(5, cfg)
    cams, stamps = all_views(scene)
    point = render_views(scene, cams, stamps, 24, 32)
    smooth = render_views(scene, cams, stamps, 24, 32, supersample=3)
    fine = render_views(scene, cams, stamps, 72, 96)
    both = (point.depths > 0) & (smooth.depths > 0)
    assert torch.equal(point.depths > 0, smooth.depths > 0)
    torch.testing.assert_close(smooth.depths[both], point.depths[both], atol=1e-4, rtol=1e-5)
    pooled = fine.images.reshape(2, 24, 3, 32, 3, 3).mean((2, 4))
    torch.testing.assert_close(smooth.images, pooled, atol=1e-5, rtol=0)
    edge = (smooth.alphas > 0) & (smooth.alphas < 1)
    assert edge.any() and torch.equal(smooth.alphas == 1, fine.alphas.reshape(2, 24, 3, 32, 3).amin((2, 4)) == 1)
    with pytest.raises(ValueError, match="odd"):
        render_views(scene, cams, stamps, 24, 32, supersample=2)


# --- robot-like scenes, the fast caster, the sampler's input draws and mixes -------------------------------------

from dataclasses import replace  # noqa: E402

from lrm4d_ros.data.eval_scenes import (EVAL_SCENES, PROTOCOL_VAL_FIRST_SEED, ROBOT_CAMERAS, ROBOT_EVAL_SCENES,  # noqa: E402
                                        ROBOT_FRAMES, ROBOT_PROTOCOL_VAL_FIRST_SEED, render_robot_scenes)
from lrm4d_ros.data.generator import robot_config  # noqa: E402
from lrm4d_ros.data.rigs import eye_positions  # noqa: E402
from lrm4d_ros.data.sampler import (SceneMix, MixEntry, rig_inputs, robot_mix, span_targets,  # noqa: E402
                                    stream_inputs, stream_window)
from lrm4d_ros.data.textures import Texture, lambert  # noqa: E402
from lrm4d_ros.selection import select_views  # noqa: E402


def robot_scene(seed, layout="tabletop", rig="poles", **kw):
    cfg = robot_config((layout,), (rig,), **{**dict(frames=3, cameras=4, height=48, width=64), **kw})
    return sample_scene(seed, cfg), cfg


def render_with_ids(scene, height, width, caster, **kw):
    """All views of `scene` and the primitive id under each pixel centre."""
    cams, stamps = all_views(scene)
    return (render_views(scene, cams, stamps, height, width, caster=caster, **kw),
            surface_ids(scene, cams, stamps, height, width, caster=caster))


def pixel_dirs(views, i):
    """World directions (H,W,3) float64 with camera-z component 1: the z-depth is their ray parameter."""
    H, W = views.height, views.width
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    P = views.camtoworlds[i, :3, :3] @ torch.linalg.inv(views.Ks[i])
    return torch.stack([u, v, torch.ones_like(u)], -1) @ P.T


@pytest.mark.parametrize("caster", ["torch", "numba"])
def test_infinite_ground_depth_is_the_plane_and_reaches_the_horizon(caster):
    scene, cfg = robot_scene(21, "workcell", "orbit")
    views, ids = render_with_ids(replace(scene, backdrop=None), 48, 64, caster)
    far = 0.0
    for i in range(len(views)):
        d, o = pixel_dirs(views, i), views.camtoworlds[i, :3, 3]
        down, up = (ids[i] == NO_PRIMITIVE) & (d[..., 2] < -1e-6), (ids[i] == NO_PRIMITIVE) & (d[..., 2] > 0)
        assert down.sum() > 50
        t = (0.0 - o[2]) / d[..., 2]
        torch.testing.assert_close(views.depths[i].double()[down], t[down], rtol=2e-5, atol=1e-5)
        assert (views.alphas[i][down] == 1).all()
        assert (views.depths[i][up] == 0).all() and (views.alphas[i][up] == 0).all()
        assert (views.images[i][up] == scene.background).all()  # the sky
        far = max(far, float(t[down].max()))
    assert far > 3 * scene.backdrop_radius  # a bounded ground would end at the backdrop radius


@pytest.mark.parametrize("caster", ["torch", "numba"])
def test_table_top_depth_is_the_analytic_plane(caster):
    scene, cfg = robot_scene(4, "tabletop", "poles", frames=2)
    top = scene.roles.index("table.top")
    R, c, s = scene.motion.at(torch.tensor([0.0]))
    height = float(c[0, top, 2] + s[0, top, 2])  # the slab's upper face z
    views, ids = render_with_ids(scene, 48, 64, caster)
    checked = 0
    for i in range(len(views)):
        d, o = pixel_dirs(views, i), views.camtoworlds[i, :3, 3]
        t = (height - o[2]) / d[..., 2]
        local = ((o + t[..., None] * d) - c[0, top]) @ R[0, top]  # in the slab's frame
        inside = (local[..., 0].abs() < s[0, top, 0] - 0.02) & (local[..., 1].abs() < s[0, top, 1] - 0.02)
        seen = inside & (ids[i] == top) & (t > 0)
        torch.testing.assert_close(views.depths[i].double()[seen], t[seen], rtol=2e-5, atol=1e-5)
        checked += int(seen.sum())
    assert checked > 300


def test_fast_caster_matches_the_reference_on_every_kind():
    cases = [SceneConfig(frames=2, cameras=3, height=40, width=48, num_primitives=(3, 3), primitive_kinds=(k,),
                         rig_kinds=("orbit",), ground_prob=1.0, backdrop_prob=1.0) for k in
             ("sphere", "box", "cylinder", "cone", "capsule", "torus")]
    cases += [robot_config((layout,), (rig,), frames=2, cameras=3, height=40, width=48, backdrop_prob=1.0)
              for layout, rig in (("tabletop", "head"), ("workcell", "poles"), ("mobile", "orbit"))]
    for seed, cfg in enumerate(cases):
        scene = sample_scene(seed, cfg)
        ref, ids_ref = render_with_ids(scene, 40, 48, "torch", supersample=3)
        fast, ids_fast = render_with_ids(scene, 40, 48, "numba", supersample=3)
        assert (ids_ref == ids_fast).float().mean() > 0.995, cfg.primitive_kinds
        both = (ref.depths > 0) & (fast.depths > 0) & (ids_ref == ids_fast)
        assert torch.equal(ref.depths > 0, fast.depths > 0) or ((ref.depths > 0) != (fast.depths > 0)).float().mean() < 2e-3
        rel = ((ref.depths - fast.depths).abs() / ref.depths.clamp_min(1e-6))[both]
        assert rel.quantile(0.99) < 1e-5, (seed, float(rel.max()))
        assert (ref.images - fast.images).abs().mean() < 2e-3, seed
        assert (ref.alphas - fast.alphas).abs().mean() < 2e-3, seed


def test_filtered_texture_is_the_footprint_average():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(200, 3, generator=g, dtype=torch.float64) * 6 - 3
    zero = torch.zeros_like(p)
    for kind in ("checkers", "stripes", "noise"):
        tex = Texture(kind, torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.7, 0.5]]), 2.0,
                      torch.nn.functional.normalize(torch.tensor([1.0, 0.4, 0.0]), dim=0),
                      torch.nn.functional.normalize(torch.randn(3, 3, generator=g), dim=1), torch.rand(3, generator=g))
        # A zero footprint is the point sample (stripes: except exactly on an edge).
        same = (tex.filtered(p, zero, zero) - tex(p)).abs().amax(-1) < 1e-6
        assert same.float().mean() >= (0.99 if kind == "stripes" else 1.0), kind
        # A footprint of many periods averages to the colours' midpoint.
        huge = tex.filtered(p, torch.tensor([40.0, 0, 0]).expand_as(p), torch.tensor([0, 40.0, 0]).expand_as(p))
        torch.testing.assert_close(huge, torch.tensor([0.5, 0.45, 0.4], dtype=torch.float64).expand_as(huge),
                                   atol=0.02, rtol=0)
    # Checkers and stripes: the box average over a footprint along their axes, against 401×401 point samples of it.
    for kind, along, across in (("checkers", [1.0, 0, 0], [0, 1.0, 0]), ("stripes", [1.0, 0.4, 0], [-0.4, 1.0, 0])):
        tex.kind = kind
        along, across = (torch.nn.functional.normalize(torch.tensor([x]), dim=1) for x in (along, across))
        for w in (0.05, 0.3, 1.7):
            ddx, ddy = w * along, 0.6 * w * across
            centre = torch.tensor([[0.37, -1.21, 0.5]])
            a = torch.linspace(-0.5, 0.5, 401)
            grid = centre + a[:, None, None] * ddx + a[None, :, None] * ddy
            mean = tex(grid.reshape(-1, 3)).mean(0)
            torch.testing.assert_close(tex.filtered(centre, ddx, ddy)[0], mean, atol=4e-3, rtol=0)


def test_far_ground_does_not_alias():
    """At 1 ray per pixel the filtered ground is close to a 9×9 supersampled rendering near the horizon, where
    point samples of the same texture are not."""
    scene, cfg = robot_scene(3, "mobile", "orbit", frames=1, cameras=2)
    scene = replace(scene, backdrop=None, ground=replace(scene.ground, kind="checkers", freq=3.0))
    cams, stamps = all_views(scene)
    one = render_views(scene, cams, stamps, 48, 64, caster="numba")
    ref = render_views(scene, cams, stamps, 48, 64, supersample=9, caster="numba")
    ids = surface_ids(scene, cams, stamps, 48, 64)
    far = (ids == NO_PRIMITIVE) & (one.depths > 8.0) & (ref.alphas == 1)
    assert far.sum() > 100
    err_filtered = (one.images - ref.images).abs()[far].mean()
    point = torch.zeros_like(one.images)
    for i in range(len(one)):
        d, o = pixel_dirs(one, i), one.camtoworlds[i, :3, 3]
        pts = o + one.depths[i].double()[..., None] * d
        pts[..., 2] = 0.0
        point[i] = lambert(scene.ground(pts.reshape(-1, 3).float()), scene.light_dir[2].expand(48 * 64),
                           scene.ambient).clamp(0, 1).reshape(48, 64, 3)
    err_point = (point - ref.images).abs()[far].mean()
    assert err_filtered < 0.05 and err_point > 3 * err_filtered, (float(err_filtered), float(err_point))


def test_robot_scenes_stand_on_the_floor_and_move_like_robots():
    for seed, layout in enumerate(("tabletop", "workcell", "mobile") * 3):
        scene, cfg = robot_scene(40 + seed, layout, ("poles", "head", "orbit")[seed % 3])
        roles = scene.roles
        assert len(roles) == len(scene.kinds) and scene.ground_infinite and scene.ground_z == 0.0
        u = torch.linspace(0, 1, 5, dtype=torch.float64)
        R, c, s = scene.motion.at(u)
        for p, role in enumerate(roles):
            if role in ("table.top", "table.leg", "wall", "pedestal") or role.startswith("object"):
                # Upright boxes and objects: the lowest point of the shape stands on z >= 0 at all times.
                extent = local_extent(scene.kinds[p], scene.params[p]).double()
                low = c[:, p, 2] - (R[:, p].abs() @ (s[:, p] * extent)[..., None])[..., 2, 0]
                assert (low > -1e-6).all(), (layout, role)
            if role == "table.leg":  # legs reach from the floor to the slab
                assert torch.allclose(c[:, p, 2] - s[:, p, 2], torch.zeros(5, dtype=torch.float64), atol=1e-9)
            if role == "base.wheel":  # centred one radius above the floor: rolling on it
                torch.testing.assert_close(c[:, p, 2], s[:, p, 0])
            if role == "table.top":  # nothing stands under a table
                for q, other in enumerate(roles):
                    if other in ("arm.base", "object", "base.body") and c[0, q, 2] < c[0, p, 2] - 0.05:
                        local = (c[0, q] - c[0, p]) @ R[0, p]
                        assert not (local[:2].abs() < s[0, p, :2]).all(), (layout, other)
        for p in (i for i, r in enumerate(roles) if r == "arm.base"):
            parent = scene.motion.parent[p]
            if parent < 0:  # a fixed base does not move; its links do
                assert (c[:, p] - c[0, p]).abs().max() < 1e-12 and (R[:, p] - R[0, p]).abs().max() < 1e-12
        links = [i for i, r in enumerate(roles) if r.startswith("arm.link")]
        if links:
            assert max(float((c[:, i] - c[0, i]).abs().max()) for i in links) > 1e-3
        bodies = [i for i, r in enumerate(roles) if r == "base.body"]
        for b in bodies:  # wheels turn by the distance driven over their radius (no slip)
            wheels = [i for i, r in enumerate(roles) if r == "base.wheel" and scene.motion.parent[i] == b]
            assert len(wheels) == 4
            driven = float((scene.motion.vel[b]).norm())
            for w in wheels:
                torch.testing.assert_close(float(scene.motion.hinge_rate[w]), driven / float(scene.motion.scale0[w, 0]))
        # Synchronized cameras: each frame's stamps lie within the jitter of one instant.
        period = scene.duration_ns / (cfg.frames - 1)
        spread = (scene.stamps_ns.max(1).values - scene.stamps_ns.min(1).values).double()
        assert (spread <= 2 * cfg.jitter * period + 1).all()
        assert (eye_positions(scene.rig)[..., 2] > 0.2).all()  # cameras above the floor


def test_mounted_rigs_look_at_the_workspace_and_move_rigidly():
    for seed in range(6):
        for rig in ("poles", "head"):
            scene, cfg = robot_scene(60 + seed, ("tabletop", "workcell", "mobile")[seed % 3], rig, cameras=5)
            u = torch.linspace(0, 1, 4, dtype=torch.float64)
            poses = torch.stack([scene.rig.poses(torch.arange(5), x.expand(5)) for x in u])  # (4,5,4,4)
            # The table or robot in the middle of the workspace is in front of every camera.
            centre = torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)
            to_c = torch.nn.functional.normalize(centre - poses[..., :3, 3], dim=-1)
            assert ((to_c * poses[..., :3, 2]).sum(-1) > math.cos(math.radians(50))).all(), (rig, seed)
            rel = invert_pose(poses[:, :1]) @ poses  # every camera relative to camera 0
            torch.testing.assert_close(rel, rel[:1].expand_as(rel), atol=1e-9, rtol=0)
            travel = float((poses[-1, 0, :3, 3] - poses[0, 0, :3, 3]).norm())
            assert (travel == 0.0) if rig == "poles" else 0.15 < travel < 1.6


def test_rig_and_stream_input_draws():
    assert rig_inputs(12, 6, 12) == [k * 6 + c for k in (0, 3, 6, 9) for c in (0, 2, 4)]  # s = ⌈12·3/12⌉ = 3
    assert rig_inputs(24, 8, 12) == [k * 8 + c for k in (0, 8, 16) for c in (0, 2, 4, 6)]  # s = 8
    assert rig_inputs(12, 8, 10) == [k * 8 + c for k in (0, 5) for c in (0, 2, 4, 6)] + [80, 82]  # capped at N
    stamps = 10**18 + torch.arange(12)[:, None] * 10**8 + torch.arange(6)[None] * 1000  # (T,C) synchronized
    for policy in ("latest", "uniform"):
        inp = stream_inputs(stamps, 3, 8, 12, policy)
        cands = [(int(stamps[k, c]), c) for k in range(3, 9) for c in range(6)]
        assert inp == sorted(3 * 6 + i for i in select_views(cands, 12, policy))
    assert stream_inputs(stamps, 3, 8, 12, "latest") == [k * 6 + c for k in (7, 8) for c in range(6)]
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        first, last = stream_window(g, 12, 6, 12)
        assert 0 <= first <= last < 12 and (last - first + 1) * 6 >= 12
    inputs = [18, 20, 25, 33, 34]  # frames 3..5 of 6 cameras
    tgt = span_targets(g, 12, 6, inputs, 8, 0.25)
    assert len(set(tgt)) == 8 and len(set(tgt) & set(inputs)) == 2
    assert all(18 <= v < 36 for v in tgt)


def test_sampler_draws_and_mix_entries_per_scene():
    cfg = robot_config(("tabletop",), ("poles",), frames=6, cameras=4, height=24, width=24)
    ds = SceneSampler(cfg, num_inputs=6, num_targets=4, draws={"rig": 1.0})
    item = ds.sample(3)
    assert item["draw"] == "rig" and item["scene"] == "scenes"
    frames = {int(s): k for k, row in enumerate(sample_scene(3, cfg).stamps_ns) for s in row}
    got = sorted((frames[int(s)], int(c)) for s, c in zip(item["inputs"].stamps_ns, item["inputs"].camera_ids))
    assert got == [(k, c) for k in (0, 2, 4) for c in (0, 2)]  # s = ⌈6·2/6⌉ = 2
    tgt_frames = [frames[int(s)] for s in item["targets"].stamps_ns]
    assert all(0 <= f <= 4 for f in tgt_frames)
    with pytest.raises(ValueError, match="draws"):
        SceneSampler(cfg, num_inputs=6, num_targets=4, draws={"random": 1.0})
    mix = robot_mix(frames=4, cameras=4, height=24, width=24)
    assert abs(sum(e.weight for e in mix.entries if e.config.scene_kinds != ("objects",)) - 0.65) < 1e-9
    counts = {e.name: 0 for e in mix.entries}
    for seed in range(2000):
        counts[mix.pick(seed).name] += 1
    for e in mix.entries:
        assert abs(counts[e.name] / 2000 - e.weight) < 0.04, counts
    sampler = SceneSampler(mix, num_inputs=4, num_targets=3)
    seen = set()
    for seed in range(12):
        a, b = sampler.sample(seed), sampler.sample(seed)
        assert torch.equal(a["inputs"].images, b["inputs"].images) and a["draw"] == b["draw"]
        assert len(a["inputs"]) <= 4 and len(a["targets"]) == 3 and a["inputs"].depths.gt(0).any()
        seen.add(a["scene"])
    assert len(seen) >= 3
    with pytest.raises(ValueError, match="share"):
        SceneMix((MixEntry("a", 1.0, cfg), MixEntry("b", 1.0, replace(cfg, cameras=3))))


def test_robot_eval_recipe():
    seeds = [s for s, *_ in ROBOT_EVAL_SCENES]
    assert len(seeds) == 8 and min(seeds) >= VAL_SEED_START
    others = {s for s, *_ in EVAL_SCENES} | set(range(PROTOCOL_VAL_FIRST_SEED, PROTOCOL_VAL_FIRST_SEED + 100)) \
        | set(range(VAL_SEED_START, VAL_SEED_START + 100)) \
        | set(range(ROBOT_PROTOCOL_VAL_FIRST_SEED, ROBOT_PROTOCOL_VAL_FIRST_SEED + 100))
    assert not set(seeds) & others
    assert {layout for _, layout, _ in ROBOT_EVAL_SCENES} == {"tabletop", "workcell", "mobile"}
    views = render_robot_scenes(ROBOT_EVAL_SCENES[:1], resolution=16, supersample=1)[0]
    assert len(views) == ROBOT_FRAMES * ROBOT_CAMERAS and views.camera_names == [f"cam{i}" for i in range(6)]
    assert views.depths.gt(0).float().mean() > 0.5


def test_viewset_refuses_images_outside_0_1_and_camera_ids_without_names():
    import pytest

    from lrm4d_ros.views import ViewSet

    def views(images, ids=(0, 1), names=("a", "b")):
        return ViewSet(images, torch.eye(3).expand(2, 3, 3).double(), torch.eye(4).expand(2, 4, 4).double(),
                       torch.tensor([0, 1], dtype=torch.int64), torch.tensor(ids), list(names))

    ok = torch.rand(2, 4, 5, 3)
    assert len(views(ok)) == 2
    with pytest.raises(TypeError, match=r"uint8 images: .float\(\) / 255"):
        views((ok * 255).to(torch.uint8))  # torch.from_numpy of a cv2 frame
    with pytest.raises(ValueError, match=r"divide by 255"):
        views(ok * 255)
    with pytest.raises(ValueError, match="camera_ids must be integer indices into camera_names"):
        views(ok, ids=(0, 2))


def test_viewset_takes_tensors_and_cat_keeps_the_depths_it_has():
    import numpy as np
    import pytest

    from lrm4d_ros.views import ViewSet

    def views(depths=None):
        return ViewSet(torch.rand(2, 4, 5, 3), torch.eye(3).expand(2, 3, 3).double(),
                       torch.eye(4).expand(2, 4, 4).double(), torch.tensor([0, 1], dtype=torch.int64),
                       torch.tensor([0, 1]), ["a", "b"], depths=depths)

    with pytest.raises(TypeError, match="stamps_ns must be a torch.Tensor, got ndarray"):
        ViewSet(torch.rand(1, 4, 5, 3), torch.eye(3)[None].double(), torch.eye(4)[None].double(),
                np.array([0], dtype=np.int64), torch.tensor([0]), ["a"])
    d = torch.rand(2, 4, 5)
    both = ViewSet.cat([views(d), views()])  # a depth camera's views and a colour camera's: the depths stay
    assert torch.equal(both.depths[:2], d) and not both.depths[2:].any()
    assert ViewSet.cat([views(), views()]).depths is None

