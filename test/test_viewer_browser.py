"""`lrm4d view` seen through headless Chromium (software WebGL): the page draws the splats in the scene's colours,
and moving its time slider moves what is drawn. The page is used as a person would: the "Gaussians" checkbox
gives the empty scene, the End key moves the time slider."""
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from lrm4d_ros.cameras import TimeWindow
from lrm4d_ros.ply import write_ply_4d
from viewer_support import (START_NS, bluish, changed, moving_scene, reddish, require_chromium, require_viser,
                            save)

ROOT = Path(__file__).resolve().parents[1]


def start_view(args: list[str], timeout: float = 60.0):
    """`lrm4d view ARGS` in a subprocess (this checkout's code) -> (process, URL it prints)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "lrm4d_ros.cli", "view", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            # Ctrl-C must reach it even where pytest runs as a background job (SIGINT ignored)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            proc.kill()
            raise AssertionError("lrm4d view printed no URL: " + "".join(seen)) from None
        seen.append(line)
        m = re.search(r"open (http://\S+) in a browser", line)
        if m:
            proc.lines = lines  # what it prints later, for the failure message of a test that stops it
            return proc, m.group(1)
        if proc.poll() is not None:
            raise AssertionError("lrm4d view exited: " + "".join(seen))


def stop_view(proc, timeout: float = 30.0) -> None:
    """Ctrl-C `lrm4d view`: it must exit 130 (as every command on Ctrl-C) within `timeout` s (it gives its server
    10 s); else the test fails with what it printed after its URL."""
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = None
    out = []
    while not proc.lines.empty():
        out.append(proc.lines.get_nowait())
    assert code == 130, f"lrm4d view exit code {code} after Ctrl-C; it printed: {''.join(out)[-3000:]}"


def red_x(img: np.ndarray, empty: np.ndarray) -> float:
    """Mean column of the red pixels that the splats drew (not there in the empty scene)."""
    mask = reddish(img) & changed(img, empty)
    assert mask.sum() > 300, f"only {mask.sum()} red splat pixels"
    return float(np.nonzero(mask)[1].mean())


def test_view_draws_splats_and_the_time_slider_moves_them(tmp_path):
    require_viser()
    require_chromium()
    from lrm4d_ros.viewer.browser import HeadlessPage

    ply = tmp_path / "moving.ply"
    write_ply_4d(ply, moving_scene(), TimeWindow(START_NS, START_NS + 10**9))
    proc, url = start_view([str(ply), "--port", "0", "--time", "0"])
    try:
        with HeadlessPage(url, width=800, height=600) as page:
            start = page.settled_screenshot(lambda im: reddish(im).sum() > 1000 and "0.000 s" in page.text())
            assert f"stamp {START_NS} ns" in page.text()
            page.click("Gaussians")
            empty = page.settled_screenshot(lambda im: changed(im, start).sum() > 1000)
            drawn = changed(start, empty)
            red, blue = (reddish(start) & drawn).sum(), (bluish(start) & drawn).sum()
            # the splats cover a clear part of the page, almost all of it in the scene's two colours
            assert drawn.sum() > 5000 and red > 2000 and blue > 1000, (drawn.sum(), red, blue)
            assert (red + blue) / drawn.sum() > 0.6
            assert (reddish(start) & ~reddish(empty)).sum() > 2000 and (bluish(start) & ~bluish(empty)).sum() > 1000

            page.click("Gaussians")
            page.slider_key("time (s)", "End")
            end = page.settled_screenshot(lambda im: "1.000 s" in page.text() and reddish(im).sum() > 1000)
            save(tmp_path, start=start, empty=empty, end=end)
            assert page.slider_value("time (s)") == 1.0
            assert f"stamp {START_NS + 10**9} ns" in page.text()
            # the red blob moved 1.2 m along +x, which this view shows to the right; the blue one stayed
            assert red_x(end, empty) > red_x(start, empty) + 100, (red_x(start, empty), red_x(end, empty))
            assert changed(end, start).sum() > 2000
            blue_start, blue_end = bluish(start) & drawn, bluish(end) & changed(end, empty)
            assert abs(blue_start.sum() - blue_end.sum()) < 0.5 * blue_start.sum()
    finally:
        stop_view(proc)
