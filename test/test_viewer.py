"""`lrm4d view` without a browser: what each source loads (slices against the reconstruction they came from),
clear errors for bad input, and the viser server's state (the splats it sends, its slider, frustums, and the
thread it slices on). The screenshots through Chromium are test_viewer_browser.py."""
import json
import socket
import threading
import time

import numpy as np
import pytest
import torch

from lrm4d_ros.cameras import TimeWindow
from lrm4d_ros.ply import read_ply_fields, write_ply_3dgs, write_ply_4d, write_ply_fields
from lrm4d_ros.viewer.sources import ViewerError, ViewerWindow, load_ply_window, nearest_window, open_path
from viewer_support import START_NS, moving_scene, require_viser

FRAMES, CAMS, H, W = 6, 2, 24, 32


@pytest.fixture(scope="module")
def views():
    from lrm4d_ros.data.generator import SceneConfig, generate

    return generate(4, SceneConfig(frames=FRAMES, cameras=CAMS, height=H, width=W, rig_kinds=("orbit",)))


@pytest.fixture(scope="module")
def rec(views):
    from lrm4d_ros.reconstructor import load_reconstructor

    return load_reconstructor(None, "tiny", "cpu", seed=0).reconstruct(views)


@pytest.fixture(scope="module")
def scene_ply(tmp_path_factory):
    path = tmp_path_factory.mktemp("scene") / "moving.ply"
    write_ply_4d(path, moving_scene(), TimeWindow(START_NS, START_NS + 10**9))
    return path


def _assert_same(a, b, atol=1e-5):
    assert len(a) == len(b) > 0
    torch.testing.assert_close(a.means, b.means, rtol=1e-4, atol=atol)
    torch.testing.assert_close(a.covars, b.covars, rtol=1e-3, atol=atol ** 2)
    torch.testing.assert_close(a.opacities, b.opacities, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a.colors, b.colors)


def test_a_bag_is_reconstructed_with_the_default_selection_policy():
    """`lrm4d view BAG` picks each window's inputs as `lrm4d reconstruct` and the node do (its defaults are literals:
    the command module does not import torch for a PLY)."""
    from lrm4d_ros.selection import DEFAULT_POLICY
    from lrm4d_ros.viewer.command import BAG_DEFAULTS
    from lrm4d_ros.viewer.sources import BagOptions

    assert BAG_DEFAULTS["policy"] == BagOptions.policy == DEFAULT_POLICY


