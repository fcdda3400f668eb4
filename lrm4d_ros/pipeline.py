"""`lrm4d reconstruct BAG --out DIR`: a contract bag (docs/design.md §4) in, per sliding window 4D Gaussians out.

Per window it writes `window_NNN/gaussians_4d.ply` (world units, seconds since the window start),
`window_NNN/slice.ply` (3DGS slice at the source stamp nearest the window's middle), a rendered video
(`window_NNN/video.mp4`: an orbit around the scene centre sweeping the window's time, or one of the bag's
cameras through time), and it adds to one output bag (`OUT/bag`, MCAP):

- `/lrm4d/<cam>/image` (rgb8), `/lrm4d/<cam>/depth` (32FC1, metres), `/lrm4d/<cam>/camera_info` and `/tf`
  (world -> `lrm4d/<cam>_optical_frame`): every source view re-rendered from its own camera and stamp, by the window
  whose middle is nearest its stamp (so each source stamp appears once per topic);
- `/lrm4d/gaussians` (PointCloud2, layout in io/output_bag.py): the window's slice, stamped with that source
  stamp; a depth camera's measured pixels at their measurement, as the node's `~/gaussians` (slice.ply keeps the
  model's placement, as renders draw it).

Views not chosen as model inputs are held out, so their PSNR against the bag is a fair accuracy figure; the
summary prints it beside the PSNR on the input views. Where the bag has /<cam>/depth, the model's input views
carry it (`ViewSet.depths`); `--depth off` strips it. Each window's row in summary.json holds its input_findings
(`Reconstruction.findings`; on three windows spread over the bag also rig_reading.py's reading of its inputs).
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from .argtypes import add_part_arguments, add_window_arguments, check_part, positive_float, positive_int
from .cameras import orbit_path
from .io.output_bag import GAUSSIANS_TOPIC, TOPIC_PREFIX, OutputBag
from .metrics import depth_scores, depth_sums, psnr
from .model import BF16_CHOICES
from .outputs import check_writable
from .recording import Span, Window, make_windows, parse_spans
from .reconstructor import check_model_choice, load_reconstructor
from .colour_agreement import windows_to_read
from .rig_reading import read_rig, rig_findings
from .selection import select_inputs
from .views import ViewSet, frame_indices, short_side_size


# ---------------------------------------------------------------------------------- renders along camera paths
def sweep_stamps(start_ns: int, end_ns: int, n: int) -> Tensor:
    """(n,) int64 stamps evenly spaced over [start_ns, end_ns] (both ends included)."""
    if n == 1:
        return torch.tensor([start_ns + (end_ns - start_ns) // 2], dtype=torch.int64)
    frac = torch.arange(n, dtype=torch.float64) / (n - 1)
    return start_ns + torch.round(frac * (end_ns - start_ns)).to(torch.int64)


def render_frames(recon, camtoworlds: Tensor, Ks: Tensor, width: int, height: int, stamps_ns: Tensor,
                  background=None, desc: str | None = None, batch: int = 4):
    """Render C views (one per stamp) in batches -> (colors (C,H,W,3), depths (C,H,W)); with a `desc`, a progress
    bar where stderr is a terminal."""
    colors, depths = [torch.zeros(0, height, width, 3)], [torch.zeros(0, height, width)]
    with tqdm(total=len(stamps_ns), desc=desc, unit="view", disable=None if desc else True, leave=False) as bar:
        for i in range(0, len(stamps_ns), batch):
            sl = slice(i, i + batch)
            out = recon.render(camtoworlds[sl], Ks[sl], width, height, stamps_ns[sl], background)
            colors.append(out.colors.cpu())
            depths.append(out.depths[..., 0].cpu())
            bar.update(len(stamps_ns[sl]))
    return torch.cat(colors), torch.cat(depths)


# ------------------------------------------------------------------------------------------------ CLI
def add_arguments(p) -> None:
    p.add_argument("bag", help="contract bag (MCAP or sqlite3 directory/file, docs/design.md §4)")
    p.add_argument("--out", required=True, help="output directory")
    add_window_arguments(p)
    add_part_arguments(p, "reconstruct")
    p.add_argument("--resolution", default=None,
                   help="render resolution: HxW or the short side in pixels (default: the bag's)")
    p.add_argument("--depth", default="on", choices=("on", "off"),
                   help="give the model the bag's /<cam>/depth images where it has them (default: on)")
    p.add_argument("--floor-z", type=float, default=None, metavar="METRES",
                   help="world height of the floor where it is known (a ground robot's odom/map frame: 0); "
                        "default: found from depth or by matching the views")
    p.add_argument("--video-camera", default=None, help="render the video from this bag camera (default: orbit)")
    p.add_argument("--video-frames", type=positive_int, default=24,
                   help="frames of each window's orbit video (default: 24)")
    p.add_argument("--fps", type=positive_float, default=12.0, help="frame rate of the videos (default: 12)")
    p.add_argument("--checkpoint", default=None, help="safetensors checkpoint (default: the shipped one)")
    p.add_argument("--config", default=None, help="use a randomly initialised model of this preset (tests)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    p.add_argument("--bf16", choices=tuple(BF16_CHOICES), default="auto",
                   help="the transformer under bf16 autocast: auto = where the hardware computes it natively "
                        "(default: auto)")
    p.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"),
                   help="output bag storage (default: mcap)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output bag, and the window_NNN folders and summary an earlier run wrote")
    p.add_argument("--no-video", action="store_true", help="skip the videos")
    p.add_argument("--seed", type=int, default=None, help="seed for a --config model's random weights (default: 0)")


def parse_resolution(text: str | None, height: int, width: int) -> tuple[int, int]:
    """"HxW" -> (H, W); "N" -> short side N with the aspect ratio kept; None -> (height, width)."""
    if text is None:
        return height, width
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", str(text))
    if not m or int(m.group(1)) <= 0 or (m.group(2) and int(m.group(2)) <= 0):
        raise ValueError(f"--resolution must be HxW or a short side, in pixels >= 1, got {text!r}")
    if m.group(2):
        return int(m.group(1)), int(m.group(2))
    return short_side_size(height, width, int(m.group(1)))


def check_out(out: Path, overwrite: bool, bag: str | Path | None = None) -> None:
    """Refuse an output folder that is a file or cannot be written, that is the input `bag`'s folder or inside
    it, or that holds a bag without `overwrite`: before a bag is read or a model loaded."""
    check_writable(out, "--out")
    if bag is not None:
        bag_dir = Path(bag).resolve()
        if bag_dir.is_file() and (bag_dir.parent / "metadata.yaml").is_file():  # a bag's .mcap/.db3 file
            bag_dir = bag_dir.parent
        if bag_dir.is_dir() and (out.resolve() == bag_dir or bag_dir in out.resolve().parents):
            raise ValueError(f"--out {out} is the input bag {bag} or inside it: give an output folder outside the "
                             "bag")
    if (out / "bag").exists() and not overwrite:
        try:
            partial = json.loads((out / "summary.json").read_text()).get("complete") is False
        except (OSError, ValueError):  # none, or unreadable: that run did not get to its end
            partial = True
        raise FileExistsError(f"output bag {out / 'bag'} already exists"
                              + (", from a run that did not finish" if partial else "")
                              + " (remove it or pass --overwrite)")


def run(args) -> int:
    from .io.bag import BagError, check_fits, pose_frame, read_bag

    try:
        check_out(Path(args.out), args.overwrite, args.bag)
        check_model_choice(args.checkpoint, args.config)
        length, stride = parse_spans(args.window, args.stride)
        cameras = [c.strip() for c in args.cameras.split(",")] if args.cameras else None
        check_part(args)
        check_fits(args.bag, cameras, args.start, args.duration,
                   advice="reconstruct a part of it (--start / --duration, seconds) or fewer --cameras")
        t0 = time.perf_counter()
        print(f"reading {args.bag} ...", flush=True)
        views = read_bag(args.bag, cameras=cameras, start_s=args.start, duration_s=args.duration)
        world_frame = pose_frame(args.bag, cameras)
    except (BagError, ValueError, OSError) as e:  # OSError: FileExistsError, PermissionError, ...
        print(f"lrm4d reconstruct: error: {e}", file=sys.stderr)
        return 2
    try:
        summary = reconstruct_views(views, Path(args.out), length, stride, args, read_s=time.perf_counter() - t0,
                                    world_frame=world_frame)
    except (ValueError, OSError) as e:
        print(f"lrm4d reconstruct: error: {e}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 0


def reconstruct_views(views: ViewSet, out: Path, length: Span, stride: Span, args, read_s: float = 0.0,
                      world_frame: str = "world") -> dict:
    """The body of `lrm4d reconstruct` for views already read from a bag; returns the summary dict
    (also written to OUT/summary.json). world_frame: the frame of the views' poses (the input bag's), that of the
    output bag's /tf parents and Gaussians."""
    if args.video_camera is not None and args.video_camera not in views.camera_names:
        raise ValueError(f"--video-camera {args.video_camera!r} is not in the bag; cameras: {views.camera_names}")
    if args.video_camera is not None and args.no_video:
        print("lrm4d reconstruct: warning: --video-camera with --no-video: no video is written", file=sys.stderr)
    seed = getattr(args, "seed", None)
    if seed is not None and args.config is None:
        print("lrm4d reconstruct: warning: --seed without --config: the checkpoint's weights are used, the seed is not",
              file=sys.stderr)
    if getattr(args, "depth", "on") == "off":
        views = replace(views, depths=None)
    H, W = parse_resolution(args.resolution, views.height, views.width)
    views = views.resized(H, W)
    check_out(out, args.overwrite)
    windows = make_windows(views, length, stride)
    unowned = len(views) - sum(len(w.own) for w in windows)
    if unowned:  # a stride longer than the window: say so, the output bag will not hold them
        print(f"lrm4d reconstruct: warning: {unowned} of {len(views)} views fall between windows (--stride {stride} "
              f"> --window {length}) and are not reconstructed or re-rendered", file=sys.stderr)
    frames = int(frame_indices(views).max()) + 1
    span_s = (int(views.stamps_ns.max()) - int(views.stamps_ns.min())) * 1e-9
    if length.value > (frames if length.unit == "frames" else span_s):
        print(f"lrm4d reconstruct: warning: --window {length} is longer than the bag ("
              f"{f'{frames} frames' if length.unit == 'frames' else f'{span_s:.3f} s'}): one window holds all of it",
              file=sys.stderr)
    print(f"{len(views)} views from {len(views.camera_names)} cameras {views.camera_names} at {H}x{W}, "
          f"{span_s:.3f} s; "
          f"{len(windows)} window{'s' if len(windows) != 1 else ''} of {length} every {stride}; "
          f"depth input: {_depth_note(views)}", flush=True)
    t = time.perf_counter()
    recon_model = load_reconstructor(args.checkpoint, args.config, args.device, seed or 0,
                                     getattr(args, "floor_z", None), getattr(args, "bf16", "auto"))
    timings = {"read_s": read_s, "load_model_s": time.perf_counter() - t, "reconstruct_s": 0.0, "render_s": 0.0,
               "write_s": 0.0}
    out.mkdir(parents=True, exist_ok=True)
    if args.overwrite:  # what an earlier run wrote here, so that no stale window or video is left beside the new
        for old in [*out.glob("window_[0-9][0-9][0-9]"), out / "summary.json"]:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
    rows, scores = [], {"held_out": [], "held_out_nearest": [], "inputs": [], "depth_held_out": [], "depth_inputs": []}
    outside_inputs = 0
    # bag_in lets `lrm4d view OUT` show the source cameras and images beside the Gaussians
    bag_in = getattr(args, "bag", None)
    about = {"bag_in": None if bag_in is None else str(Path(bag_in).resolve()), "bag_out": str((out / "bag").resolve()),
             "resolution": [views.height, views.width], "cameras": views.camera_names}
    with OutputBag(out / "bag", storage=args.storage, overwrite=args.overwrite, world_frame=world_frame) as bag:
        bar = tqdm(windows, desc="windows", unit="window", disable=None)  # a bar on a terminal, else a line each
        try:
            rig_read, rig_told = windows_to_read(len(windows)), set()
            for win in bar:
                row, win_scores = _process_window(recon_model, views, win, out, bag, args, timings,
                                                  rig_told if win.index in rig_read else None)
                rows.append(row)
                outside_inputs += row["outside_inputs"]
                if bar.disable:
                    print(f"window {win.index + 1}/{len(windows)}: {row['inputs']} inputs, {row['rendered']} views "
                          f"rendered", flush=True)
                for key, values in win_scores.items():
                    scores[key] += values
        except BaseException:  # an error or Ctrl-C: what is done stays, and says it is partial
            bar.close()
            if len(rows) < len(windows):  # the window under way: its folder may hold some of its files
                shutil.rmtree(out / f"window_{windows[len(rows)].index:03d}", ignore_errors=True)
            if rows:
                _write_summary(out, {**about, "complete": False, "windows": rows, "windows_planned": len(windows)})
                print(f"lrm4d reconstruct: stopped after {len(rows)} of {len(windows)} windows: {out} holds them "
                      f"(its bag closed and readable; summary.json \"complete\": false)", file=sys.stderr)
            raise
    if outside_inputs:
        print(f"lrm4d reconstruct: warning: {outside_inputs} of {len(views)} views lie outside the time span of their "
              f"window's model inputs (--policy {args.policy}, --max-views {args.max_views}) and are not re-rendered: "
              "a reconstruction is not extrapolated in time ("
              + ("--policy frames spreads the inputs over the window)" if args.policy == "latest" else
                 "more --max-views cover more of it)"), file=sys.stderr)
    summary = {**about, "complete": True, "topics": bag.counts, "windows": rows, "timings": timings,
               "depth_input": _depth_note(views),
               "psnr_held_out": _mean(scores["held_out"]), "psnr_held_out_nearest": _mean(scores["held_out_nearest"]),
               "psnr_inputs": _mean(scores["inputs"]),
               "held_out_views": len(scores["held_out"]), "input_views": len(scores["inputs"]),
               "views_outside_inputs": outside_inputs,
               # views whose render (or copied nearest input) equals the bag's image: scored PSNR_CAP, not inf
               "exact_views": {k: int(np.isinf(scores[k]).sum()) for k in ("held_out", "held_out_nearest", "inputs")},
               # the rendered depth against the bag's, where it has depth (metrics.depth_scores; None: no pixel)
               **{k: depth_scores(torch.tensor(scores[k], dtype=torch.float64)) if scores[k] else None
                  for k in ("depth_held_out", "depth_inputs")}}
    _write_summary(out, summary)
    return summary


