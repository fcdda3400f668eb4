"""`lrm4d check-bag`: what a contract bag holds and what in it is unlike the data the model learned from, window by
window as `lrm4d reconstruct` takes them, without running the model (seconds for a bag).

For a bag written by another renderer or a robot: it reads the bag (what it skips or resizes), then measures each
window's depth (a renderer's background, unit against the poses, noise, edge pixels, distance along the ray rather
than z), camera frame (the poses against the depth) and world up, as `Reconstructor.inputs` does before every
reconstruction. On up to three windows spread over the bag (all their frames, not only the model's inputs)
it also reads each moving depth camera's stamps (stamp_offset.py) and each depth camera's focal length
(focal_scale.py, cameras looking the same way) against the other cameras'. What `lrm4d reconstruct`, `evaluate` and
the node would warn of, and a camera off the others, is listed once, with the windows it was found in. Exit
status: 0 nothing found, 1 something found, 2 an error (no bag, bad arguments).

    lrm4d check-bag BAG [--window 8] [--stride N] [--cameras a,b] [--max-views 12] [--start S] [--duration S]
                    [--json FILE]
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from .argtypes import add_part_arguments, add_window_arguments, check_part
from .outputs import check_writable
from .recording import make_windows, parse_spans
from .selection import depth_first_cameras, depth_flags, select_inputs
from .views import frame_indices


def add_arguments(p) -> None:
    p.add_argument("bag", help="contract bag (MCAP or sqlite3 directory/file, docs/design.md §4)")
    add_window_arguments(p)
    add_part_arguments(p, "check")
    p.add_argument("--checkpoint", default=None, help="safetensors checkpoint whose input size to use "
                                                      "(default: the shipped one)")
    p.add_argument("--json", type=Path, default=None, help="also write each window's measurements here")


def window_line(facts: dict) -> str:
    """One window's measurements (`Reconstructor.inputs` facts), as a line."""
    parts = []
    if "noise" in facts:
        parts += [f"depth noise {facts['noise']:.4f} /m", f"edge pixels dropped {100 * facts['mixed_dropped']:.2f} %",
                  f"depth x{facts['units_factor']:g} through the "
                  f"{'optical frame' if facts['frame'] is None else 'poses NOT as the optical frame'} "
                  f"({facts['agreement']:.0%} of the pixels agree; {facts['optical_agreement']:.0%} as given)",
                  f"ray-distance t {facts['ray_t']:+.0f}",
                  "renderer background " + ("none" if facts["far_background_m"] is None
                                            else f"from {facts['far_background_m']:.3f} m")]
    else:
        parts.append("no depth")
    parts.append(f"world z {facts['tilt_deg']:.1f}° from up")
    return ", ".join(parts)


def depth_line(views) -> str:
    """How many views have depth, and each camera's where some of its views have none (a dropped depth frame, depth
    at a lower rate than colour): what the model is given of them (selection.with_depth_first)."""
    flags = depth_flags(views)
    if flags is None:
        return "depth on 0 views"
    ids = views.camera_ids.tolist()
    first = depth_first_cameras(ids, flags)
    parts = []
    for c, name in enumerate(views.camera_names):
        mine = [f for f, cam in zip(flags, ids) if cam == c]
        if 0 < sum(mine) < len(mine):
            given = "those with depth" if c in first else "all, most without depth"
            parts.append(f"{name} {sum(mine)} of {len(mine)}: the model is given {given}")
    return f"depth on {sum(flags)} views" + (f" ({'; '.join(parts)})" if parts else "")


def rig_line(offsets: dict[str, float], scales: dict[str, float]) -> str:
    """A window's `stamp_offsets` and `focal_scales`, as a part of its line."""
    return ("stamps: no camera moves with another to read them against" if not offsets else
            "stamps against the rig's " + ", ".join(f"{n} {1e3 * x:+.0f} ms" for n, x in offsets.items())) + "; " + \
        ("focal lengths: no two cameras look the same way" if not scales else
         "focal lengths against the rig's " + ", ".join(f"{n} x{s:.2f}" for n, s in scales.items()))


