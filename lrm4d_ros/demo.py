"""`lrm4d demo`: reconstruct a built-in robot scene seen by a synchronized RGB-D rig, in about a minute on CPU.

A procedural robot scene (lrm4d_ros.data, seeded, nothing downloaded; a held-out seed, never trained on) — an arm at
a table by default — is rendered as T frames × C synchronized cameras, with what a depth camera would measure
(data.depth_sensor). The model sees the inputs of the rig protocol of docs/design.md §5 (the even-indexed cameras at
every s-th frame, with their depth) and predicts 4D Gaussians; the demo then

- renders the held-out views (the odd cameras and the even cameras between input frames, within the input frames'
  span) and prints
  their PSNR beside the copy-the-nearest-input baseline and the non-learned RGB-D reference (the inputs' pixels
  splatted at their measured depth);
- flies a novel camera once around the scene while sweeping time through the window, renders it and the exact
  ground truth of that path, and writes them side by side as `demo.mp4` (GIF without ffmpeg);
- writes `contact_sheet.png` (inputs | nearest input | 4D-LRM | ground truth on held-out views),
  `gaussians_4d.ply` (world units, seconds since the window start), `slice.ply` (3DGS at the input moment nearest
  the window's middle, for a 3DGS viewer) and `metrics.json`.
`--depth none` runs the same scene as an RGB-only rig.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from .argtypes import positive_float
from .metrics import psnr
from .pipeline import render_frames, sweep_stamps
from .reconstructor import load_reconstructor
from .views import ViewSet, frame_indices

SHEET_COLUMNS = 8  # held-out views shown in the contact sheet
DEMO_SEED = 1_003_012  # a held-out scene (training seeds are < 1 000 000)
LAYOUTS = ("tabletop", "workcell", "mobile")
RIGS = ("poles", "head", "orbit")


def add_arguments(p) -> None:
    p.add_argument("--out", default="outputs/demo", help="output directory (default: outputs/demo)")
    p.add_argument("--seed", type=int, default=DEMO_SEED, help=f"scene seed (default {DEMO_SEED}, held out)")
    p.add_argument("--layout", choices=LAYOUTS, default="tabletop", help="robot scene (default: tabletop)")
    p.add_argument("--rig", choices=RIGS, default="poles",
                   help="camera rig: fixed poles around the workspace, a moving head, or a ring (default: poles)")
    p.add_argument("--depth", choices=("sensor", "clean", "none"), default="sensor",
                   help="the rig's depth: a depth camera's measurements (default), exact, or none (RGB only)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    p.add_argument("--checkpoint", default=None, help="safetensors checkpoint (default: the shipped one)")
    p.add_argument("--config", default=None, help="use a randomly initialised model of this preset, e.g. tiny")
    p.add_argument("--frames", type=int, default=12, help="frames T in the window (default: 12)")
    p.add_argument("--cameras", type=int, default=6, help="cameras C of the rig (default: 6)")
    p.add_argument("--resolution", type=int, default=128,
                   help="image size (square) of views and renders (default: 128)")
    p.add_argument("--video-frames", type=int, default=24, help="frames of the novel-view orbit video (default: 24)")
    p.add_argument("--fps", type=positive_float, default=8.0, help="video frame rate (default: 8)")


class _Steps:
    """Numbered progress lines with the wall time of each step."""

    def __init__(self, total: int):
        self.total, self.n, self.t, self.times = total, 0, None, {}

    def start(self, text: str) -> None:
        self.n += 1
        self.name, self.t = text, time.perf_counter()
        print(f"[{self.n}/{self.total}] {text} ...", flush=True)

    def done(self, key: str, extra: str = "") -> float:
        dt = time.perf_counter() - self.t
        self.times[key] = dt
        print(f"      {dt:.2f} s{'  ' + extra if extra else ''}", flush=True)
        return dt


def demo_scene_config(layout: str, rig: str, frames: int, cameras: int, resolution: int):
    """The demo's scene: a robot `layout` captured by a synchronized `rig`, as the robot evaluation scenes are
    (data.eval_scenes.robot_scene_config, 3×3 supersampled), with `frames` × `cameras` views."""
    from .data.eval_scenes import robot_scene_config

    return replace(robot_scene_config(layout, rig, resolution), frames=frames, cameras=cameras)


@dataclass
class PathRig:
    """A camera path as a rig of the generator (data.rigs' interface): "camera" i is the path's i-th pose.
    camtoworlds (n,4,4) float64, fov_y (radians)."""

    camtoworlds: torch.Tensor
    fov_y: float
    kind: str = "path"

    @property
    def names(self) -> list[str]:
        return [f"path{i}" for i in range(len(self.camtoworlds))]

    @property
    def num(self) -> int:
        return len(self.camtoworlds)

    def Ks(self, height: int, width: int) -> torch.Tensor:
        from .cameras import fov_to_K

        return fov_to_K(self.fov_y, width, height).expand(self.num, 3, 3).clone()

    def poses(self, cam: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.camtoworlds[cam]


def orbit_rig(views, n: int) -> PathRig:
    """A novel camera circling the rig's point of interest (the point nearest all optical axes) once in `n` poses,
    at the cameras' mean distance and elevation and mean field of view, starting halfway (in azimuth) between the
    first two cameras."""
    from .cameras import SceneNormalization, look_at

    centre = SceneNormalization.from_cameras(views.camtoworlds).center
    eyes = views.camtoworlds[:, :3, 3].double() - centre
    dist = eyes.norm(dim=-1).mean()
    elev = torch.asin((eyes[:, 2] / eyes.norm(dim=-1)).clamp(-1, 1)).mean()
    az = torch.atan2(eyes[:, 1], eyes[:, 0])
    cams = sorted(set(views.camera_ids.tolist()))
    first = [az[views.camera_ids == c][0] for c in cams[:2]]
    half = 0.5 * float(torch.atan2(torch.sin(first[1] - first[0]), torch.cos(first[1] - first[0]))) \
        if len(first) > 1 else math.pi / 2
    turn = float(first[0]) + half + 2 * math.pi * torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
    eye = torch.stack([torch.cos(turn) * torch.cos(elev), torch.sin(turn) * torch.cos(elev),
                       torch.sin(elev).expand(n)], -1) * dist + centre
    fov = 2 * torch.atan(0.5 * views.height / views.Ks[:, 1, 1].double()).mean()
    return PathRig(look_at(eye, centre.expand(n, 3)), float(fov))


def run(args) -> int:
    from .baselines import background_only, depth_reference, nearest_input
    from .cpu_kernels import compiled_in_process
    from .data.depth_sensor import with_depth
    from .data.generator import generate, sample_scene
    from .data.protocols import RIG_GROUPS, protocol_groups
    from .data.raycast import render_views
    from .ply import write_ply_3dgs, write_ply_4d
    from .outputs import check_writable
    from .video import contact_sheet, write_png, write_video

    def refuse(message: str) -> int:
        print(f"lrm4d demo: error: {message}", file=sys.stderr)
        return 2

    if min(args.frames, args.cameras, args.video_frames, args.resolution) < 1:
        return refuse("--frames, --cameras, --video-frames and --resolution must be >= 1")
    if args.cameras < 2:
        return refuse("the rig protocol holds out the odd cameras: --cameras must be >= 2")
    out = Path(args.out)
    try:
        check_writable(out, "--out")
    except OSError as e:  # a file in the way, a read-only folder: before the work, not at its last step
        return refuse(str(e))
    steps = _Steps(6)
    t_all = time.perf_counter()
    R = args.resolution

    steps.start("loading the model" + (f" (random {args.config})" if args.config else ""))
    try:
        recon_model = load_reconstructor(args.checkpoint, args.config, args.device, args.seed)
    except (ValueError, FileNotFoundError) as e:
        return refuse(str(e))
    out.mkdir(parents=True, exist_ok=True)
    n_params = sum(p.numel() for p in recon_model.model.parameters())
    steps.done("load_model", f"{n_params / 1e6:.2f} M parameters on {recon_model.device}")

    steps.start(f"generating scene {args.seed} ({args.layout}, {args.rig} rig, depth: {args.depth}): "
                f"{args.frames} frames x {args.cameras} cameras at {R}x{R}")
    cfg = demo_scene_config(args.layout, args.rig, args.frames, args.cameras, R)
    views = with_depth(generate(args.seed, cfg), args.depth, seed=args.seed)
    in_idx, groups = protocol_groups(views, "rig")
    inputs = views.select(in_idx)
    held = [g for g in RIG_GROUPS if g != "self" and len(groups[g])]
    targets = views.select(torch.cat([groups[g] for g in held]))
    sizes = [len(groups[g]) for g in held]
    frames = len(set(frame_indices(views)[in_idx].tolist()))  # the rig's jittered stamps are not frames
    steps.done("generate", f"{len(inputs)} input views ({len(set(inputs.camera_ids.tolist()))} cameras x "
                           f"{frames} frames), {len(targets)} held-out views")

    steps.start("reconstructing 4D Gaussians")
    recon = recon_model.reconstruct(inputs)
    steps.done("reconstruct", f"{len(recon.gaussians)} Gaussians over {recon.window.duration_s:.3f} s"
                              + (", with the measured depth" if inputs.depths is not None else ", RGB only"))

    steps.start(f"rendering {len(targets)} held-out views")
    pred, _ = render_frames(recon, targets.camtoworlds, targets.Ks, R, R, targets.stamps_ns, desc="held-out")
    near = nearest_input(inputs, targets)
    scores = {"model": psnr(pred, targets.images), "nearest_input": psnr(near, targets.images),
              "background_only": psnr(background_only(inputs, targets), targets.images)}
    if inputs.depths is not None:
        scores["depth_reference"] = psnr(depth_reference(inputs, targets), targets.images)
    steps.done("render_held_out", f"{(time.perf_counter() - steps.t) / len(targets):.2f} s per view")

    steps.start(f"rendering a {args.video_frames}-frame orbit through space and time")
    vstamps = sweep_stamps(recon.window.start_ns, recon.window.end_ns, args.video_frames)
    path = replace(sample_scene(args.seed, cfg), rig=orbit_rig(inputs, len(vstamps)))
    truth = render_views(path, torch.arange(len(vstamps)), vstamps, R, R, supersample=cfg.supersample,
                         caster=cfg.caster)
    frames, _ = render_frames(recon, truth.camtoworlds, truth.Ks, R, R, vstamps, desc="orbit")
    p_orbit = psnr(frames, truth.images)
    video = write_video(out / "demo.mp4", torch.cat([frames, truth.images.cpu()], dim=2), fps=args.fps)
    steps.done("render_orbit", f"-> {video} (left: 4D-LRM, right: ground truth)")

    steps.start("writing the contact sheet and PLY files")
    shown_inputs, show = sheet_tiles(inputs, targets, sizes, held)
    t0 = int(inputs.stamps_ns.min())

    def tag(v: ViewSet, i: int) -> str:
        return f"{v.camera_names[int(v.camera_ids[i])]} {(int(v.stamps_ns[i]) - t0) * 1e-9:.2f}s"
    sheet = contact_sheet(
        [("inputs (seen by the model): camera, time", inputs.images[shown_inputs]),
         ("new viewpoints: nearest input (baseline)", near[show]),
         ("new viewpoints: 4D-LRM", pred[show]),
         ("new viewpoints: ground truth: camera, time", targets.images[show])],
        tile_labels=[[tag(inputs, i) for i in shown_inputs.tolist()],
                     [f"{x:.1f}dB" for x in scores["nearest_input"][show].tolist()],
                     [f"{x:.1f}dB" for x in scores["model"][show].tolist()],
                     [tag(targets, i) for i in show.tolist()]])
    sheet_path = write_png(out / "contact_sheet.png", sheet)
    # the input moment nearest the window's middle (as `lrm4d reconstruct` slices): between two of them every
    # Gaussian would be half faded
    middle = recon.window.start_ns + (recon.window.end_ns - recon.window.start_ns) // 2
    mid_ns = int(inputs.stamps_ns[(inputs.stamps_ns - middle).abs().argmin()])
    g3 = recon.slice(mid_ns)
    write_ply_3dgs(out / "slice.ply", g3, mid_ns)
    write_ply_4d(out / "gaussians_4d.ply", recon.smoothed().to_world(recon.normalization, recon.window),
                 recon.window)
    steps.done("write")

    total = time.perf_counter() - t_all
    by_group = {g: {k: _mean(v) for k, v in zip(scores, [x.split(sizes)[i] for x in scores.values()])}
                for i, g in enumerate(held)}
    metrics = {
        "seed": args.seed, "layout": args.layout, "rig": args.rig, "depth": args.depth, "frames": args.frames,
        "cameras": args.cameras, "resolution": R, "inputs": len(inputs), "held_out": len(targets),
        "gaussians_4d": len(recon.gaussians), "gaussians_slice": len(g3), "slice_stamp_ns": mid_ns,
        "psnr_held_out": {k: _mean(v) for k, v in scores.items()}, "psnr_by_group": by_group,
        "psnr_orbit": _mean(p_orbit),
        "timings_s": {**steps.times, "total": total},
        "files": {"video": str(video), "contact_sheet": str(sheet_path), "slice_ply": str(out / "slice.ply"),
                  "ply_4d": str(out / "gaussians_4d.ply")},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    names = {"model": "4D-LRM", "nearest_input": "nearest input", "background_only": "background only",
             "depth_reference": "RGB-D reference"}
    print(f"\nPSNR on {len(targets)} held-out views, by group (novel_view: the cameras the model did not see, at the "
          f"input moments;\n  novel_view_time: them at other moments; time_interp: the input cameras in between):")
    for g, m in by_group.items():
        print(f"  {g:<16} " + ", ".join(f"{names[k]} {v:.2f}" for k, v in m.items()))
    print("  all groups       " + ", ".join(f"{names[k]} {v:.2f}" for k, v in metrics["psnr_held_out"].items()))
    print(f"PSNR along the novel orbit (new viewpoint and time each frame): {metrics['psnr_orbit']:.2f} dB")
    print(f"reconstruct {steps.times['reconstruct']:.2f} s for {len(inputs)} views; total {total:.1f} s"
          + (" (includes one-off compilation of the CPU kernels)" if compiled_in_process() else ""))
    print(f"wrote {video}, {sheet_path}, {out / 'slice.ply'} ({len(g3)} Gaussians), {out / 'gaussians_4d.ply'}, "
          f"{out / 'metrics.json'}")
    print(f"look at it in 4D (time slider, in the browser): lrm4d view {out / 'gaussians_4d.ply'}")
    return 0


def sheet_tiles(inputs: ViewSet, targets: ViewSet, sizes: list[int], groups: list[str]) -> tuple[Tensor, Tensor]:
    """Indices of the contact sheet's tiles (at most SHEET_COLUMNS each): inputs cycling through every input
    camera while stepping through time, and held-out targets of the new viewpoints (novel_view, novel_view_time;
    `targets` holds `groups` in turn, `sizes` views each), spread over them."""
    cams = sorted(set(inputs.camera_ids.tolist()))
    n = min(SHEET_COLUMNS, len(inputs))
    picked = []
    for k in range(n):  # column k: camera k mod C, at the k-th of n moments spread over the window
        own = torch.nonzero(inputs.camera_ids == cams[k % len(cams)]).squeeze(1)
        order = own[torch.argsort(inputs.stamps_ns[own])]
        picked.append(int(order[round(k * (len(order) - 1) / max(n - 1, 1))]))
    start = torch.tensor([0, *sizes]).cumsum(0)
    novel = torch.cat([torch.arange(int(start[i]), int(start[i + 1])) for i, g in enumerate(groups)
                       if g.startswith("novel_view")] or [torch.arange(len(targets))])
    show = novel[torch.linspace(0, len(novel) - 1, min(SHEET_COLUMNS, len(novel))).round().long()]
    return torch.tensor(picked, dtype=torch.int64), show


def _mean(x: torch.Tensor) -> float:
    """Mean PSNR over views, ignoring exact matches (+inf)."""
    x = x[torch.isfinite(x)]
    return float(x.mean()) if len(x) else float("inf")