def _write_summary(out: Path, summary: dict) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


def _process_window(recon_model, views: ViewSet, win: Window, out: Path, bag, args, timings: dict,
                    rig_told: set | None = None):
    """Reconstruct one window and write its PLY files, video and bag messages. rig_told: also read the depth
    cameras' stamps and focal lengths against each other's (rig_reading.py), warning of what this set does not hold
    yet.

    Returns (summary row, PSNR lists against the source of the owned views: "held_out" (not model inputs),
    "held_out_nearest" (the nearest-input baseline on those), "inputs"; and where the bag has depth, the rendered
    depth's `depth_sums` rows against it: "depth_held_out", "depth_inputs").
    """
    from .baselines import nearest_input
    from .ply import write_ply_3dgs, write_ply_4d
    from .video import write_video

    H, W = views.height, views.width
    sub = views.select(win.views)
    inputs = select_inputs(sub, args.max_views, args.policy)
    t = time.perf_counter()
    recon = recon_model.reconstruct(sub.select(inputs))
    findings = list(recon.findings)
    if rig_told is not None and sub.depths is not None:  # on the model's inputs, as the node reads them
        model_inputs = sub.select(inputs)
        small = model_inputs.resized(*recon_model.input_size(model_inputs.height, model_inputs.width))
        for _, text in rig_findings(*read_rig(small)):
            findings.append(text)
            if text not in rig_told:
                rig_told.add(text)
                warnings.warn(text, RuntimeWarning, stacklevel=2)
    timings["reconstruct_s"] += time.perf_counter() - t

    t = time.perf_counter()
    # (`--policy latest` or few --max-views: the inputs may span only part of the window; a view outside their span
    # would be extrapolated in time, which the reconstruction refuses: it is left out of the output bag)
    covered = recon.covers(views.stamps_ns[win.own])
    own_idx = win.own[covered]
    own = views.select(own_idx)
    colors, depths = render_frames(recon, own.camtoworlds, own.Ks, W, H, own.stamps_ns,
                                   desc=f"window {win.index} views")
    if not args.no_video:
        vc2w, vK, vstamps = video_cameras(views, sub, recon, args.video_camera, args.video_frames)
        vframes, _ = render_frames(recon, vc2w, vK, W, H, vstamps, desc=f"window {win.index} video")
    mid_ns = win.mid_ns
    if not bool(recon.covers(mid_ns)):  # the source stamp nearest the middle among the views rendered
        stamps = own.stamps_ns if len(own) else torch.tensor([recon.window.end_ns])
        mid_ns = int(stamps[(stamps - win.mid_ns).abs().argmin()])
    g3 = recon.slice(mid_ns)
    timings["render_s"] += time.perf_counter() - t

    t = time.perf_counter()
    wdir = out / f"window_{win.index:03d}"
    wdir.mkdir(parents=True, exist_ok=True)
    write_ply_4d(wdir / "gaussians_4d.ply", recon.smoothed().to_world(recon.normalization, recon.window),
                 recon.window)
    write_ply_3dgs(wdir / "slice.ply", g3, mid_ns)
    video = None if args.no_video else write_video(wdir / "video.mp4", vframes, fps=args.fps)
    for i in torch.argsort(own.stamps_ns, stable=True).tolist():
        name = views.camera_names[int(own.camera_ids[i])]
        bag.write_view(f"{TOPIC_PREFIX}/{name}", colors[i], depths[i], own.Ks[i], own.camtoworlds[i],
                       int(own.stamps_ns[i]))
    # the cloud, as the node publishes it: a depth camera's measured pixels at their measurement, and the model's
    # guesses left out (metric use)
    bag.write_gaussians(GAUSSIANS_TOPIC, recon.slice(mid_ns, measured=True, guessed=False), mid_ns)
    timings["write_s"] += time.perf_counter() - t

    is_input = torch.isin(own_idx, win.views[inputs])
    row = {"window": win.index, "start_ns": recon.window.start_ns, "end_ns": recon.window.end_ns,
           "views": len(sub), "inputs": len(inputs), "rendered": len(own), "inputs_rendered": int(is_input.sum()),
           "outside_inputs": int((~covered).sum()),
           "slice_stamp_ns": mid_ns, "gaussians_4d": len(recon.gaussians), "gaussians_slice": len(g3),
           "dir": str(wdir), "video": None if video is None else str(video), "input_findings": findings}
    model = psnr(colors, own.images)
    held = own.select(~is_input)
    nearest = psnr(nearest_input(sub.select(inputs), held), held.images) if len(held) else model[:0]
    scores = {"held_out": model[~is_input].tolist(), "held_out_nearest": nearest.tolist(),
              "inputs": model[is_input].tolist()}
    if own.depths is not None:  # a rendered pixel with a depth covers it (a faint pixel's depth is 0 anyway)
        sums = depth_sums(depths, (depths > 0).float(), own.depths.cpu())
        scores.update(depth_held_out=sums[~is_input].tolist(), depth_inputs=sums[is_input].tolist())
    return row, scores


