"""`lrm4d reconstruct`: windows, camera paths, and a bag → output bag run with a tiny random model."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lrm4d_ros.cameras import estimate_up, look_at, orbit_path
from lrm4d_ros.pipeline import parse_resolution
from lrm4d_ros.ply import read_ply_stamp
from lrm4d_ros.recording import Span, make_windows
from lrm4d_ros.views import frame_indices
from lrm4d_ros.views import ViewSet

BASE_NS = 1_700_000_123_456_789_000


def _views(T=10, C=3, period_ns=100_000_000, offset_ns=7_000_000):
    """T frames x C cameras, camera c offset by c*offset_ns (unsynchronised), frame-major, shuffled order."""
    stamps = torch.tensor([BASE_NS + f * period_ns + c * offset_ns for f in range(T) for c in range(C)])
    ids = torch.tensor([c for f in range(T) for c in range(C)])
    perm = torch.randperm(T * C, generator=torch.Generator().manual_seed(0))
    n = T * C
    return ViewSet(torch.zeros(n, 4, 4, 3), torch.eye(3, dtype=torch.float64).repeat(n, 1, 1),
                   torch.eye(4, dtype=torch.float64).repeat(n, 1, 1), stamps[perm], ids[perm])


def test_span_parse():
    assert Span.parse("8") == Span(8, "frames")
    assert Span.parse("0.5s") == Span(0.5, "s")
    for bad in ("0", "-1", "2.5", "abc", "1m"):
        with pytest.raises(ValueError):
            Span.parse(bad)
    with pytest.raises(ValueError, match="^--stride must be positive, got '-1'$"):
        Span.parse("-1", "--stride")


def test_frame_indices_rank_per_camera():
    v = _views()
    f = frame_indices(v)
    expect = (v.stamps_ns - BASE_NS - v.camera_ids * 7_000_000) // 100_000_000
    assert torch.equal(f, expect)


@pytest.mark.parametrize("length,stride,frames", [
    ("4", "2", [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]),
    ("4", "3", [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]),
    ("8", "4", [[0, 1, 2, 3, 4, 5, 6, 7], [2, 3, 4, 5, 6, 7, 8, 9]]),  # last window ends at the last frame
    ("20", "5", [list(range(10))]),
    ("5", "4", [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]),  # not [4..8] and [5..9]: the last window moved to the end
    ("4", "4", [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]),  # where moving it would leave frames out: one more
    ("0.35s", "0.2s", [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]),
])
def test_windows_cover_and_own_each_view_once(length, stride, frames):
    v = _views()
    wins = make_windows(v, Span.parse(length), Span.parse(stride))
    f = frame_indices(v)
    assert [sorted(set(f[w.views].tolist())) for w in wins] == frames
    owned = torch.cat([w.own for w in wins])
    assert sorted(owned.tolist()) == list(range(len(v)))  # a partition: every view rendered exactly once
    for w in wins:
        assert set(w.own.tolist()) <= set(w.views.tolist())
        assert int(w.mid_ns) in v.stamps_ns[w.views].tolist()
        # An owned view is nearer this window's middle than any other window's middle holding it.
        mids = {o.index: (int(v.stamps_ns[o.views].min()) + int(v.stamps_ns[o.views].max())) // 2 for o in wins}
        for i in w.own.tolist():
            d = abs(int(v.stamps_ns[i]) - mids[w.index])
            assert all(d <= abs(int(v.stamps_ns[i]) - mids[o.index]) for o in wins if i in o.views.tolist())


def test_windows_reject_mixed_units():
    with pytest.raises(ValueError, match="both be frames or both seconds"):
        make_windows(_views(), Span.parse("4"), Span.parse("0.2s"))


def _ring(n=5, radius=2.0, height=0.8, center=(0.3, -0.2, 0.1), up=(0.0, 0.0, 1.0), start=0.4):
    """Cameras on a horizontal ring looking at `center` (world z up)."""
    a = start + torch.arange(n, dtype=torch.float64) * (2 * math.pi / n) + 0.1 * torch.arange(n) ** 2
    c = torch.tensor(center, dtype=torch.float64)
    eyes = c + torch.stack([radius * torch.cos(a), radius * torch.sin(a), torch.full_like(a, height)], -1)
    return look_at(eyes, c.expand(n, 3), up), c


def test_estimate_up_of_a_ring_and_a_tilted_world():
    c2w, _ = _ring()
    assert torch.allclose(estimate_up(c2w), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-9)
    # The same rig rotated 30 degrees about x: up rotates with it.
    a = math.radians(30)
    Rx = torch.tensor([[1, 0, 0, 0], [0, math.cos(a), -math.sin(a), 0], [0, math.sin(a), math.cos(a), 0],
                       [0, 0, 0, 1]], dtype=torch.float64)
    assert torch.allclose(estimate_up(Rx @ c2w), Rx[:3, 2], atol=1e-9)


def test_orbit_path_circles_the_centre_looking_at_it():
    c2w, center = _ring()
    path = orbit_path(c2w, 12, center=center)
    eye = path[:, :3, 3]
    rel = eye - center
    assert torch.allclose(rel[:, 2], torch.full((12,), 0.8, dtype=torch.float64), atol=1e-9)  # ring height
    assert torch.allclose(rel[:, :2].norm(dim=-1), torch.full((12,), 2.0, dtype=torch.float64), atol=1e-9)
    # Starts at the first camera, steps by 30 degrees, and every camera looks at the centre, image y down.
    assert torch.allclose(eye[0], c2w[0, :3, 3], atol=1e-9)
    step = torch.atan2(rel[1, 1], rel[1, 0]) - torch.atan2(rel[0, 1], rel[0, 0])
    assert math.isclose(float(step) % (2 * math.pi), math.pi / 6, abs_tol=1e-9)
    assert torch.allclose(path[:, :3, 2], -rel / rel.norm(dim=-1, keepdim=True), atol=1e-9)
    assert (path[:, 2, 1] < 0).all()  # optical y points down in a z-up world
    assert torch.allclose(path[:, :3, :3].det(), torch.ones(12, dtype=torch.float64), atol=1e-9)


def test_parse_resolution():
    assert parse_resolution(None, 48, 64) == (48, 64)
    assert parse_resolution("24x40", 48, 64) == (24, 40)
    assert parse_resolution("24", 48, 64) == (24, 32)
    with pytest.raises(ValueError):
        parse_resolution("0x3", 48, 64)


# ------------------------------------------------------------------------------ end to end on a small bag
FRAMES, CAMS, H, W, N_VIDEO = 6, 2, 24, 32, 4


@pytest.fixture(scope="module")
def source_bag(tmp_path_factory):
    from lrm4d_ros.data.generator import SceneConfig, generate
    from lrm4d_ros.io.bag import write_bag

    views = generate(4, SceneConfig(frames=FRAMES, cameras=CAMS, height=H, width=W, rig_kinds=("orbit",)))
    return write_bag(views, tmp_path_factory.mktemp("src") / "bag", depth_encoding="32FC1")  # an RGB-D bag


@pytest.fixture(scope="module")
def recon_out(source_bag, tmp_path_factory):
    from lrm4d_ros.cli import main

    out = tmp_path_factory.mktemp("recon")
    rc = main(["reconstruct", str(source_bag), "--out", str(out), "--config", "tiny", "--device", "cpu",
               "--window", "4", "--stride", "2", "--max-views", "5", "--video-frames", str(N_VIDEO)])
    assert rc == 0
    return out


def _messages(bag):
    from rosbags.rosbag2 import Reader

    from lrm4d_ros.io.messages import deserialize

    msgs = {}
    with Reader(bag) as reader:
        for conn, t, raw in reader.messages():
            msgs.setdefault(conn.topic, []).append((t, conn.msgtype, deserialize(raw, conn.msgtype)))
    return msgs


def test_reconstruct_output_bag_topics_and_counts(source_bag, recon_out):
    src, out = _messages(source_bag), _messages(recon_out / "bag")
    cams = [f"cam{i}" for i in range(CAMS)]
    expect = {f"/lrm4d/{c}/{k}" for c in cams for k in ("image", "depth", "camera_info")} | {"/lrm4d/gaussians", "/tf"}
    assert set(out) == expect
    for c in cams:
        src_stamps = sorted(t for t, _, _ in src[f"/{c}/image_raw"])
        for k, msgtype in (("image", "sensor_msgs/msg/Image"), ("depth", "sensor_msgs/msg/Image"),
                           ("camera_info", "sensor_msgs/msg/CameraInfo")):
            got = out[f"/lrm4d/{c}/{k}"]
            # Every source view is rendered exactly once, stamped (bag time and header) with its source stamp.
            assert sorted(t for t, _, _ in got) == src_stamps
            assert all(mt == msgtype and t == m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                       for t, mt, m in got)
        depth = out[f"/lrm4d/{c}/depth"][0][2]
        assert (depth.encoding, depth.height, depth.width, depth.step) == ("32FC1", H, W, 4 * W)
        d = np.frombuffer(depth.data.tobytes(), "<f4")
        # NaN where there is no depth (REP 118), not a finite 0, which depth-to-cloud tools take for a point at the
        # camera: where the source's depth camera measured nothing (the sky around the objects), there is none
        src_depth = {t: m for t, _, m in src[f"/{c}/depth"]}[out[f"/lrm4d/{c}/depth"][0][0]]
        measured = np.frombuffer(src_depth.data.tobytes(), "<f4") > 0
        rendered = np.isfinite(d)
        assert (d[rendered] > 0).all() and np.isnan(d[~rendered]).all() and measured.any()
        assert rendered[measured].mean() > 0.9 and rendered[~measured].mean() < 0.1
        info = out[f"/lrm4d/{c}/camera_info"][0][2]
        src_info = src[f"/{c}/camera_info"][0][2]
        assert np.allclose(info.k, src_info.k) and (info.width, info.height) == (W, H)
    assert len(out["/tf"]) == FRAMES * CAMS
    assert len(out["/lrm4d/gaussians"]) == 2  # windows [0,4) and [2,6)


def test_reconstruct_pointcloud_matches_the_slice_ply(source_bag, recon_out):
    from lrm4d_ros.io.bag import read_bag
    from lrm4d_ros.io.messages import GAUSSIAN_FIELDS, unpack_rgb
    from lrm4d_ros.ply import read_ply_3dgs, read_ply_fields

    src_stamps = {t for t, _, _ in _messages(source_bag)["/cam0/image_raw"] + _messages(source_bag)["/cam1/image_raw"]}
    clouds = _messages(recon_out / "bag")["/lrm4d/gaussians"]
    centres = read_bag(source_bag).camtoworlds[:, :3, 3].double().numpy()
    for k, (t, _, msg) in enumerate(clouds):
        assert t in src_stamps and msg.header.frame_id == "world"
        assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == \
            [(n, 4 * i, 7, 1) for i, n in enumerate(GAUSSIAN_FIELDS)]  # 7 = PointField.FLOAT32
        assert (msg.point_step, msg.height, msg.is_bigendian) == (48, 1, False)
        pts = np.frombuffer(msg.data.tobytes(), np.dtype([(n, "<f4") for n in GAUSSIAN_FIELDS]))
        ply = recon_out / f"window_{k:03d}" / "slice.ply"
        g = read_ply_3dgs(ply)
        fields = read_ply_fields(ply)
        # one point per Gaussian of the slice whose depth the model did not guess (the bag measures its objects, 6 %
        # of its pixels, not its sky: the sky's Gaussians are its guesses, far out), in the slice's order
        assert 0 < msg.width == len(pts) < 0.5 * len(g)
        opacities, colours = g.opacities.numpy(), g.colors.clamp(0, 1).numpy()
        rgb = unpack_rgb(pts["rgb"]) / 255.0
        rows, j = [], 0
        for i in range(len(g)):  # the cloud is a subsequence of the PLY: match each point to its row, in order
            if j < len(pts) and abs(pts["opacity"][j] - opacities[i]) < 1e-6 \
                    and np.abs(rgb[j] - colours[i]).max() <= 0.5 / 255 + 1e-6:
                rows.append(i)
                j += 1
        assert len(rows) == len(pts)
        rows = np.array(rows)
        # same world-unit means but the measured pixels': those the cloud puts back at the measurement, moved along
        # their rays by the model's residual and MEASURED_OFFSET (at most ~5 % of their depth); the PLY keeps them
        cloud = np.stack([pts[a] for a in "xyz"], -1).astype(np.float64)
        placed = np.stack([fields[a] for a in "xyz"], -1).astype(np.float64)
        moved = np.abs(cloud - placed[rows]).max(1) > 0
        assert moved.mean() > 0.9  # a depth camera's measured pixels are most of what is left
        reach = np.linalg.norm(placed[:, None] - centres[None], axis=-1).min(1)  # to the nearest camera
        assert (np.linalg.norm(cloud - placed[rows], axis=1)[moved] < 0.06 * reach[rows][moved]).all()
        left_out = np.ones(len(g), bool)
        left_out[rows] = False
        assert np.median(reach[left_out]) > 3 * np.median(reach[rows])  # the guesses: far out
        # the cloud's 8-bit rgb is the colour clamped to [0, 1] (refined colours may leave it: REFINE_RANGE)
        assert np.abs(unpack_rgb(pts["rgb"]) / 255.0 - g.colors[rows].clamp(0, 1).numpy()).max() <= 0.5 / 255 + 1e-6
        scales, quats = g.scales_quats()
        assert np.allclose(np.sort(np.stack([pts[f"scale_{i}"] for i in range(3)], -1), -1),
                           np.sort(scales[rows].numpy(), -1), rtol=1e-3, atol=1e-7)
        q = np.stack([pts[f"rot_{i}"] for i in range(4)], -1)
        assert np.allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-5)


def test_reconstruct_summary_psnr_matches_the_output_bag(source_bag, recon_out):
    """The PSNR printed for held-out and input views is that of the bag's rendered images against the source."""
    import json

    from lrm4d_ros.io.messages import image_rgb

    s = json.loads((recon_out / "summary.json").read_text())
    assert all(w["input_findings"] == [] for w in s["windows"])  # (each window's Reconstructor.findings)
    src, out = _messages(source_bag), _messages(recon_out / "bag")
    scores = []
    for c in range(CAMS):
        truth = {t: image_rgb(m) for t, _, m in src[f"/cam{c}/image_raw"]}
        for t, _, m in out[f"/lrm4d/cam{c}/image"]:
            mse = np.mean((image_rgb(m).astype(np.float64) - truth[t]) ** 2) / 255.0 ** 2
            scores.append(-10 * math.log10(mse))
    n_held, n_in = s["held_out_views"], s["input_views"]
    assert n_held + n_in == len(scores) == FRAMES * CAMS
    assert n_held > 0 and n_in > 0
    reported = (s["psnr_held_out"] * n_held + s["psnr_inputs"] * n_in) / (n_held + n_in)
    assert abs(np.mean(scores) - reported) < 0.05  # 8-bit quantisation of the bag images only
    # The baseline is scored on the same held-out views: copying a real image of the scene scores well above 0.
    assert 5 < s["psnr_held_out_nearest"] < 100