def run(args) -> int:
    from .io.bag import BagError, check_fits, read_bag
    from .reconstructor import load_reconstructor
    from .colour_agreement import windows_to_read
    from .rig_reading import read_rig, rig_findings

    try:
        length, stride = parse_spans(args.window, args.stride)
        cameras = [c.strip() for c in args.cameras.split(",")] if args.cameras else None
        if args.json is not None:  # before the work, not after it
            check_writable(args.json, "--json", is_dir=False)
        rec = load_reconstructor(args.checkpoint, None, "cpu")  # (its input size: the checks read the model's views)
        check_part(args)
        check_fits(args.bag, cameras, args.start, args.duration,
                   advice="check a part of it (--start / --duration, seconds) or fewer --cameras")
        with warnings.catch_warnings(record=True) as read_warnings:
            warnings.simplefilter("always")
            views = read_bag(args.bag, cameras=cameras, start_s=args.start, duration_s=args.duration)
    except (BagError, ValueError, OSError) as e:  # OSError: a missing bag or checkpoint, ...
        print(f"lrm4d check-bag: error: {e}", file=sys.stderr)
        return 2
    found: dict[str, tuple[str, list]] = {}  # finding -> (its text, the windows it was found in)
    for w in read_warnings:
        found.setdefault(" ".join(str(w.message).split()), (" ".join(str(w.message).split()), ["reading"]))
    frames = int(frame_indices(views).max()) + 1
    print(f"{args.bag}: {len(views)} views from {len(views.camera_names)} cameras {views.camera_names} at "
          f"{views.height}x{views.width}, {frames} frames, "
          f"{(int(views.stamps_ns.max()) - int(views.stamps_ns.min())) * 1e-9:.3f} s; {depth_line(views)}")
    windows = make_windows(views, length, stride)
    rig_read = windows_to_read(len(windows))  # (seconds a window of 6 moving cameras: all their frames)
    rows = []
    for win in windows:
        sub = views.select(win.views)
        inputs = sub.select(select_inputs(sub, args.max_views, args.policy))
        facts = rec.inputs(inputs).facts
        line = window_line(facts)
        if win.index in rig_read and sub.depths is not None:
            small = sub.resized(*rec.input_size(sub.height, sub.width))
            facts["stamp_offsets"], facts["focal_scales"] = read_rig(small)
            line += "; " + rig_line(facts["stamp_offsets"], facts["focal_scales"])
        print(f"window {win.index + 1}/{len(windows)}: {len(inputs)} inputs; {line}", flush=True)
        for key, text in rec.findings(facts) + rig_findings(facts.get("stamp_offsets", {}),
                                                            facts.get("focal_scales", {})):
            found.setdefault(key, (text, []))[1].append(win.index + 1)
        rows.append({"window": win.index + 1, "inputs": len(inputs), **facts})
    if args.json is not None:
        try:
            args.json.write_text(json.dumps({"bag": str(args.bag), "windows": rows,
                                             "findings": [{"text": t, "where": w} for t, w in found.values()]},
                                            indent=1))
        except OSError as e:
            print(f"lrm4d check-bag: error: --json {args.json}: {e}", file=sys.stderr)
            return 2
    if not found:
        print("nothing found (what is checked: the depth's unit against the poses, quantity, noise, edge pixels and "
              "renderer background; the poses' camera frame; the world's up; depth cameras' stamps and focal lengths "
              "against each other; and what reading the bag skipped)")
        return 0
    print(f"{len(found)} finding{'s' if len(found) != 1 else ''}:")
    for text, where in found.values():
        print(f"- {text} [{where[0] if where == ['reading'] else 'windows ' + _ranges(where)}]")
    return 1


def _ranges(ns: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    out, start = [], ns[0]
    for a, b in zip(ns, ns[1:] + [None]):
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(out)