def video_cameras(views: ViewSet, window_views: ViewSet, recon, camera: str | None, n: int):
    """Cameras for a window's video: an orbit sweeping the window's time, or one bag camera's own poses and
    stamps inside the window (and the span of its model inputs).
    Returns camtoworlds (n,4,4), Ks (n,3,3), stamps_ns (n,)."""
    if camera is None:
        c2w = orbit_path(window_views.camtoworlds, n, center=recon.normalization.center)
        stamps = sweep_stamps(recon.window.start_ns, recon.window.end_ns, n)
        K = window_views.Ks[:1].expand(n, 3, 3)
        return c2w, K, stamps
    cam = views.camera_names.index(camera)
    pick = window_views.select((window_views.camera_ids == cam) & recon.covers(window_views.stamps_ns))
    if len(pick) == 0:
        raise ValueError(f"camera {camera!r} has no view in the window starting at "
                         f"{int(window_views.stamps_ns.min())} ns within its model inputs' time span")
    order = torch.argsort(pick.stamps_ns)
    return pick.camtoworlds[order], pick.Ks[order], pick.stamps_ns[order]


def _depth_note(views: ViewSet) -> str:
    if views.depths is None:
        return "none"
    return f"{float((views.depths > 0).float().mean()):.0%} of pixels measured"