def test_reconstruct_summary_depth_matches_the_output_bag(source_bag, recon_out):
    """The rendered depth's figures in the summary (held-out and input views apart) are those of the output bag's
    depth images against the source bag's depth: pooled over both, the same AbsRel, δ<1.25 and coverage."""
    import json

    s = json.loads((recon_out / "summary.json").read_text())
    src, out = _messages(source_bag), _messages(recon_out / "bag")
    n = covered = rel = good = 0
    for c in range(CAMS):
        truth = {t: np.frombuffer(m.data.tobytes(), "<f4") for t, _, m in src[f"/cam{c}/depth"]}
        for t, _, m in out[f"/lrm4d/cam{c}/depth"]:
            z, zt = np.frombuffer(m.data.tobytes(), "<f4").astype(np.float64), truth[t].astype(np.float64)
            measured = np.isfinite(zt) & (zt > 0)
            hit = measured & np.isfinite(z)
            n, covered = n + measured.sum(), covered + hit.sum()
            rel += (np.abs(z[hit] - zt[hit]) / zt[hit]).sum()
            good += (np.maximum(z[hit] / zt[hit], zt[hit] / z[hit]) < 1.25).sum()
    parts = [s["depth_held_out"], s["depth_inputs"]]
    assert all(d is not None and d["pixels"] > 0 for d in parts) and sum(d["pixels"] for d in parts) == n
    hits = [d["coverage"] * d["pixels"] for d in parts]
    assert abs(sum(hits) - covered) < 0.5 and covered > 0.5 * n
    assert abs(sum(d["abs_rel"] * h for d, h in zip(parts, hits)) / covered - rel / covered) < 1e-5
    assert abs(sum(d["delta1"] * h for d, h in zip(parts, hits)) / covered - good / covered) < 1e-9