def test_windows_slice_like_the_reconstruction(rec, views, tmp_path):
    """A Reconstruction and its 4D PLY (metres, seconds, stamps in the header) slice to the same metres."""
    live = ViewerWindow.from_reconstruction(rec, views)
    path = tmp_path / "g.ply"
    write_ply_4d(path, rec.gaussians.to_world(rec.normalization, rec.window), rec.window)
    ply = load_ply_window(path)
    assert (ply.start_ns, ply.end_ns) == (live.start_ns, live.end_ns) == (rec.window.start_ns, rec.window.end_ns)
    for s in (rec.window.start_ns, (rec.window.start_ns + rec.window.end_ns) // 2 + 12_345, rec.window.end_ns):
        _assert_same(live.slice(s), rec.slice(s))
        # every Gaussian, culled or not: the PLY went through float32 metres and seconds
        want = rec.gaussians.slice(rec.window.normalize(s), min_marginal=0).to_world(rec.normalization)
        got = ply.slice(s, min_marginal=0)
        torch.testing.assert_close(got.means, want.means, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got.opacities, want.opacities, rtol=1e-3, atol=1e-4)


def test_gaussians_with_non_finite_values_are_left_out_with_a_note(tmp_path, capsys):
    g = moving_scene()
    g.means[3, 0] = float("nan")  # one NaN position had made the framing NaN: a blank page and no error
    g.colors[5, 1] = float("inf")
    path = tmp_path / "nan.ply"
    write_ply_4d(path, g, TimeWindow(START_NS, START_NS + 10**9))
    win = load_ply_window(path)
    assert len(win.gaussians) == len(g) - 2 and bool(torch.isfinite(win.gaussians.means).all())
    assert f"2 of {len(g)} Gaussians have non-finite values" in capsys.readouterr().err


def test_ply_without_stamps_estimates_the_window_from_its_times(tmp_path):
    g = moving_scene()
    path = tmp_path / "nostamps.ply"
    write_ply_4d(path, g)
    [ref] = open_path(path)
    assert ref.start_ns == 0 and abs(ref.end_ns - 10**9) < 0.02e9  # the red clusters' times span 0..1 s
    assert "no stamps" in ref.label


def test_bad_input_gives_clear_errors(tmp_path, rec, capsys):
    from lrm4d_ros.cli import main

    with pytest.raises(ViewerError, match="does not exist"):
        open_path(tmp_path / "missing.ply")
    half = tmp_path / "half.ply"  # 3DGS columns cut short: neither a 4D nor a 3D PLY
    write_ply_fields(half, {"x": np.zeros(2, np.float32), "y": np.zeros(2, np.float32), "opacity": np.zeros(2)})
    with pytest.raises(ViewerError, match="missing PLY properties"):
        open_path(half)
    text = tmp_path / "notes.ply"
    text.write_text("hello\n")
    with pytest.raises(ViewerError, match="not a PLY file"):
        open_path(text)
    empty_ply = tmp_path / "empty.ply"
    write_ply_4d(empty_ply, rec.gaussians.select(torch.zeros(len(rec.gaussians), dtype=torch.bool)).to_world(
        rec.normalization, rec.window))
    with pytest.raises(ViewerError, match="holds no Gaussians"):
        open_path(empty_ply)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ViewerError, match="is empty: expected a 4D PLY"):
        open_path(tmp_path / "empty")
    broken = tmp_path / "broken"
    (broken / "window_000").mkdir(parents=True)
    (broken / "summary.json").write_text(json.dumps({"windows": [
        {"window": 0, "dir": "window_000", "start_ns": 0, "end_ns": 10}]}))
    with pytest.raises(ViewerError, match="window_000/gaussians_4d.ply is missing"):
        open_path(broken)
    assert main(["view", str(tmp_path / "empty")]) == 2
    assert "lrm4d view: error:" in capsys.readouterr().err