def _mean(xs: list[float]) -> float | None:
    """Mean PSNR of views, each at most evaluate.PSNR_CAP (a view copied exactly scores the cap, not inf);
    None for no views."""
    from .evaluate import PSNR_CAP

    return float(np.mean(np.minimum(xs, PSNR_CAP))) if len(xs) else None


def print_summary(s: dict) -> None:
    t = s["timings"]
    print(f"\n{'window':>6} {'views':>5} {'inputs':>6} {'rendered':>8} {'gauss 4D':>9} {'slice':>7}  output")
    for r in s["windows"]:
        print(f"{r['window']:>6} {r['views']:>5} {r['inputs']:>6} {r['rendered']:>8} {r['gaussians_4d']:>9} "
              f"{r['gaussians_slice']:>7}  {r['dir']}")
    from .cpu_kernels import compiled_in_process
    from .evaluate import PSNR_CAP

    exact = s.get("exact_views", {})

    def fmt(key: str, n: int) -> str:  # a mean PSNR, and how many of its views were exact copies (capped)
        x, e = s[f"psnr_{key}"], exact.get(key, 0)
        if x is None:
            return "n/a"
        if e == n:
            return f"{x:.2f} dB (exact)"
        return f"{x:.2f} dB" + (f" ({e} of {n} views exact, each counted as {PSNR_CAP:g} dB)" if e else "")

    n_held = s["held_out_views"]
    print(f"PSNR vs the bag: held-out views {fmt('held_out', n_held)} over {n_held} views, nearest-input baseline "
          f"on them {fmt('held_out_nearest', n_held)}; input views {fmt('inputs', s['input_views'])} over "
          f"{s['input_views']} views")

    def depth(key: str) -> str:
        d = s.get(key)
        if d is None or d["coverage"] is None:
            return "n/a"
        return ("none rendered" if d["abs_rel"] is None else
                f"AbsRel {d['abs_rel']:.3f}, δ<1.25 {d['delta1']:.1%}") + f" on {d['coverage']:.0%} of them"
    if s.get("depth_held_out") or s.get("depth_inputs"):
        print(f"depth vs the bag's measured pixels: held-out views {depth('depth_held_out')}; input views "
              f"{depth('depth_inputs')}")
    print("timings: " + ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in t.items())
          + (" (includes one-off compilation of the CPU kernels)" if compiled_in_process() else ""))
    print(f"output bag {s['bag_out']}: " + ", ".join(f"{k} ×{v}" for k, v in sorted(s["topics"].items())))
    print(f"look at it in 4D: lrm4d view {Path(s['bag_out']).parent}")