def test_reconstruct_videos_decode_with_the_expected_frames(recon_out):
    import imageio.v3 as iio

    for k in range(2):
        frames = iio.imread(recon_out / f"window_{k:03d}" / "video.mp4")
        assert frames.shape == (N_VIDEO, H, W, 3)


def test_video_camera_follows_that_camera_through_the_window(source_bag):
    from lrm4d_ros.io.bag import read_bag
    from lrm4d_ros.pipeline import video_cameras

    views = read_bag(source_bag)
    win = make_windows(views, Span.parse("4"), Span.parse("2"))[1]
    sub = views.select(win.views)
    every = SimpleNamespace(covers=lambda stamps: torch.ones(len(stamps), dtype=torch.bool))  # inputs span it all
    c2w, Ks, stamps = video_cameras(views, sub, every, "cam1", n=99)
    mine = sub.select(sub.camera_ids == 1)
    assert torch.equal(stamps, mine.stamps_ns.sort().values) and len(stamps) == 4
    assert torch.equal(c2w, mine.camtoworlds[mine.stamps_ns.argsort()]) and torch.equal(Ks, mine.Ks)


def test_output_bag_is_in_the_input_bags_world_frame(tmp_path):
    """A robot's bag poses its cameras in its own world frame (odom, map): the output bag's /tf parents and
    Gaussians are in that frame, so the two line up in Foxglove or RViz."""
    from lrm4d_ros.cli import main
    from lrm4d_ros.data.generator import SceneConfig, generate
    from lrm4d_ros.io.bag import pose_frame, write_bag

    views = generate(4, SceneConfig(frames=4, cameras=2, height=H, width=W, rig_kinds=("orbit",)))
    bag = write_bag(views, tmp_path / "bag", world_frame="odom")
    assert pose_frame(bag) == "odom"
    assert main(["reconstruct", str(bag), "--out", str(tmp_path / "out"), "--config", "tiny", "--device", "cpu",
                 "--window", "4", "--no-video"]) == 0
    out = _messages(tmp_path / "out" / "bag")
    assert {tf.header.frame_id for _, _, m in out["/tf"] for tf in m.transforms} == {"odom"}
    # the rendered cameras' frames are the output's own: the input's cam0_optical_frame keeps its one parent
    assert {tf.child_frame_id for _, _, m in out["/tf"] for tf in m.transforms} == {"lrm4d/cam0_optical_frame",
                                                                                     "lrm4d/cam1_optical_frame"}
    assert {m.header.frame_id for _, _, m in out["/lrm4d/cam0/image"]} == {"lrm4d/cam0_optical_frame"}
    assert [m.header.frame_id for _, _, m in out["/lrm4d/gaussians"]] == ["odom"]


