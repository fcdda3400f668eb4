#!/usr/bin/env python3
"""The README's viewer screenshot: `lrm4d view` on a MuJoCo robot bag, photographed by headless Chromium.

    MUJOCO_GL=osmesa python scripts/viewer_screenshot.py [--out docs/viewer_jaco.png] [--checkpoint CKPT]

Renders the dm_control Jaco arm on its floor seen by a 6-camera work-cell rig with depth cameras
(scripts/make_mujoco_bags.py --world --depth sensor) into a contract bag, serves it with the viewer exactly as `lrm4d view BAG --window 12 --time T` does (one window reconstructed by
the model), opens the page in headless Chromium and saves the screenshot. Re-run it after retraining the model.
Needs mujoco==3.17.0, dm-control, libosmesa6 and Chromium (apt-get install chromium).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "viewer_jaco.png")
    ap.add_argument("--checkpoint", default=None, help="safetensors checkpoint (default: the shipped one)")
    ap.add_argument("--time", type=float, default=0.55, help="slider position, seconds into the window")
    ap.add_argument("--size", default="1280x720", help="browser window WxH")
    args = ap.parse_args(argv)

    import cv2

    from lrm4d_ros.viewer.browser import HeadlessPage
    from lrm4d_ros.viewer.server import Viewer
    from lrm4d_ros.viewer.sources import BagOptions, open_path

    with tempfile.TemporaryDirectory(prefix="lrm4d-shot-") as tmp:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_mujoco_bags.py"), "--out", tmp,
                        "--scenes", "jaco", "--rig", "workcell", "--frames", "12", "--cameras", "6",
                        "--resolution", "128", "--seed", "0", "--world", "--depth", "sensor"], check=True)
        bag = Path(tmp) / "jaco_workcell_floor"
        windows = open_path(bag, BagOptions(window="12", max_views=12, checkpoint=args.checkpoint, device="cpu"))
        viewer = Viewer(port=0)
        try:
            viewer.show(windows, start_s=args.time)
            end = time.monotonic() + 300
            while not viewer.draws and time.monotonic() < end:  # the model reconstructs the window first
                time.sleep(0.1)
            width, height = (int(x) for x in args.size.split("x"))
            with HeadlessPage(viewer.url, width=width, height=height, timeout=60) as page:
                page.settled_screenshot(lambda im: "Gaussians" in page.text(), timeout=60)
                page.dismiss_notifications()
                img = page.settled_screenshot(lambda im: "Software WebGL" not in page.text(), timeout=60)
        finally:
            viewer.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), img[..., ::-1])
    print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
