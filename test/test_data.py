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