def test_reconstruct_bad_input_gives_clear_errors(source_bag, tmp_path, capsys):
    from lrm4d_ros.cli import main

    def refused(argv, text):  # one line on stderr, exit code 2, no traceback
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert text in err and "Traceback" not in err, err

    refused(["reconstruct", str(tmp_path / "missing"), "--out", str(tmp_path / "o1"), "--config", "tiny"],
            "no such bag")
    (tmp_path / "notabag").mkdir()
    refused(["reconstruct", str(tmp_path / "notabag"), "--out", str(tmp_path / "o2"), "--config", "tiny"],
            "no metadata.yaml and no .mcap or .db3 file: not a bag")
    # the folder that holds the bag (make-bag's --out): the bags in it are named
    refused(["reconstruct", str(source_bag.parent), "--out", str(tmp_path / "o2"), "--config", "tiny"],
            f"the folder holds bags, not a bag: pass one of them ({source_bag})")
    refused(["reconstruct", str(source_bag), "--out", str(tmp_path / "o3"), "--config", "tiny", "--video-camera",
             "nope"], "'nope' is not in the bag")
    refused(["reconstruct", str(source_bag), "--out", str(tmp_path / "o4"), "--config", "tiny", "--window", "4",
             "--stride", "0.1s"], "both be frames or both seconds")
    refused(["reconstruct", str(source_bag), "--out", str(tmp_path / "o5"), "--config", "tiny", "--cameras", "cam7"],
            "cam7")
    (tmp_path / "afile").write_text("x")
    refused(["reconstruct", str(source_bag), "--out", str(tmp_path / "afile"), "--config", "tiny"], "is a file")
    refused(["reconstruct", str(source_bag), "--out", str(tmp_path / "o6"), "--checkpoint", str(tmp_path / "nope")],
            "checkpoint not found")
    refused(["reconstruct", str(source_bag), "--out", str(tmp_path / "o7"), "--checkpoint", str(tmp_path / "afile")],
            "is not a safetensors checkpoint")
    refused(["reconstruct", str(source_bag), "--out", str(tmp_path / "o8"), "--config", "tiny", "--device", "foo"],
            "device 'foo'")
    refused(["reconstruct", str(source_bag), "--out", str(tmp_path / "o8"), "--config", "tiny", "--checkpoint",
             str(tmp_path / "afile")], "ask for two models: give one")
    # each names its flag
    for flag, text in (("--window", "--window must be positive, got '0'"),
                       ("--stride", "--stride must be positive, got '0'"),
                       ("--resolution", "--resolution must be HxW or a short side, in pixels >= 1, got '0'")):
        refused(["reconstruct", str(source_bag), "--out", str(tmp_path / "o9"), "--config", "tiny", flag, "0"],
                f"lrm4d reconstruct: error: {text}\n")
    with pytest.raises(SystemExit) as exit_:  # argparse's own refusal
        main(["reconstruct", str(source_bag), "--out", str(tmp_path / "o9"), "--max-views", "0"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith("lrm4d reconstruct: error: argument --max-views: must be >= 1, got 0\n")
    for fps in ("0", "-3", "nan"):  # (a video at 0 fps: ffmpeg's failure after the whole run, or a division by 0)
        with pytest.raises(SystemExit):
            main(["reconstruct", str(source_bag), "--out", str(tmp_path / "o9"), f"--fps={fps}"])
        assert capsys.readouterr().err.endswith(f"error: argument --fps: must be a finite number > 0, got {fps}\n")
    # --out is the bag's own folder, or inside it: refused before anything is written there
    for out in (source_bag, source_bag / "out"):
        refused(["reconstruct", str(source_bag), "--out", str(out), "--config", "tiny"],
                f"lrm4d reconstruct: error: --out {out} is the input bag {source_bag} or inside it: give an output "
                "folder outside the bag\n")
    assert sorted(p.name for p in source_bag.iterdir()) == ["bag.mcap", "metadata.yaml"]


def test_overwrite_replaces_what_an_earlier_run_wrote(source_bag, tmp_path, capsys):
    import json

    from lrm4d_ros.cli import main

    out = tmp_path / "o"
    common = ["reconstruct", str(source_bag), "--out", str(out), "--config", "tiny", "--device", "cpu", "--no-video"]
    assert main(common + ["--window", "2"]) == 0
    assert len(list(out.glob("window_*"))) > 1
    assert main(common + ["--window", "100"]) == 2  # the bag exists: refused before the model loads
    assert "--overwrite" in capsys.readouterr().err
    assert main(common + ["--window", "100", "--overwrite"]) == 0
    assert sorted(p.name for p in out.glob("window_*")) == ["window_000"]
    assert len(json.loads((out / "summary.json").read_text())["windows"]) == 1


def test_a_stride_longer_than_the_window_warns_of_the_views_left_out(source_bag, tmp_path, capsys):
    from lrm4d_ros.cli import main

    assert main(["reconstruct", str(source_bag), "--out", str(tmp_path / "o"), "--config", "tiny", "--device", "cpu",
                 "--no-video", "--window", "1", "--stride", "3"]) == 0
    # 6 frames: windows at frames 0, 3 and 5 leave frames 1, 2 and 4 of both cameras out
    assert capsys.readouterr().err == ("lrm4d reconstruct: warning: 6 of 12 views fall between windows (--stride 3 "
                                       "frames > --window 1 frame) and are not reconstructed or re-rendered\n")


def test_the_summary_names_both_bags_by_absolute_path(source_bag, tmp_path, monkeypatch):
    """summary.json is read from other working directories (`lrm4d view OUT`): a relative --out is resolved."""
    import json

    from lrm4d_ros.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["reconstruct", str(source_bag), "--out", "o", "--config", "tiny", "--device", "cpu", "--no-video",
                 "--window", "6"]) == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["bag_in"] == str(source_bag.resolve()) and s["bag_out"] == str(tmp_path.resolve() / "o" / "bag")


def test_seed_without_config_warns_that_the_checkpoint_is_used(source_bag, tmp_path, capsys):
    """--seed only seeds a --config model's random weights: given with the shipped checkpoint it changes nothing,
    and the user is told so rather than left to think the run was seeded."""
    from lrm4d_ros.cli import main

    assert main(["reconstruct", str(source_bag), "--out", str(tmp_path / "o"), "--device", "cpu", "--no-video",
                 "--seed", "3"]) == 0
    assert ("lrm4d reconstruct: warning: --seed without --config: the checkpoint's weights are used, the seed is not"
            in capsys.readouterr().err)


def test_latest_policy_renders_the_views_its_inputs_span_and_counts_the_rest(source_bag, tmp_path, capsys):
    """--policy latest takes a window's newest views: the older ones would be extrapolated in time, so they are
    left out of the output bag, counted in the summary and warned about; the run succeeds."""
    from lrm4d_ros.cli import main
    from lrm4d_ros.io.bag import read_bag

    out = tmp_path / "o"
    assert main(["reconstruct", str(source_bag), "--out", str(out), "--config", "tiny", "--device", "cpu",
                 "--window", "6", "--max-views", "2", "--policy", "latest", "--video-camera", "cam0",
                 "--video-frames", "2"]) == 0
    err = capsys.readouterr().err
    # one window of 6 frames x 2 cameras; its 2 inputs are the last frame's two views: 10 views lie before them
    assert "warning: 10 of 12 views lie outside the time span of their window's model inputs (--policy latest" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["views_outside_inputs"] == 10 and summary["windows"][0]["rendered"] == 2
    views = read_bag(source_bag)
    last = [int(views.stamps_ns[views.camera_ids == c].max()) for c in (0, 1)]  # each camera's last frame
    msgs = _messages(out / "bag")
    assert [[t for t, *_ in msgs[f"/lrm4d/cam{c}/image"]] for c in (0, 1)] == [[last[0]], [last[1]]]
    slice_ns = summary["windows"][0]["slice_stamp_ns"]
    assert [t for t, *_ in msgs["/lrm4d/gaussians"]] == [slice_ns] and slice_ns in last
    assert read_ply_stamp(out / "window_000" / "slice.ply") == slice_ns  # slice.ply says which moment it holds


def test_a_window_longer_than_the_bag_warns(source_bag, tmp_path, capsys):
    from lrm4d_ros.cli import main

    common = ["reconstruct", str(source_bag), "--config", "tiny", "--device", "cpu", "--no-video"]
    assert main(common + ["--out", str(tmp_path / "o"), "--window", "7"]) == 0
    assert capsys.readouterr().err == ("lrm4d reconstruct: warning: --window 7 frames is longer than the bag (6 "
                                       "frames): one window holds all of it\n")
    assert main(common + ["--out", str(tmp_path / "o2"), "--window", "6"]) == 0
    assert capsys.readouterr().err == ""


def test_a_camera_without_images_is_skipped_with_a_one_line_warning(source_bag, tmp_path, capsys):
    """cam1's image_raw topic missing (its camera_info, pose and depth kept): the warning names the camera and its
    topics, printed as `lrm4d <command>: warning:` (not Python's file:line form); off a terminal, one line a window
    instead of progress bars."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    from lrm4d_ros.cli import main
    from lrm4d_ros.io.messages import TYPESTORE

    bag = tmp_path / "no_cam1_images"
    with Reader(source_bag) as src, Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {c.id: w.add_connection(c.topic, c.msgtype, typestore=TYPESTORE) for c in src.connections
                 if c.topic != "/cam1/image_raw"}
        for c, t, raw in src.messages():
            if c.id in conns:
                w.write(conns[c.id], t, raw)
    assert main(["reconstruct", str(bag), "--out", str(tmp_path / "o"), "--config", "tiny", "--device", "cpu",
                 "--no-video", "--window", "4", "--stride", "2"]) == 0
    printed = capsys.readouterr()
    assert printed.err == ("lrm4d reconstruct: warning: camera 'cam1' has /cam1/camera_info, /cam1/depth, /cam1/pose "
                           "but no /cam1/image_raw (nor /cam1/image_raw/compressed): skipped\n")
    assert "6 views from 1 cameras ['cam0']" in printed.out
    assert [line for line in printed.out.splitlines() if line.startswith("window ") and ":" in line] == \
        ["window 1/2: 4 inputs, 3 views rendered", "window 2/2: 4 inputs, 3 views rendered"]
    assert main(["reconstruct", str(bag), "--out", str(tmp_path / "o2"), "--config", "tiny", "--device", "cpu",
                 "--no-video", "--cameras", "cam0", "--window", "6"]) == 0
    assert capsys.readouterr().err == ""  # cam1 was not asked for


def test_summary_marks_exact_views_and_compilation(monkeypatch, capsys):
    """A PSNR capped because every view equals the bag's image says "(exact)"; part of them, how many; the timings
    say when they include numba's one-off compilation."""
    import threading

    from lrm4d_ros import cpu_kernels
    from lrm4d_ros.pipeline import print_summary

    s = {"windows": [], "timings": {"read_s": 0.5, "reconstruct_s": 2.0}, "bag_out": "out/bag", "topics": {},
         "psnr_held_out": 31.5, "psnr_held_out_nearest": 60.0, "psnr_inputs": 50.0, "held_out_views": 30,
         "input_views": 18, "exact_views": {"held_out": 0, "held_out_nearest": 30, "inputs": 6}}
    monkeypatch.setattr(cpu_kernels, "_COMPILED", threading.Event())
    print_summary(s)
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == ("PSNR vs the bag: held-out views 31.50 dB over 30 views, nearest-input baseline on them "
                        "60.00 dB (exact); input views 50.00 dB (6 of 18 views exact, each counted as 60 dB) over 18 "
                        "views")
    assert lines[3] == "timings: read 0.50 s, reconstruct 2.00 s"
    cpu_kernels._COMPILED.set()
    print_summary(s)
    assert capsys.readouterr().out.splitlines()[3] == \
        "timings: read 0.50 s, reconstruct 2.00 s (includes one-off compilation of the CPU kernels)"


def test_reconstruct_takes_the_bags_depth_unless_off(source_bag, recon_out, tmp_path):
    import json

    from lrm4d_ros.cli import main
    from lrm4d_ros.io.bag import read_bag

    coverage = float((read_bag(source_bag).depths > 0).float().mean())
    assert json.loads((recon_out / "summary.json").read_text())["depth_input"] == f"{coverage:.0%} of pixels measured"
    assert main(["reconstruct", str(source_bag), "--out", str(tmp_path / "off"), "--config", "tiny", "--device", "cpu",
                 "--window", "6", "--no-video", "--depth", "off"]) == 0
    assert json.loads((tmp_path / "off" / "summary.json").read_text())["depth_input"] == "none"


def test_a_run_stopped_part_way_keeps_its_windows_and_says_so(source_bag, tmp_path, capsys, monkeypatch):
    """Ctrl-C (or an error) in the second window: the first window's outputs stay, the bag closed and readable,
    summary.json marked incomplete; the rerun's refusal says the earlier run did not finish. Stopped in the first
    window, no empty bag is left in a rerun's way."""
    import lrm4d_ros.pipeline as pipeline
    from lrm4d_ros.cli import main

    real, calls = pipeline._process_window, []

    def second_window_interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:  # part way through its files
            (out / "window_001").mkdir()
            (out / "window_001" / "gaussians_4d.ply").write_bytes(b"ply\n")
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(pipeline, "_process_window", second_window_interrupted)
    out = tmp_path / "o"
    argv = ["reconstruct", str(source_bag), "--out", str(out), "--config", "tiny", "--device", "cpu", "--no-video",
            "--window", "4", "--stride", "2"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "stopped after 1 of 2 windows" in err and err.endswith("lrm4d reconstruct: interrupted (Ctrl-C)\n")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and len(summary["windows"]) == 1 and summary["windows_planned"] == 2
    assert sorted(p.name for p in out.glob("window_*")) == ["window_000"]  # none of the window under way
    assert len(_messages(out / "bag")["/lrm4d/gaussians"]) == 1
    from lrm4d_ros.viewer.sources import folder_windows

    assert len(folder_windows(out)) == 1  # the viewer shows what was done, and says the run stopped
    assert "its reconstruct run stopped after 1 of 2 windows; those are shown" in capsys.readouterr().out
    assert main(argv) == 2
    assert "already exists, from a run that did not finish (remove it or pass --overwrite)" in capsys.readouterr().err

    calls.clear()
    monkeypatch.setattr(pipeline, "_process_window", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    out = tmp_path / "p"
    assert main(argv[:3] + [str(out)] + argv[4:]) == 130
    assert not (out / "bag").exists() and not (out / "summary.json").exists()


def test_reconstruct_names_cameras_whose_stamps_or_focal_length_are_off_the_others(tmp_path, capsys):
    """A moving head rig (validation scene 1002141) whose camera cam0 is posed 20 ms behind its images and whose
    cam2's fx, fy are 5 % long: each warned once, and in each read window's summary input_findings (the shipped
    model: the readings are at its input size, on its 12 inputs)."""
    from stamp_support import head_rig

    from lrm4d_ros.cli import main
    from lrm4d_ros.io.bag import write_bag

    bag = write_bag(head_rig(0.02, focal=1.05), tmp_path / "bag", depth_encoding="32FC1")
    assert main(["reconstruct", str(bag), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-video"]) == 0
    err = capsys.readouterr().err
    assert err.count("lrm4d reconstruct: warning: camera cam0's images agree with the other cameras' at its stamps "
                     "+20 ms") == 1, err
    assert err.count("camera cam2's images agree with the other cameras' with its camera_info fx, fy x0.951") == 1
    assert "cameras.cam0.time_offset_s: 0.02" in err and "cam1's" not in err
    rows = json.loads((tmp_path / "out" / "summary.json").read_text())["windows"]
    assert len(rows) == 2 and all(sum("images agree" in f for f in w["input_findings"]) == 2 for w in rows)
