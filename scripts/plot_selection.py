"""Draw which views lrm4d_ros.selection.select_views picks from a 2 s window of three kinds of rig, for each
policy (the default first), with max_views 12: docs/selection.png (grey: buffered views; filled: views given to
the model).

    python scripts/plot_selection.py [--out docs/selection.png]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from lrm4d_ros.selection import POLICIES, select_views

S = 10**9
T0 = 1_700_000_000 * S
MAX_VIEWS = 12
COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def rigs() -> dict[str, list[tuple[int, int]]]:
    """(stamp_ns, camera) of each rig over 2 s."""
    rng = np.random.default_rng(0)
    sync = [(T0 + f * S // 10, c) for f in range(20) for c in range(5)]
    unsync = [(T0 + f * S // 10 + c * S // 40 + int(rng.integers(0, 8 * 10**6)), c) for f in range(20)
              for c in range(4)]
    mixed = [(T0 + int(k * S / hz) + c * 7 * 10**6, c) for c, hz in enumerate((30, 10, 5, 1))
             for k in range(int(2 * hz))]
    return {"synchronized: 5 cameras at 10 Hz": sync, "unsynchronized: 4 cameras at 10 Hz": unsync,
            "mixed rates: 30, 10, 5, 1 Hz": mixed}


def panel(cands, policy: str, title: str, w: int = 620, h: int = 200) -> np.ndarray:
    img = np.full((h, w, 3), 255, np.uint8)
    cams = sorted({c for _, c in cands})
    chosen = set(select_views(cands, MAX_VIEWS, policy))
    x0, x1, y0, y1 = 70, w - 20, 40, h - 30
    t_lo, t_hi = min(s for s, _ in cands), max(s for s, _ in cands)

    def xy(s, c):
        x = x0 + (x1 - x0) * (s - t_lo) / max(t_hi - t_lo, 1)
        y = y0 + (y1 - y0) * cams.index(c) / max(len(cams) - 1, 1)
        return int(round(x)), int(round(y))

    for c in cams:
        cv2.putText(img, f"cam{c}", (8, xy(t_lo, c)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for i, (s, c) in enumerate(cands):
        color = COLORS[c % len(COLORS)][::-1]  # RGB -> BGR for OpenCV
        if i in chosen:
            cv2.circle(img, xy(s, c), 6, color, -1, cv2.LINE_AA)
        else:
            cv2.circle(img, xy(s, c), 3, (170, 170, 170), 1, cv2.LINE_AA)
    cv2.line(img, (x0, h - 18), (x1, h - 18), (0, 0, 0), 1)
    for k in range(5):
        x = x0 + (x1 - x0) * k // 4
        cv2.line(img, (x, h - 21), (x, h - 15), (0, 0, 0), 1)
        cv2.putText(img, f"{(t_hi - t_lo) * k / 4 / S:.1f} s", (x - 12, h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{title} - {policy}", (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "selection.png")
    args = ap.parse_args()
    rows = [np.concatenate([panel(cands, p, title) for p in POLICIES], axis=1)
            for title, cands in rigs().items()]
    cv2.imwrite(str(args.out), np.concatenate(rows, axis=0))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