def test_port_in_use_is_refused(scene_ply, capsys):
    require_viser()
    from lrm4d_ros.cli import main
    from lrm4d_ros.viewer.server import Viewer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ViewerError, match=f"port {port} is in use"):
            Viewer(port=port)
        assert main(["view", str(scene_ply), "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert f"port {port} is in use" in err and "http" not in out  # no banner of the next free port


def test_a_viewer_on_every_interface_names_this_machine():
    """--host 0.0.0.0 is for other machines: the URL printed must be one they can open, not 127.0.0.1 alone."""
    require_viser()
    from lrm4d_ros.viewer.server import Viewer

    viewer = Viewer(port=0, host="0.0.0.0")
    try:
        assert viewer.url.startswith(f"http://{socket.gethostname()}:{viewer.port} ")
        assert f"http://127.0.0.1:{viewer.port}" in viewer.url
    finally:
        viewer.close()
    viewer = Viewer(port=0)  # the default, this machine only
    try:
        assert viewer.url == f"http://127.0.0.1:{viewer.port}"
    finally:
        viewer.close()


def _wait(predicate, timeout=30.0, what="the viewer"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _sent_splats(viewer) -> np.ndarray:
    """Centres (N,3) float32 of the splats the viewer last handed to viser (its buffer layout: 8 uint32 per
    Gaussian, the first three the centre's float32 bits)."""
    return viewer._splats.buffer[:, :3].copy().view(np.float32)


def test_viewer_sends_the_slice_at_the_slider_time_from_its_own_thread(scene_ply, monkeypatch):
    require_viser()
    from lrm4d_ros.viewer.server import PLAY_FPS, Viewer

    threads = []
    original = ViewerWindow.slice
    monkeypatch.setattr(ViewerWindow, "slice", lambda self, s: threads.append(threading.current_thread().name)
                        or original(self, s))
    windows = open_path(scene_ply)
    viewer = Viewer(port=0)
    try:
        viewer.show(windows, start_s=0.0)
        _wait(lambda: viewer.draws and viewer.draws[-1].stamp_ns == START_NS, what="the first draw")
        win = windows[0].load()
        for t_s in (0.0, 0.4, 1.0):
            viewer._time.value = t_s  # as the browser's slider does (GuiInputHandle.value runs the callbacks)
            stamp = START_NS + round(t_s * 1e9)
            _wait(lambda: viewer.draws[-1].stamp_ns == stamp, what=f"a draw at {t_s} s")
            want = original(win, stamp)  # not counted among the slicing threads
            assert viewer.draws[-1].gaussians == len(want)
            np.testing.assert_array_equal(np.sort(_sent_splats(viewer), 0), np.sort(want.means.numpy(), 0))
        # the red blob is at x = -0.6 m at 0 s and +0.6 m at 1 s
        viewer._time.value = 0.0
        _wait(lambda: viewer.draws[-1].stamp_ns == START_NS)
        x0 = np.median(_sent_splats(viewer)[:, 0])
        viewer._show_gaussians.value = False
        _wait(lambda: viewer._splats is None, what="the splats removed")
        viewer._show_gaussians.value = True
        viewer._time.value = 1.0
        _wait(lambda: viewer.draws[-1].stamp_ns == START_NS + 10**9 and viewer._splats is not None)
        assert np.median(_sent_splats(viewer)[:, 0]) > x0 + 0.3
        assert "1.000 s" in viewer._info.content and "600 Gaussians" in viewer._info.content
        assert viewer._show_cameras.visible is False  # a PLY has no cameras: no checkbox for them
        viewer._time.value = 5.0  # typed into the slider's box, past the end: the box reads the end shown
        _wait(lambda: viewer._time.value == pytest.approx(1.0), what="the typed time clamped")
        assert viewer.draws[-1].stamp_ns == START_NS + 10**9
        # play: the slider advances by itself (wrapping at the window's end), a new slice each step
        n = len(viewer.draws)
        viewer._play.value = True
        _wait(lambda: len(viewer.draws) >= n + 4, what="playback")
        time.sleep(1.0)  # at PLAY_FPS: the loop's own slider updates had woken it at once, a redraw per millisecond
        t1 = time.monotonic()
        viewer._play.value = False
        recent = [d for d in viewer.draws if d.done > t1 - 1.0]
        assert 3 <= len(recent) <= 1.5 * PLAY_FPS, len(recent)
        stamps = [d.stamp_ns for d in list(viewer.draws)[n:n + 4]]
        assert len(set(stamps)) == 4 and all(START_NS <= s <= START_NS + 10**9 for s in stamps)
    finally:
        viewer.close()
    assert threads and set(threads) == {"lrm4d-viewer"}


def test_live_update_returns_at_once_and_keeps_the_slider_fraction(rec, views, monkeypatch):
    require_viser()
    from dataclasses import replace

    from lrm4d_ros.viewer.server import Viewer

    release = threading.Event()
    original = ViewerWindow.from_reconstruction.__func__
    monkeypatch.setattr(ViewerWindow, "from_reconstruction",
                        classmethod(lambda cls, r, v=None: release.wait(30) and original(cls, r, v)))
    viewer = Viewer(port=0)
    try:
        viewer.update(rec, views)  # the viewer thread is held inside loading it: update must not wait for it
        assert not viewer.draws
        release.set()
        _wait(lambda: viewer.draws and viewer.draws[-1].stamp_ns == rec.window.end_ns, what="the newest stamp")
        assert set(viewer._frustums) == set(views.camera_names)
        span = rec.window.end_ns - rec.window.start_ns
        viewer._time.value = 0.25 * span * 1e-9
        _wait(lambda: viewer.draws[-1].stamp_ns == rec.window.start_ns + round(0.25 * span))
        # the next window, one span later: the slider stays a quarter into it
        shift = span
        later = replace(rec, window=TimeWindow(rec.window.start_ns + shift, rec.window.end_ns + shift))
        viewer.update(later, None)
        _wait(lambda: viewer.draws[-1].stamp_ns == later.window.start_ns + round(0.25 * span), what="the update")
        assert viewer._frustums == {}  # no views given: no frustums
    finally:
        viewer.close()


@pytest.fixture(scope="module")
def source_bag(views, tmp_path_factory):
    from lrm4d_ros.io.bag import write_bag

    return write_bag(views, tmp_path_factory.mktemp("src") / "bag")


def test_output_folder_and_bag_windows_with_their_cameras(source_bag, tmp_path):
    require_viser()
    from lrm4d_ros.cli import main
    from lrm4d_ros.viewer.server import Viewer
    from lrm4d_ros.viewer.sources import BagOptions

    out = tmp_path / "recon"
    assert main(["reconstruct", str(source_bag), "--out", str(out), "--config", "tiny", "--device", "cpu",
                 "--window", "4", "--stride", "2", "--no-video"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    folder = open_path(out)
    bag = open_path(source_bag, BagOptions(window="4", stride="2", config="tiny", device="cpu"))
    rows = [(r["start_ns"], r["end_ns"]) for r in summary["windows"]]
    assert len(rows) == 2
    assert [(w.start_ns, w.end_ns) for w in folder] == [(w.start_ns, w.end_ns) for w in bag] == rows
    # the same windows, reconstructed by the same seeded model: the same Gaussians
    a, b = folder[1].load(), bag[1].load()
    assert len(a.views) == len(b.views) == 4 * CAMS
    assert torch.equal(a.views.stamps_ns, b.views.stamps_ns)
    mid = folder[1].mid_ns
    assert nearest_window(folder, mid) == 1 and nearest_window(folder, rows[0][0]) == 0
    assert abs(len(a.slice(mid)) - len(b.slice(mid))) <= 0.01 * len(b.slice(mid))

    viewer = Viewer(port=0)
    try:
        viewer.show(folder, start_s=(mid - rows[0][0]) * 1e-9)
        _wait(lambda: viewer.draws and viewer.draws[-1].stamp_ns == mid, what="window 1 at its middle")
        assert set(viewer._frustums) == set(a.views.camera_names)
        # each camera shows its view nearest the stamp: that view's pose
        for name, ((_, i), handle) in viewer._frustums.items():
            cam = a.views.camera_names.index(name)
            assert int(a.views.camera_ids[i]) == cam
            mine = a.views.stamps_ns[a.views.camera_ids == cam]
            assert abs(int(a.views.stamps_ns[i]) - mid) == int((mine - mid).abs().min())
            np.testing.assert_allclose(handle.position, a.views.camtoworlds[i, :3, 3].numpy(), atol=1e-6)
        assert "window 1 (2/2)" in viewer._info.content
    finally:
        viewer.close()


def test_a_bag_takes_reconstructs_input_policy_and_floor(source_bag, monkeypatch):
    """`lrm4d view BAG --policy latest --max-views 2 --floor-z 0` gives the model what `lrm4d reconstruct` with
    those options would: the window's 2 newest views, and the floor's height."""
    require_viser()
    from lrm4d_ros.cli import main
    from lrm4d_ros.reconstructor import Reconstructor
    from lrm4d_ros.viewer import sources

    seen = {}

    class Given(Exception):
        pass

    def reconstruct(self, views, normalization=None):
        seen.update(stamps=views.stamps_ns.clone(), floor_z=self.floor_z)
        raise Given

    def show(windows):
        seen["window"] = windows[0]
        with pytest.raises(Given):
            windows[0].load()
        raise sources.ViewerError("stop here")

    monkeypatch.setattr(Reconstructor, "reconstruct", reconstruct)
    opened = sources.open_path
    monkeypatch.setattr(sources, "open_path", lambda path, opts: show(opened(path, opts)))
    assert main(["view", str(source_bag), "--port", "0", "--config", "tiny", "--device", "cpu", "--window", "4",
                 "--policy", "latest", "--max-views", "2", "--floor-z", "0"]) == 2
    assert seen["floor_z"] == 0.0
    win = seen["window"]  # 4 frames: its newest frame's views lie within a sixth of its span of its end
    assert len(seen["stamps"]) == 2 and int(seen["stamps"].max()) == win.end_ns
    assert win.end_ns - int(seen["stamps"].min()) < (win.end_ns - win.start_ns) / 6


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint", "/nonexistent.safetensors"], "checkpoint not found: /nonexistent.safetensors"),
    (["--config", "nosuch"], "cannot load the model (--config nosuch): unknown preset"),
    (["--device", "foo"], "device 'foo'"),
    (["--device", "cuda"], "device 'cuda' is not available"),
    (["--max-views", "0"], "--max-views must be >= 1, got 0"),
])
def test_bad_bag_options_fail_before_the_server_starts(source_bag, argv, message, monkeypatch, capsys):
    """Not on every window shown, once a second, with the server up (the model is loaded before it starts)."""
    require_viser()
    from lrm4d_ros.cli import main

    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("CUDA is available here")

    def started(*_, **__):
        raise AssertionError("the server started")

    monkeypatch.setattr("lrm4d_ros.viewer.server.Viewer", started)
    assert main(["view", str(source_bag), "--port", "0", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lrm4d view: error: ") and message in err[0], err


@pytest.mark.parametrize("time_s, warning", [
    (2.5, "lrm4d view: warning: --time 2.5 s is outside the recording (0 to 1.000 s): clamped to 1.000 s\n"),
    (-1.0, "lrm4d view: warning: --time -1 s is outside the recording (0 to 1.000 s): clamped to 0.000 s\n"),
    (0.5, ""),
])
def test_a_time_outside_the_recording_is_clamped_with_a_warning(scene_ply, time_s, warning, monkeypatch, capsys):
    require_viser()
    from lrm4d_ros.cli import main

    shown = []

    class Viewer:  # stands in for the server: records where the slider starts, then Ctrl-C
        url = "http://127.0.0.1:0"

        def __init__(self, **_):
            pass

        def show(self, windows, start_s=None):
            shown.append(start_s)
            raise KeyboardInterrupt

        def close(self):
            pass

    monkeypatch.setattr("lrm4d_ros.viewer.server.Viewer", Viewer)
    assert main(["view", str(scene_ply), "--port", "0", "--time", str(time_s)]) == 130  # Ctrl-C, as every command
    assert capsys.readouterr().err == warning + "lrm4d view: interrupted (Ctrl-C)\n"
    assert shown == [time_s]  # the server clamps it (Viewer._take_pending)


def test_bag_options_on_a_ply_are_ignored_with_a_warning(scene_ply, monkeypatch, capsys):
    require_viser()
    from lrm4d_ros.cli import main

    class Viewer:  # stands in for the server: Ctrl-C at once
        url = "http://127.0.0.1:0"

        def __init__(self, **_):
            pass

        def show(self, windows, start_s=None):
            raise KeyboardInterrupt

        def close(self):
            pass

    monkeypatch.setattr("lrm4d_ros.viewer.server.Viewer", Viewer)
    assert main(["view", str(scene_ply), "--port", "0", "--window", "4", "--cameras", "cam9"]) == 130
    assert capsys.readouterr().err == (f"lrm4d view: warning: --window, --cameras apply to a bag, reconstructed as it "
                                       f"is shown; {scene_ply} holds reconstructions already: ignored\n"
                                       "lrm4d view: interrupted (Ctrl-C)\n")


def test_bad_checkpoint_exits_with_one_line(source_bag):
    """The command itself, in its own process: it ends (rc 2) and never opens the server."""
    import subprocess
    import sys

    require_viser()
    # --port 0 (any free port): a port probed free here could be taken by another process before the command ran
    run = subprocess.run([sys.executable, "-m", "lrm4d_ros.cli", "view", str(source_bag), "--port", "0",
                          "--checkpoint", "/nonexistent.safetensors"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert run.stderr.strip().splitlines() == [
        "lrm4d view: error: cannot load the model (--checkpoint /nonexistent.safetensors): checkpoint not found: "
        "/nonexistent.safetensors"]
    assert "http" not in run.stdout


def test_a_recurring_error_is_logged_once_then_counted_on_stderr(monkeypatch, capsys):
    """A window that keeps failing is tried again (a live source may come back), but not logged every time."""
    require_viser()
    from lrm4d_ros.viewer import server
    from lrm4d_ros.viewer.sources import WindowRef

    monkeypatch.setattr(server, "RETRY_S", 0.01)
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("no such window")

    viewer = server.Viewer(port=0)
    try:
        viewer.show([WindowRef("broken", START_NS, START_NS + 10**9, broken)])
        viewer._play.value = True  # redraws (and so retries) at PLAY_FPS rather than once a second
        _wait(lambda: len(calls) >= 12, what="12 tries")
        assert "**error**: ValueError: no such window" in viewer._info.content
    finally:
        viewer.close()
    captured = capsys.readouterr()
    assert "no such window" not in captured.out
    err = captured.err.splitlines()
    assert err.count("lrm4d view: ValueError: no such window") == 1
    assert "lrm4d view: the same error 10 more times (still retrying)" in err
    assert len(err) == 2, err


def test_demo_ends_with_the_command_that_opens_its_result(tmp_path, capsys):
    from lrm4d_ros.cli import main

    assert main(["demo", "--config", "tiny", "--device", "cpu", "--out", str(tmp_path), "--frames", "3",
                 "--cameras", "2", "--resolution", "16", "--video-frames", "2"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    command = last[last.index("lrm4d view "):].split()
    assert command[:2] == ["lrm4d", "view"] and len(command) == 3
    [ref] = open_path(command[2])  # what `lrm4d view` opens: the 4D PLY, with the window's stamps
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    win = ref.load()
    assert len(win.gaussians) == metrics["gaussians_4d"] and "no stamps" not in ref.label
    assert len(win.slice(ref.mid_ns)) == metrics["gaussians_slice"]  # the demo's slice.ply is at the middle


def test_a_3d_ply_is_shown_as_a_still_scene(tmp_path, rec):
    """A 3DGS PLY (the package's slice.ply, or another tool's, whose quaternions need not be unit) is shown the same
    at every moment of a second around its stamp: each slice is its Gaussians as read."""
    from lrm4d_ros.ply import read_ply_3dgs

    g3 = rec.slice(rec.window.end_ns)
    slice_ply = tmp_path / "slice.ply"
    write_ply_3dgs(slice_ply, g3, stamp_ns=rec.window.end_ns)
    [ref] = open_path(slice_ply)
    assert (ref.start_ns, ref.end_ns) == (rec.window.end_ns - 500_000_000, rec.window.end_ns + 500_000_000)
    assert "3D Gaussians: the same at every moment" in ref.label
    win = ref.load()
    want = read_ply_3dgs(slice_ply)
    for stamp in (ref.start_ns, ref.mid_ns, ref.end_ns):
        got = win.slice(stamp)
        assert len(got) == len(want)
        torch.testing.assert_close(got.means, want.means)
        torch.testing.assert_close(got.covars, want.covars)
        torch.testing.assert_close(got.opacities, want.opacities)
        torch.testing.assert_close(got.colors, want.colors)
    foreign = tmp_path / "foreign.ply"  # no stamp: the first second
    fields = read_ply_fields(slice_ply)
    fields.update({f"rot_{i}": 3.0 * fields[f"rot_{i}"] for i in range(4)})
    fields.update({f"f_rest_{i}": np.zeros(len(g3), np.float32) for i in range(45)})
    write_ply_fields(foreign, fields)
    [ref] = open_path(foreign)
    assert (ref.start_ns, ref.end_ns) == (0, 1_000_000_000)
    torch.testing.assert_close(ref.load().slice(ref.mid_ns).covars, want.covars, rtol=1e-4, atol=1e-7)
