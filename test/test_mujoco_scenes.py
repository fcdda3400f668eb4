"""MuJoCo/dm_control scenes: the camera convention checked against the renderer's own segmentation and depth."""
import ctypes.util
import importlib.util
import os

import numpy as np
import pytest
import torch

from lrm4d_ros.data.mujoco_scenes import DEFAULT_BASE_NS, capture_steps, record_scene

FRAMES, CAMERAS, RES = 2, 8, 96
HEAD_RADIUS = 0.09  # humanoid.xml: <geom name="head" type="sphere" size=".09"/>


def _skip_reason():
    missing = [m for m in ("mujoco", "dm_control") if importlib.util.find_spec(m) is None]
    if missing:
        return f'{", ".join(missing)} not installed (pip install "mujoco==3.17.0" dm-control)'
    if os.environ.get("MUJOCO_GL", "osmesa") == "osmesa" and ctypes.util.find_library("OSMesa") is None:
        return "libOSMesa not found (apt-get install libosmesa6) and MUJOCO_GL is osmesa"
    return None


needs_mujoco = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


@pytest.fixture(scope="module", params=["ring", "workcell"])
def rec(request):
    # No jitter: both cameras of a frame see the same instant, so depth must agree between them.
    return record_scene("humanoid", FRAMES, CAMERAS, RES, request.param, jitter_s=0.0, seed=3)


def _project(views, v, pts):
    """World points (N,3) -> pixel (N,2) and z (N,) in view v."""
    w2c = torch.linalg.inv(views.camtoworlds[v]).numpy()
    pc = pts @ w2c[:3, :3].T + w2c[:3, 3]
    uvw = pc @ views.Ks[v].numpy().T
    return uvw[:, :2] / uvw[:, 2:], pc[:, 2]


def _backproject(views, v, mask):
    """World points (N,3) of the pixels in mask (H,W), from the view's z-depth."""
    vv, uu = np.nonzero(mask)
    z = views.depths[v].numpy()[vv, uu].astype(np.float64)
    rays = np.stack([uu, vv, np.ones_like(uu)], 1) @ np.linalg.inv(views.Ks[v].numpy()).T
    c2w = views.camtoworlds[v].numpy()
    return (rays * z[:, None]) @ c2w[:3, :3].T + c2w[:3, 3]


@needs_mujoco
def test_head_projects_onto_its_segmentation_centroid(rec):
    views, head = rec.views, rec.geom_names.index("head")
    errs = []
    for v in range(len(views)):
        vv, uu = np.nonzero(rec.geom_ids[v] == head)
        uv, z = _project(views, v, rec.geom_xpos[v, head][None])
        assert z[0] > 0
        # Only an unoccluded, uncropped head has its centroid at the projected centre: compare the pixel
        # count with the sphere's projected disc, pi (f r / z)^2.
        disc = np.pi * (float(views.Ks[v, 0, 0]) * HEAD_RADIUS / z[0]) ** 2
        if len(vv) < max(0.9 * disc, 20) or min(vv.min(), uu.min()) == 0 or max(vv.max(), uu.max()) == RES - 1:
            continue
        errs.append(np.hypot(uv[0, 0] - uu.mean(), uv[0, 1] - vv.mean()))
    # A half-pixel principal-point slip alone would give 0.71 px.
    assert len(errs) >= 4, f"only {len(errs)} views show the whole head"
    assert max(errs) < 0.5 and np.mean(errs) < 0.25, errs


@needs_mujoco
def test_depth_backprojects_onto_the_head_sphere(rec):
    views, head = rec.views, rec.geom_names.index("head")
    errs = []
    for v in range(len(views)):
        mask = rec.geom_ids[v] == head
        if mask.sum():
            p = _backproject(views, v, mask)
            errs.append(np.abs(np.linalg.norm(p - rec.geom_xpos[v, head], axis=1) - HEAD_RADIUS))
    errs = np.concatenate(errs)
    # MuJoCo draws the sphere as a 28-slice polygon: its faces sit r(1 - cos(pi/28)) = 0.57 mm inside.
    assert len(errs) > 200
    assert np.median(errs) < 1e-3 and np.percentile(errs, 95) < 5e-3, (np.median(errs), errs.max())


@needs_mujoco
def test_depth_reprojects_between_neighbouring_cameras(rec):
    views = rec.views
    rel = []
    for k in range(FRAMES):
        for c in range(CAMERAS):
            a, b = k * CAMERAS + c, k * CAMERAS + (c + 1) % CAMERAS
            assert views.stamps_ns[a] == views.stamps_ns[b]
            p = _backproject(views, a, views.alphas[a].numpy() > 0)
            uv, z = _project(views, b, p)
            ui, vi = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
            inside = (ui >= 0) & (ui < RES) & (vi >= 0) & (vi < RES) & (z > 0)
            zb = views.depths[b].numpy()[vi[inside], ui[inside]]
            seen = zb > 0
            rel.append(np.abs(zb[seen] - z[inside][seen]) / zb[seen])
    rel = np.concatenate(rel)
    # Occluded points and silhouette pixels are outliers; most points must agree closely.
    assert len(rel) > 1000 and np.median(rel) < 0.02, np.median(rel)


