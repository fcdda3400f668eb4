"""`lrm4d demo`: reconstruct a built-in generated 4D scene and show what the model does, in about a minute on CPU.

A procedural scene (lrm4d_ros.data, seeded, nothing downloaded) is rendered as T frames × C cameras. The model sees
the "alternating" inputs of DESIGN.md §5 (frame k from camera k mod C) and predicts 4D Gaussians; the demo then

- renders the held-out (camera, frame) views and prints their PSNR beside the copy-the-nearest-input baseline;
- flies a novel camera once around the scene while sweeping time through the window, renders it and the exact
  ground truth of that path, and writes them side by side as `demo.mp4` (GIF without ffmpeg);
- writes `contact_sheet.png` (inputs | nearest input | 4D-LRM | ground truth on held-out views),
  `gaussians_4d.ply` (world units, seconds since the window start), `slice.ply` (3DGS at the middle of the
  window, for any 3DGS viewer) and `metrics.json`.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from .metrics import psnr
from .pipeline import load_reconstructor, render_frames, sweep_stamps
from .views import ViewSet

SHEET_COLUMNS = 8  # held-out views shown in the contact sheet


def add_arguments(p) -> None:
    p.add_argument("--out", default="outputs/demo", help="output directory (default: outputs/demo)")
    p.add_argument("--seed", type=int, default=12, help="scene seed")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    p.add_argument("--checkpoint", default=None, help="safetensors checkpoint (default: the shipped one)")
    p.add_argument("--config", default=None, help="use a randomly initialised model of this preset, e.g. tiny")
    p.add_argument("--frames", type=int, default=8, help="frames T in the window")
    p.add_argument("--cameras", type=int, default=4, help="cameras C of the rig")
    p.add_argument("--resolution", type=int, default=128, help="image size (square) of views and renders")
    p.add_argument("--video-frames", type=int, default=24, help="frames of the novel-view orbit video")
    p.add_argument("--fps", type=float, default=8.0, help="video frame rate")


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


def demo_scene_config(frames: int, cameras: int, resolution: int):
    """The demo's scene distribution: moving objects on a constant background (as the shipped model was trained
    on), seen by a ring of cameras."""
    from .data.generator import SceneConfig

    return SceneConfig(frames=frames, cameras=cameras, height=resolution, width=resolution, rig_kinds=("orbit",),
                       motion_kinds=("rigid", "articulated", "scaling"), background=None, ground_prob=0.0,
                       backdrop_prob=0.0)


def orbit_scene(scene, stamps_ns: torch.Tensor):
    """The scene seen by one extra "moving" camera that circles it once over `stamps_ns` (novel view and
    time at every frame), at the rig's mean distance and elevation, starting between its first two cameras.
    Returns (scene with that one-camera rig, camera ids (n,) all 0)."""
    from .data.rigs import Rig

    rig = scene.rig
    u0 = (int(stamps_ns[0]) - scene.start_ns) / scene.duration_ns
    u1 = (int(stamps_ns[-1]) - scene.start_ns) / scene.duration_ns
    one = lambda x: x.mean().reshape(1)  # noqa: E731
    turn = 2 * math.pi / max(u1 - u0, 1e-9)  # radians per window fraction: one full turn over the stamps
    start_az = rig.azimuth[0] + math.pi / max(rig.num, 2) - turn * u0
    orbit = Rig("moving", ["orbit"], one(rig.fov_y), start_az.reshape(1), one(rig.elevation), one(rig.distance),
                rig.targets.mean(0, keepdim=True), torch.tensor([turn], dtype=torch.float64),
                torch.zeros(1, dtype=torch.float64))
    return replace(scene, rig=orbit), torch.zeros(len(stamps_ns), dtype=torch.int64)


def run(args) -> int:
    from .data.generator import all_views, sample_scene
    from .data.protocols import split_protocol
    from .data.raycast import render_views
    from .baselines import background_only, nearest_input
    from .ply import write_ply_3dgs, write_ply_4d
    from .video import contact_sheet, write_png, write_video

    if min(args.frames, args.cameras, args.video_frames, args.resolution) < 1:
        raise SystemExit("lrm4d demo: --frames, --cameras, --video-frames and --resolution must be >= 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = _Steps(6)
    t_all = time.perf_counter()
    R = args.resolution

    steps.start("loading the model" + (f" (random {args.config})" if args.config else ""))
    recon_model = load_reconstructor(args.checkpoint, args.config, args.device, args.seed)
    n_params = sum(p.numel() for p in recon_model.model.parameters())
    steps.done("load_model", f"{n_params / 1e6:.2f} M parameters on {recon_model.device}")

    steps.start(f"generating scene {args.seed}: {args.frames} frames x {args.cameras} cameras at {R}x{R}")
    cfg = demo_scene_config(args.frames, args.cameras, R)
    scene = sample_scene(args.seed, cfg)
    cams, stamps = all_views(scene)
    views = render_views(scene, cams, stamps, R, R)
    inputs, targets = split_protocol(views, "alternating")
    steps.done("generate", f"{len(inputs)} input views, {len(targets)} held-out views; "
                           f"{scene.motion_kind} motion of {len(scene.kinds)} primitives")

    steps.start("reconstructing 4D Gaussians")
    recon = recon_model.reconstruct(inputs)
    steps.done("reconstruct", f"{len(recon.gaussians)} Gaussians over {recon.window.duration_s:.3f} s")

    steps.start(f"rendering {len(targets)} held-out views")
    pred, _ = render_frames(recon, targets.camtoworlds, targets.Ks, R, R, targets.stamps_ns, desc="held-out")
    near = nearest_input(inputs, targets)
    p_model, p_near = psnr(pred, targets.images), psnr(near, targets.images)
    p_bg = psnr(background_only(inputs, targets), targets.images)
    steps.done("render_held_out", f"{(time.perf_counter() - steps.t) / len(targets):.2f} s per view")

    steps.start(f"rendering a {args.video_frames}-frame orbit through space and time")
    vstamps = sweep_stamps(recon.window.start_ns, recon.window.end_ns, args.video_frames)
    oscene, ocams = orbit_scene(scene, vstamps)
    truth = render_views(oscene, ocams, vstamps, R, R)
    frames, _ = render_frames(recon, truth.camtoworlds, truth.Ks, R, R, vstamps, desc="orbit")
    p_orbit = psnr(frames, truth.images)
    video = write_video(out / "demo.mp4", torch.cat([frames, truth.images.cpu()], dim=2), fps=args.fps)
    steps.done("render_orbit", f"-> {video} (left: 4D-LRM, right: ground truth)")

    steps.start("writing the contact sheet and PLY files")
    show = torch.linspace(0, len(targets) - 1, min(SHEET_COLUMNS, len(targets))).round().long()
    shown_inputs = torch.linspace(0, len(inputs) - 1, min(SHEET_COLUMNS, len(inputs))).round().long()
    sheet = contact_sheet(
        [("inputs (seen by the model)", inputs.images[shown_inputs]),
         ("held-out views: nearest input (baseline)", near[show]),
         ("held-out views: 4D-LRM", pred[show]),
         ("held-out views: ground truth", targets.images[show])],
        tile_labels=[[], [f"{x:.1f}dB" for x in p_near[show].tolist()],
                     [f"{x:.1f}dB" for x in p_model[show].tolist()], []])
    sheet_path = write_png(out / "contact_sheet.png", sheet)
    mid_ns = recon.window.start_ns + (recon.window.end_ns - recon.window.start_ns) // 2
    g3 = recon.slice(mid_ns)
    write_ply_3dgs(out / "slice.ply", g3)
    write_ply_4d(out / "gaussians_4d.ply", recon.gaussians.to_world(recon.normalization, recon.window),
                 recon.window)
    steps.done("write")

    total = time.perf_counter() - t_all
    metrics = {
        "seed": args.seed, "frames": args.frames, "cameras": args.cameras, "resolution": R,
        "inputs": len(inputs), "held_out": len(targets), "gaussians_4d": len(recon.gaussians),
        "gaussians_slice": len(g3),
        "psnr_held_out": {"model": _mean(p_model), "nearest_input": _mean(p_near), "background_only": _mean(p_bg)},
        "psnr_orbit": _mean(p_orbit),
        "timings_s": {**steps.times, "total": total},
        "files": {"video": str(video), "contact_sheet": str(sheet_path), "slice_ply": str(out / "slice.ply"),
                  "ply_4d": str(out / "gaussians_4d.ply")},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"\nPSNR on {len(targets)} held-out views: 4D-LRM {metrics['psnr_held_out']['model']:.2f} dB, "
          f"nearest input {metrics['psnr_held_out']['nearest_input']:.2f} dB, "
          f"background only {metrics['psnr_held_out']['background_only']:.2f} dB")
    print(f"PSNR along the novel orbit (new viewpoint and time each frame): {metrics['psnr_orbit']:.2f} dB")
    print(f"reconstruct {steps.times['reconstruct']:.2f} s for {len(inputs)} views; total {total:.1f} s")
    print(f"wrote {video}, {sheet_path}, {out / 'slice.ply'} ({len(g3)} Gaussians), {out / 'gaussians_4d.ply'}, "
          f"{out / 'metrics.json'}")
    print(f"look at it in 4D (time slider, in the browser): lrm4d view {out / 'gaussians_4d.ply'}")
    return 0


def _mean(x: torch.Tensor) -> float:
    """Mean PSNR over views, ignoring exact matches (+inf)."""
    x = x[torch.isfinite(x)]
    return float(x.mean()) if len(x) else float("inf")