@needs_mujoco
def test_viewset_follows_the_bag_contract(rec):
    views = rec.views
    assert len(views) == FRAMES * CAMERAS and views.camera_names == sorted(views.camera_names)
    assert torch.equal(views.camera_ids, torch.arange(CAMERAS).repeat(FRAMES))
    assert views.stamps_ns.dtype == torch.int64 and int(views.stamps_ns.min()) == DEFAULT_BASE_NS
    assert int(views.stamps_ns[CAMERAS]) - DEFAULT_BASE_NS == pytest.approx(1e8, abs=5e6)  # 10 fps
    bg = views.alphas == 0
    assert 0.01 < views.alphas.mean() < 0.5
    assert torch.all(views.depths[bg] == 0) and torch.all(views.depths[~bg] > 0.1)
    assert torch.allclose(views.images[bg], torch.ones(3))
    R = views.camtoworlds[:, :3, :3]
    assert torch.allclose(R.transpose(1, 2) @ R, torch.eye(3, dtype=torch.float64).expand_as(R), atol=1e-12)


def test_capture_steps_jitter_per_camera_and_snapping():
    rng = np.random.default_rng(0)
    steps = capture_steps(5, 4, fps=10.0, jitter_s=0.02, timestep=0.002, rng=rng, settle_s=0.5)
    t = steps * 0.002 - 0.5 - np.arange(5)[:, None] * 0.1
    assert steps.shape == (5, 4) and np.all(t > -0.0011) and np.all(t < 0.0211)
    assert len(np.unique(t.round(6))) > 5  # cameras are not synchronised
    with pytest.raises(ValueError):
        capture_steps(3, 2, fps=10.0, jitter_s=0.1, timestep=0.002, rng=rng)


def test_bad_scene_and_rig_are_rejected():
    with pytest.raises(ValueError, match="unknown MuJoCo scene"):
        record_scene("cheetah_on_mars", 1, 1, 32)
    with pytest.raises(ValueError, match="unknown rig"):
        record_scene("humanoid", 1, 1, 32, rig="drone")


@needs_mujoco
def test_views_survive_a_contract_bag(rec, tmp_path):
    bag = pytest.importorskip("lrm4d_ros.io.bag", reason="lrm4d_ros.io.bag (write_bag/read_bag) not present")
    views = rec.views
    back = bag.read_bag(bag.write_bag(views, tmp_path / "bag"))
    # read_bag sorts by (stamp, camera name): frame-major here, since the fixture's cameras are synchronised.
    assert back.camera_names == views.camera_names and torch.equal(back.camera_ids, views.camera_ids)
    assert torch.equal(back.stamps_ns, views.stamps_ns)
    assert torch.allclose(back.Ks, views.Ks) and torch.allclose(back.camtoworlds, views.camtoworlds, atol=1e-9)
    assert (back.images - views.images).abs().max() <= 0.5 / 255 + 1e-6


@needs_mujoco
def test_views_with_depth_survive_a_contract_bag_bit_exactly(rec, tmp_path):
    from lrm4d_ros.io.bag import read_bag, write_bag

    back = read_bag(write_bag(rec.views, tmp_path / "bag", depth_encoding="32FC1"))
    assert torch.equal(back.depths, rec.views.depths) and (back.depths > 0).any()


@needs_mujoco
def test_robot_preset_films_the_jaco_arm_on_its_floor_with_measured_depth(tmp_path):
    import importlib.util as iu
    from pathlib import Path

    from lrm4d_ros.io.bag import read_bag

    rec = record_scene("jaco", 1, 6, 64, "workcell", jitter_s=0.0, seed=0, show_world=True)
    floor = np.array([n == "ground" for n in rec.geom_names])[rec.geom_ids.clip(0)] & (rec.geom_ids >= 0)
    heights = np.concatenate([_backproject(rec.views, v, floor[v])[:, 2] for v in range(6)])
    assert floor.mean() > 0.3 and np.abs(heights).max() < 1e-3  # the floor plane is z = 0 in MuJoCo's world
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_mujoco_bags.py"
    spec = iu.spec_from_file_location("make_mujoco_bags", script)
    mod = iu.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--out", str(tmp_path), "--preset", "robots", "--scenes", "jaco", "--frames", "2",
                     "--resolution", "64"]) == 0
    views = read_bag(tmp_path / "jaco_workcell_floor")
    assert views.camera_names == [f"cam{i}" for i in range(6)] and len(views) == 12
    measured = views.depths > 0
    assert 0.3 < float(measured.float().mean()) < float((rec.views.depths > 0).float().mean())  # sensor dropouts
