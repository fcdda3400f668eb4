"""`lrm4d train`: train LRM4D on procedural 4D scenes (lrm4d_ros/data sampler), or fine-tune it on recorded
contract bags (`--bags`, lrm4d_ros/data/recorded.py: the scenes a robot will serve, validated on held-out
recordings or on each recording's last fifth).

One process, or DDP under `torchrun` (initialised only when WORLD_SIZE > 1). Per scene: the model predicts 4D
Gaussians from the input views, which are sliced at each target's time and rendered at its camera; the loss is
MSE + w_ssim·(1 − SSIM) on the targets, nothing else. Auxiliary terms from the generator's ground truth were tried
and removed: L1 of predicted to true depth, BCE of opacities and rendered alpha against coverage, L1 of the pixel
surfels' colours to their pixels. Same seed, data and 7 wall-clock minutes (2 threads) or 451 steps, the rig
validation peaked at 21.55 dB with depth 0.5 + BCE 0.05, 22.34 with BCE 0.05, 22.68 with the colour term alone and
22.83 with none; with the depth or BCE terms it fell after its peak while the training loss kept improving. Depth
L1 on RGB-only scenes only, or on the plane-sweep prior only, also lost (benchmarks/results/ablation.txt, block 3).
Renders are composited over the background estimated from the input views (`estimate_background`), exactly as
the Reconstructor does at inference. AdamW(0.9, 0.95), linear warmup then cosine decay over steps or the time
budget (whichever ends first), gradient clipping, bf16 autocast on CUDA. Resumable: `--resume` reloads
`<out>/state.safetensors` (weights, AdamW state, step, elapsed time, next scene seed) and re-seeds the other
random draws (input counts, self-targets, depth drops) from the step, so a resumed segment does not replay the
first one's; a state saved by another model configuration is refused, changed data or optimiser options are
noted. SIGINT / SIGTERM end the current step, save the state and the weights, and exit (128 + the signal): a
second one exits at once. Under torchrun the ranks agree each step on the elapsed time and on stopping.

Validation every `--val-every` steps, on held-out seeds: the training loss's PSNR/SSIM on random scenes, and
(`--val-protocol`) an evaluation protocol scored as `lrm4d evaluate` scores a bag, on scenes drawn by the model
card's evaluation recipe (other seeds), beside the nearest-input baseline. The random scenes' figure has not
ranked checkpoints the way the evaluation does, so the best protocol score's weights are kept in
`<out>/best.safetensors`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .argtypes import positive_int
from .cameras import SceneNormalization, TimeWindow
from .checkpoint import load_config, load_training_state, save_model, save_training_state, training_state_info
from .data.depth_sensor import sensor_depth
from .gaussians import TRAIN_MIN_MARGINAL
from .metrics import psnr, ssim_map
from .model import HEADS, LRM4D, PRESETS, LRM4DConfig, bf16_native, config_of
from .outputs import check_writable
from .pixel_gaussians import FAR, NEAR
from .reconstruction import render_at_times
from .reconstructor import Reconstructor, checked_device, estimate_background, model_input_size, predict
from .views import ViewSet


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/lrm4d",
                   help="run directory: state.safetensors (resumable), model.safetensors (latest weights), "
                        "best.safetensors (best protocol validation, where one ran), train.log (JSON lines), "
                        "rank<r>.json (default: runs/lrm4d)")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS), help="model preset (default: small)")
    p.add_argument("--image-size", type=int, default=None, help="model input resolution (px; default: the preset's)")
    p.add_argument("--resolution", type=int, default=128, help="rendered resolution of targets (px; default: 128)")
    p.add_argument("--frames", type=int, default=12,
                   help="frames T per scene (default: 12); with --bags, a window's length in frames")
    p.add_argument("--cameras", type=int, default=6, help="cameras C per scene (default: 6)")
    p.add_argument("--supersample", type=int, default=1,
                   help="odd s: s×s rays per pixel for anti-aliased training images (s² the generator cost)")
    p.add_argument("--scenes", choices=("robot", "objects"), default="robot",
                   help="robot: the robot-scene mix (lrm4d_ros.data.robot_mix, 65 %% robot scenes, inputs drawn as "
                        "the node draws them); objects: object-centric scenes only")
    p.add_argument("--bags", nargs="+", default=None, metavar="BAG",
                   help="fine-tune on these recorded contract bags (a folder of bags: each bag in it) instead of "
                        "procedural scenes, usually with --init: windows of --frames frames, one camera or more "
                        "held out as targets (lrm4d_ros.data.recorded); --scenes, --cameras and --supersample "
                        "then do not apply")
    p.add_argument("--val-bags", nargs="+", default=None, metavar="BAG",
                   help="with --bags: recordings kept out of training, whose windows are the validation (default: "
                        "the last fifth of each --bags recording's time, at least one window, which training then "
                        "leaves out)")
    p.add_argument("--data-device", default="cpu", help="where scenes are rendered (cuda on a GPU machine)")
    p.add_argument("--inputs", default=INPUTS_DEFAULT, help="input views per scene: N or 'min,max' (drawn per step)")
    p.add_argument("--targets", type=int, default=4, help="supervision views per scene (default: 4)")
    p.add_argument("--self-targets", type=int, default=2,
                   help="also supervise this many of the input views (rendered from their own cameras)")
    p.add_argument("--batch", type=positive_int, default=1, help="scenes per optimiser step (per process)")
    p.add_argument("--steps", type=positive_int, default=100_000, help="maximum optimiser steps (default: 100000)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="minutes of training (the schedule follows it; default: none, --steps alone)")
    p.add_argument("--budget-clock", choices=("wall", "cpu"), default="wall",
                   help="what --time-budget counts: wall-clock time, or this process's CPU time (runs that share "
                        "a machine then get the same compute, e.g. the rows of an ablation)")
    p.add_argument("--lr", type=float, default=6e-4, help="peak learning rate (default: 6e-4)")
    p.add_argument("--min-lr-ratio", type=float, default=0.1,
                   help="the cosine decay ends at lr times this (default: 0.1)")
    p.add_argument("--warmup", type=int, default=100, help="linear warmup steps (default: 100)")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (default: 0.05)")
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clip (default: 1.0)")
    p.add_argument("--ssim-weight", type=float, default=0.2, help="loss = MSE + w (1 - SSIM) (default: 0.2)")
    p.add_argument("--val-every", type=positive_int, default=200,
                   help="validate every N steps, and once at the end of the run (default: 200)")
    p.add_argument("--val-scenes", type=positive_int, default=6,
                   help="random held-out scenes of the loss validation (default: 6)")
    p.add_argument("--val-protocol", default="rig", choices=("rig", "alternating", "novel-camera", "none"),
                   help="also score this evaluation protocol, at each validation, on scenes drawn like the model "
                        "card's evaluation (other seeds), beside the nearest-input baseline (rig: robot scenes, "
                        "held-out PSNR averaged over RGB-D and RGB inputs); the best such weights are kept as "
                        "<out>/best.safetensors")
    p.add_argument("--val-protocol-scenes", type=int, default=None,
                   help="scenes of the protocol validation (default: 4; with --bags up to 8 validation windows, "
                        "spread evenly)")
    p.add_argument("--ckpt-minutes", type=float, default=5.0,
                   help="save the resumable state every N minutes (default: 5; also at the end and on SIGINT or "
                        "SIGTERM)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/state.safetensors")
    p.add_argument("--init", default=None, help="start from these model weights (safetensors)")
    p.add_argument("--head", choices=HEADS, default=None, help="pixel head (default: the preset's)")
    p.add_argument("--depth-input", action=argparse.BooleanOptionalAction, default=None,
                   help="measured depth as an input (default: the preset's)")
    p.add_argument("--environment", action=argparse.BooleanOptionalAction, default=None,
                   help="composite over an environment map of the inputs (default: the preset's)")
    p.add_argument("--depth-drop-scene", type=float, default=0.5,
                   help="probability that a scene's inputs carry no depth (an RGB-only rig)")
    p.add_argument("--depth-drop-view", type=float, default=0.2,
                   help="probability that one input view of an RGB-D scene carries no depth")
    p.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                   help="bf16 autocast for the model's forward: auto = on CUDA and on CPUs with native BF16")
    p.add_argument("--export", default=None, help="also write the final weights in bf16 here")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights and of each step's draws (input views, targets, depth drops); "
                        "the scenes come in one fixed order, so that runs of different seeds see the same data "
                        "(default: 0)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")


def parse_range(text: str) -> tuple[int, int]:
    parts = [int(x) for x in str(text).split(",")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not 1 <= parts[0] <= parts[1]:
        raise ValueError(f"expected N or 'min,max' with 1 <= min <= max, got {text!r}")
    return parts[0], parts[1]


def check_args(args) -> None:
    """ValueError naming the first argument that cannot work, before anything is built or written."""
    checks = [
        (args.lr > 0, f"--lr must be > 0, got {args.lr}"),
        (0 <= args.min_lr_ratio <= 1, f"--min-lr-ratio must be in [0, 1], got {args.min_lr_ratio}"),
        (args.warmup >= 0, f"--warmup must be >= 0, got {args.warmup}"),
        (args.weight_decay >= 0, f"--weight-decay must be >= 0, got {args.weight_decay}"),
        (args.clip > 0, f"--clip must be > 0 (a gradient-norm limit), got {args.clip}"),
        (args.ssim_weight >= 0, f"--ssim-weight must be >= 0, got {args.ssim_weight}"),
        (args.targets >= 1 and args.self_targets >= 0,
         f"--targets must be >= 1 (validation scores held-out views) and --self-targets >= 0, got {args.targets} "
         f"and {args.self_targets}"),
        (args.time_budget is None or args.time_budget > 0, f"--time-budget must be > 0 minutes, got {args.time_budget}"),
        (0 <= args.depth_drop_scene <= 1 and 0 <= args.depth_drop_view <= 1,
         f"--depth-drop-scene and --depth-drop-view are probabilities in [0, 1], got {args.depth_drop_scene} and "
         f"{args.depth_drop_view}"),
        (args.threads is None or args.threads >= 1, f"--threads must be >= 1, got {args.threads}"),
        (args.resolution >= 16, f"--resolution must be >= 16 pixels (the loss's SSIM window), got {args.resolution}"),
        (args.supersample >= 1 and args.supersample % 2 == 1,
         f"--supersample must be an odd integer >= 1, got {args.supersample}"),
        (min(args.frames, args.cameras) >= 1, f"--frames and --cameras must be >= 1, got {args.frames}, {args.cameras}"),
        (args.ckpt_minutes >= 0, f"--ckpt-minutes must be >= 0, got {args.ckpt_minutes}"),
        (args.val_protocol == "none" or args.val_protocol_scenes is None or args.val_protocol_scenes >= 1,
         f"--val-protocol-scenes must be >= 1 (or --val-protocol none), got {args.val_protocol_scenes}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    try:
        lo, hi = parse_range(args.inputs)
    except ValueError as exc:
        raise ValueError(f"--inputs: {exc}") from None
    if args.val_bags and not args.bags:
        raise ValueError("--val-bags validates a fine-tune on --bags: pass --bags too")
    if args.bags:  # named bags exist (their windows' sizes are checked once they are read)
        from .data.recorded import expand_bags

        for flag, paths in (("--bags", args.bags), ("--val-bags", args.val_bags or [])):
            try:
                expand_bags(paths)
            except ValueError as e:
                raise ValueError(f"{flag}: {e}") from None
    for flag, n in (("--inputs", hi), ("--targets", args.targets)):
        if n > args.frames * args.cameras and not args.bags:
            raise ValueError(f"{flag} {n}: a scene has only {args.frames} x {args.cameras} views (--frames x "
                             "--cameras)")
    if args.export:  # before the run, not after it
        check_writable(args.export, "--export", is_dir=False)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # under torchrun each rank takes its own device
        for dev in (args.device, args.data_device):
            if dev is not None:
                checked_device(dev)


def _config(args) -> LRM4DConfig:
    overrides = {} if args.image_size is None else {"image_size": args.image_size}
    for key in ("head", "depth_input", "environment"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    return LRM4DConfig.preset(args.preset, **overrides)


# The configuration fields that shape the weights: --init needs them equal
WEIGHT_FIELDS = ("n_layer", "n_embd", "n_head", "patch_size", "mlp_ratio", "head", "depth_input")


def _config_diff(saved: LRM4DConfig, asked: LRM4DConfig, fields) -> str:
    return ", ".join(f"{k} {getattr(saved, k)!r} (saved) != {getattr(asked, k)!r}" for k in fields
                     if getattr(saved, k) != getattr(asked, k))


# What a resumed run may change and still continue the same run (noted), against what makes it another run
INPUTS_DEFAULT = "6,12"
VAL_PROTOCOL_SCENES = 4  # procedural protocol-validation scenes unless --val-protocol-scenes says
VAL_PROTOCOL_WINDOWS = 8  # the most recorded validation windows (--bags) scored unless it says
PROGRESS_EVERY_S = 60.0  # where stderr is no terminal (a pipe, a log), a progress line this often instead of the bar
RESUME_NOTED = ("bags", "val_bags", "frames", "cameras", "resolution", "inputs", "targets", "self_targets", "lr",
                "min_lr_ratio",
                "warmup", "weight_decay", "clip", "ssim_weight", "steps", "time_budget", "scenes", "batch", "seed",
                "depth_drop_scene", "depth_drop_view", "supersample", "bf16", "budget_clock")


def check_resume(out: Path, args, cfg: LRM4DConfig) -> tuple[int, dict] | None:
    """(step, extra) of the run in `out` that --resume continues (None: there is none); ValueError where it
    cannot: a run there without --resume, or a state saved by another model configuration."""
    state_path = out / "state.safetensors"
    if not state_path.is_file():
        if args.resume:
            print(f"lrm4d train: note: no state in {out}: starting from step 0", file=sys.stderr)
        return None
    saved_cfg, step, extra = training_state_info(state_path)
    if not args.resume:
        raise ValueError(f"{out} already holds a run (step {step}): pass --resume to continue it, or choose "
                         f"another --out")
    diff = _config_diff(saved_cfg, cfg, [k for k in cfg.to_dict() if k != "grad_checkpointing"])
    if diff:
        raise ValueError(f"{state_path} was saved by another model configuration ({diff}): resume with its "
                         f"options or choose another --out")
    saved = extra.get("args", {})
    changed = [f"--{k.replace('_', '-')} {getattr(args, k)!r} (was {saved[k]!r})" for k in RESUME_NOTED
               if k in saved and saved[k] != getattr(args, k)]
    world = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's; check_resume runs before the process group
    if "world" in extra and int(extra["world"]) != world:  # each process draws its own scenes: the batch changes
        changed.append(f"{world} process{'es' if world != 1 else ''} (was {int(extra['world'])})")
    if os.environ.get("RANK", "0") == "0":
        print(f"lrm4d train: resuming {out} at step {step}" + (" with " + ", ".join(changed) if changed else ""),
              file=sys.stderr)
    return step, extra


class Interrupt:
    """SIGINT / SIGTERM while training: the first sets `signum` (the loop ends its step, saves and exits), a second
    one exits at once. Installed only in the main thread (signal handlers cannot be set elsewhere)."""

    def __init__(self):
        self.signum = 0
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\nlrm4d train: {signal.Signals(signum).name}: ending this step, then saving (again to quit now)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def _agree(elapsed: float, stop: bool, world: int, device: torch.device) -> tuple[float, bool]:
    """The ranks' largest elapsed time and whether any of them stops: each rank's clock differs (rank 0 also
    validates), and a rank that stopped alone would leave the others waiting in DDP's all-reduce."""
    if world == 1:
        return elapsed, stop
    t = torch.tensor([elapsed, float(stop)], dtype=torch.float64,
                     device=device if torch.distributed.get_backend() == "nccl" else "cpu")
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return float(t[0]), bool(t[1] > 0)


def lr_at(progress: float, step: int, args) -> float:
    """Linear warmup over `args.warmup` steps, then cosine from lr to lr·min_lr_ratio as progress goes 0 -> 1."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    cos = 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * cos)


def drop_depth(depths: torch.Tensor | None, generator: torch.Generator, p_scene: float,
               p_view: float) -> torch.Tensor | None:
    """Input depth as a mixed rig would give it: none at all with probability p_scene (an RGB-only rig), else
    each view's depth removed with probability p_view (a colour-only camera among RGB-D ones).
    depths (V,H,W) metres, 0 = none -> the same with dropped views zeroed, or None."""
    if depths is None or float(torch.rand(1, generator=generator)) < p_scene:
        return None
    keep = torch.rand(depths.shape[0], generator=generator) >= p_view
    return depths * keep[:, None, None].to(depths)


def scene_loss(model, inputs: ViewSet, targets: ViewSet, ssim_weight: float, autocast: bool = False,
               input_depths: torch.Tensor | None = None, read_views: bool = False,
               prepared=None) -> tuple[torch.Tensor, dict]:
    """Loss of one scene and its metrics; inputs/targets in world units with absolute stamps (as from the sampler).

    Normalisation exactly as `Reconstructor.reconstruct`: scene from the input cameras, window from the input
    stamps (targets may lie slightly outside it). input_depths (V,H,W) metres, 0 = none: what the model is
    given as measured depth (None: RGB only); `inputs.depths`, where present, is the ground truth the
    predicted depths are scored against (metrics["depth_l1"], monitored, not trained on). autocast: bf16 for the
    model's forward (CUDA, or a CPU with BF16 support). read_views: composite over the floor read from the views
    and the walls as inference does (`predict`; off in training: render-time layers, nothing differentiated).
    prepared: the inputs as `Reconstructor.inputs` made them (recorded views: a depth camera's measurements made
    like the training sensor's, the frame levelled by the floor), in place of the normalisation here; its
    `depths` (canonical, 0 = none, None: RGB only) are what the model is given.
    """
    dev = next(model.parameters()).device
    cfg = config_of(model)
    targets = targets.to(dev)
    if prepared is not None:
        inputs, norm, window = prepared.views, prepared.norm, prepared.window
        c2w, times, depths = prepared.c2w, prepared.times, prepared.depths
    else:
        size = model_input_size(cfg, inputs.height, inputs.width)
        if input_depths is not None:
            input_depths = ViewSet.resized(replace(inputs, depths=input_depths), *size).depths.to(dev)
        inputs = inputs.resized(*size).to(dev)
        norm = SceneNormalization.from_cameras(inputs.camtoworlds)
        window = TimeWindow.from_stamps(inputs.stamps_ns)
        c2w, times = norm.poses_to_canonical(inputs.camtoworlds), window.normalize(inputs.stamps_ns).to(dev)
        depths = None if input_depths is None else input_depths * norm.scale
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
        pred = predict(model, inputs.images, inputs.Ks, c2w, times, depths, match_floor=False, read_views=read_views)
    bg = pred.environment if pred.environment is not None else estimate_background(inputs.images)
    out = render_at_times(pred.gaussians, norm.poses_to_canonical(targets.camtoworlds).float(),
                          targets.Ks.float(), targets.width, targets.height,
                          window.normalize(targets.stamps_ns).to(dev), bg, min_marginal=TRAIN_MIN_MARGINAL)
    mse = F.mse_loss(out.colors, targets.images)
    loss = mse
    flat_bg = estimate_background(inputs.images)
    metrics = {"mse": float(mse.detach()), "psnr": float(psnr(out.colors.detach(), targets.images).mean()),
               "psnr_bg": float(psnr(flat_bg.expand_as(targets.images), targets.images).mean()),
               "coverage": float(out.alphas.detach().mean()), "depth_in": float(depths is not None)}
    if ssim_weight > 0:
        s = ssim_map(out.colors, targets.images).mean()
        loss = loss + ssim_weight * (1 - s)
        metrics["ssim"] = float(s.detach())
    if inputs.depths is not None:
        # monitored, not trained on: L1 of log depth where a surface was hit (clamped to the surfels' range)
        hit = inputs.depths > 0
        if hit.any():
            gt = (inputs.depths * norm.scale).clamp(NEAR, FAR).log()
            d = pred.pixel_depths.detach().clamp(NEAR, FAR).log()
            metrics["depth_l1"] = float(F.l1_loss(d[hit], gt[hit]))
    metrics["loss"] = float(loss.detach())
    return loss, metrics


def object_centric(cfg):
    """Object-centric scenes only: objects on a constant random background seen from rigs around them (no
    workcell, ground plane or backdrop), the scenes of the paper's protocols."""
    return replace(cfg, rig_kinds=("orbit", "canonical", "shell", "moving"), ground_prob=0.0, backdrop_prob=0.0)


class SceneStream:
    """Endless (inputs, targets) pairs from the data package's SceneSampler, the input count drawn per scene."""

    def __init__(self, args, rank: int, world: int):
        from .data.generator import SceneConfig
        from .data.sampler import SceneSampler, robot_mix

        self.n_range = parse_range(args.inputs)
        self.rng = random.Random(args.seed * 1000 + rank)
        self.rank, self.world = rank, world
        self.index = 0
        self.drawn: list[int] = []  # scene seeds this rank trained on, in order (written to rank<r>.json)
        self.recorded = getattr(args, "_recorded", None)  # --bags, read by `run` before anything was written
        self.reconstructor: Reconstructor | None = None  # --bags: set by _train (recorded_inputs)
        if self.recorded is not None:
            self.targets = args.targets
            self.val = [self.recorded.sample(i, self.n_range[1], args.targets, "val") for i in range(args.val_scenes)]
            return
        if args.scenes == "robot":
            source = robot_mix(args.frames, args.cameras, args.resolution, args.resolution,
                               supersample=args.supersample)
        else:
            source = object_centric(SceneConfig(frames=args.frames, cameras=args.cameras, height=args.resolution,
                                                width=args.resolution, background=None,
                                                supersample=args.supersample))
        self.samplers = {n: SceneSampler(source, num_inputs=n, num_targets=args.targets, split="train",
                                         device=args.data_device)
                         for n in range(self.n_range[0], self.n_range[1] + 1)}
        self.val = SceneSampler(source, num_inputs=self.n_range[1], num_targets=args.targets, split="val",
                                num_scenes=args.val_scenes, device=args.data_device)

    def next(self, seed_offset: int) -> dict:
        """Scene number `index` of this rank; seeds interleave across ranks and resumptions continue."""
        seed = seed_offset + self.index * self.world + self.rank
        self.index += 1
        self.drawn.append(seed % 1_000_000)
        n = self.rng.randint(*self.n_range)
        if self.recorded is not None:
            return self.recorded.sample(seed % 1_000_000, n, self.targets)
        item = self.samplers[n].sample(seed % 1_000_000)
        return {k: v.to("cpu") if isinstance(v, ViewSet) else v for k, v in item.items()}


def _ddp_setup(device_arg):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist

        local = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(device_arg or ("cuda" if torch.cuda.is_available() else "cpu"))
    return rank, world, device


@torch.no_grad()
def validate(model, stream: SceneStream, args) -> dict:
    """Mean metrics of the validation scenes from colour only, and (models with a depth input) from RGB-D."""
    model.eval()
    keys = ("psnr", "ssim", "mse", "psnr_bg", "coverage")
    out = {}
    for name, with_depth in (("", False), ("rgbd_", True)):
        items = [it for it in stream.val if it["inputs"].depths is not None] if with_depth else stream.val
        if with_depth and (not config_of(model).depth_input or not items):  # (recorded bags without depth)
            continue
        rows = [scene_loss(model, it["inputs"], it["targets"], args.ssim_weight,
                           input_depths=it["inputs"].depths if with_depth else None,
                           prepared=recorded_inputs(stream.reconstructor, it["inputs"],
                                                    it["inputs"].depths if with_depth else None)
                           if it.get("measured") else None)[1] for it in items]
        out.update({name + k: sum(r[k] for r in rows) / len(rows) for k in keys})
    model.train()
    return out


def protocol_scenes(args) -> list[ViewSet]:
    """Full T×C ViewSets of the protocol validation at the target resolution: for rig, robot scenes drawn like
    ROBOT_EVAL_SCENES (other seeds) with a depth camera's measurements; else the object-centric recipe."""
    from .data import eval_scenes as es

    n = args.val_protocol_scenes or VAL_PROTOCOL_SCENES
    if args.val_protocol == "rig":
        from .data.depth_sensor import with_depth

        scenes = es.render_robot_scenes(es.robot_recipe(es.ROBOT_PROTOCOL_VAL_FIRST_SEED, n),
                                        args.resolution)
        return [with_depth(v, "sensor", seed=i) for i, v in enumerate(scenes)]
    return es.render_scenes(es.recipe(es.PROTOCOL_VAL_FIRST_SEED, n), args.resolution)


@torch.no_grad()
def validate_protocol(model, scenes: list[ViewSet], protocol: str) -> dict:
    """Mean PSNR/SSIM of `protocol` over `scenes` exactly as `lrm4d evaluate` scores a bag, beside nearest-input;
    gain = psnr − nearest (dB), the model card's criterion. Scenes with depth are scored from RGB-D and from RGB
    inputs ("rgbd", "rgb"), and psnr is the mean of the two."""
    from .baselines import nearest_input
    from .evaluate import evaluate_views, summarize

    reconstructor = Reconstructor(model, next(model.parameters()).device)
    modes = [("rgbd", True), ("rgb", False)] if any(v.depths is not None for v in scenes) else [("rgb", False)]
    out = {}
    for name, depth in modes:
        rows = []
        for v in scenes:  # RGB-D: the scenes with depth; targets at the short side the scene has, as evaluate's
            if depth and v.depths is None:
                continue
            try:
                rows.append(evaluate_views(reconstructor, v, protocol, min(v.height, v.width), depth=depth,
                                           baselines={"nearest": nearest_input}))
            except ValueError:  # a recorded window the protocol cannot score (train._scorable screens them)
                continue
        if not rows:
            raise ValueError(f"no validation scene could be scored by the {protocol} protocol")
        s = summarize(rows, protocol)
        out[name] = {"psnr": s["model"]["psnr"], "ssim": s["model"]["ssim"],
                     "nearest": s["baselines"]["nearest"]["psnr"]}
        if "groups" in s:
            out[name]["groups"] = {g: e["model"]["psnr"] for g, e in s["groups"].items()}
    model.train()  # the Reconstructor put it in eval mode
    psnr_ = sum(m["psnr"] for m in out.values()) / len(out)
    nearest = out["rgb"]["nearest"]
    return {**out, "psnr": psnr_, "ssim": sum(m["ssim"] for m in out.values()) / len(out), "nearest": nearest,
            "gain": psnr_ - nearest}


def run(args) -> int:
    out = Path(args.out)
    try:  # everything that can be wrong with the arguments, before anything is built or written
        check_args(args)
        cfg = _config(args)
        resumed = check_resume(out, args, cfg)
        init = None
        if args.init:
            from .checkpoint import load_model

            init = load_model(args.init)
            diff = _config_diff(init.cfg, cfg, WEIGHT_FIELDS)
            if diff:
                raise ValueError(f"--init {args.init} holds weights of another shape than --preset {args.preset} "
                                 f"with these options ({diff})")
    except (ValueError, OSError) as e:  # OSError: a missing --init, an --export that cannot be written
        print(f"lrm4d train: error: {e}", file=sys.stderr)
        return 2
    done = None
    if resumed is not None and resumed[0] >= args.steps:
        done = f"{out} is at step {resumed[0]} >= --steps {args.steps}: nothing to train (raise --steps)"
    elif resumed is not None and args.time_budget and resumed[1].get("elapsed_s", 0.0) >= args.time_budget * 60:
        done = f"{out} has used its --time-budget of {args.time_budget:g} min: nothing to train (raise --time-budget)"
    if done is not None:
        print(f"lrm4d train: {done}", file=sys.stderr)
        if args.export and (out / "model.safetensors").is_file():  # a finished run exported (again)
            from .checkpoint import load_model

            save_model(args.export, load_model(out / "model.safetensors"), dtype=torch.bfloat16,
                       info=load_config(out / "model.safetensors")[1])
            print(f"lrm4d train: exported {out / 'model.safetensors'} in bf16 to {args.export}", file=sys.stderr)
        return 0
    if args.bags:
        try:
            args._recorded, args._val_windows = _read_bags(args)
        except (ValueError, OSError) as e:  # BagError is a ValueError
            print(f"lrm4d train: error: {e}", file=sys.stderr)
            return 2
    with Interrupt() as interrupt:
        return _train(args, out, cfg, init, resumed is not None, interrupt)


def _read_bags(args):
    """--bags' windows (RecordedScenes) and the validation windows the protocol scores: those it can score, at
    most VAL_PROTOCOL_WINDOWS spread evenly unless --val-protocol-scenes says; ValueError where they cannot serve."""
    from .data.recorded import RecordedScenes

    quiet = os.environ.get("RANK", "0") != "0"  # under torchrun every rank reads them; rank 0 says so
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    scenes = RecordedScenes(args.bags, args.val_bags, args.frames, args.resolution, log=say)
    hi = parse_range(args.inputs)[1]
    try:
        poor = scenes.keep_inputs(hi)
    except ValueError as e:
        default = " (the default)" if args.inputs == INPUTS_DEFAULT else ""
        raise ValueError(f"--inputs {args.inputs}{default}: {e}: pass fewer --inputs or more --frames") from None
    if poor:
        say(f"{poor} training windows hold fewer than {hi} views beside a held-out camera (--inputs {args.inputs}): "
            f"not used; {len(scenes.train)} are")
    if args.val_protocol == "none":
        return scenes, []
    windows = [v for v in scenes.val if _scorable(v, args.val_protocol)]
    if not windows:
        raise ValueError(f"none of the {len(scenes.val)} validation windows can be scored by the "
                         f"{args.val_protocol} protocol (it needs every camera's frames, held-out views stamped "
                         "within the inputs' span: cameras far from synchronised? `lrm4d check-bag` reads their "
                         "offsets); pass other --val-bags or --val-protocol none")
    n = min(len(windows), args.val_protocol_scenes or VAL_PROTOCOL_WINDOWS)
    pick = sorted({round(i * (len(windows) - 1) / max(1, n - 1)) for i in range(n)})
    say(f"validation: {len(pick)} of {len(scenes.val)} windows scored by the {args.val_protocol} protocol"
        + (f" ({len(scenes.val) - len(windows)} cannot be)" if len(windows) < len(scenes.val) else ""))
    return scenes, [windows[i] for i in pick]


def _scorable(views: ViewSet, protocol: str) -> bool:
    """Whether `protocol` can score a recorded window: every camera with its frames, and a held-out target
    stamped within the inputs' time span (a reconstruction does not extrapolate)."""
    from .data.protocols import protocol_groups

    try:
        in_idx, groups = protocol_groups(views, protocol)
    except ValueError:
        return False
    from .reconstruction import covered

    inside = covered(TimeWindow.from_stamps(views.stamps_ns[in_idx]), views.stamps_ns)
    return any(bool(inside[i].any()) for g, i in groups.items() if g != "self" and len(i))


def _train(args, out: Path, cfg: LRM4DConfig, init: LRM4D | None, resume: bool, interrupt: Interrupt) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, device = _ddp_setup(args.device)
    torch.manual_seed(args.seed + rank)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train.log"
    model, opt, step, elapsed_before, seed_offset = _start(args, out, cfg, init, resume, device)
    ddp = model
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                        else None)
    stream = SceneStream(args, rank, world)
    if stream.recorded is not None:  # recorded inputs made as inference makes them (its constructor sets eval)
        stream.reconstructor = Reconstructor(model, device)
        model.train()
    depth_rng = torch.Generator().manual_seed(args.seed * 1000 + rank + 17)
    if step:  # a resumed run: fresh draws from its step on, not a replay of the first segment's
        key = ((args.seed * 1_000_003 + rank) * 1_000_003 + step) % 2**62
        stream.rng = random.Random(key)
        torch.manual_seed(key)
        depth_rng.manual_seed(key + 17)
    keeper = _Keeper(args, out, model, opt, stream, rank, world, resume, seed_offset, step)
    budget_s = args.time_budget * 60 if args.time_budget else None
    autocast = args.bf16 == "on" or (args.bf16 == "auto" and bf16_native(device))
    if rank == 0:  # (a fresh start too: a run killed before its first state left rows the new one repeats)
        _forget_past(out, log_path, step, world)
    log = open(log_path, "a") if rank == 0 else None
    if log:
        log.write(json.dumps({"event": "start", "step": step,
                              "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
                              "params": model.num_params(), "device": str(device), "world": world}) + "\n")
        log.flush()

    clock = time.process_time if args.budget_clock == "cpu" else time.time
    t_start = clock()
    t_wall = last_line = time.time()
    first_step = step
    last_ckpt = time.time()
    bar = _progress_bar(args, budget_s, elapsed_before, step, rank)

    if init is not None and not resume and rank == 0:
        # the starting point is scored: a fine-tune that only loses leaves best.safetensors at the weights it began from
        log.write(json.dumps({"step": 0, "elapsed_s": 0.0, **keeper.check(0, 0.0)}) + "\n")
        log.flush()
    model.train()
    stop = False
    skipped = 0  # updates skipped in this process for a non-finite gradient (logged as skipped_steps)
    while step < args.steps and not stop:
        elapsed, _ = _agree(elapsed_before + clock() - t_start, False, world, device)
        if budget_s is not None and elapsed >= budget_s:  # the last step's validation took the rest of the budget:
            break  # it was the final one (not one more step and a second validation)
        progress = max(step / args.steps, elapsed / budget_s if budget_s else 0.0)
        lr = lr_at(progress, step, args)
        for group in opt.param_groups:
            group["lr"] = lr
        metrics = [_backward_scene(ddp, stream.next(seed_offset), args, autocast, depth_rng, stream.reconstructor)
                   for _ in range(args.batch)]
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        if torch.isfinite(gnorm):
            opt.step()
        else:  # one degenerate scene's NaN would poison every weight: skip its update (the same on every rank)
            skipped += 1
        opt.zero_grad(set_to_none=True)
        step += 1
        avg = {k: sum(m.get(k, 0.0) for m in metrics) / len(metrics) for k in metrics[0]}
        avg["skipped_steps"] = skipped
        elapsed, stop = _agree(elapsed_before + clock() - t_start, bool(interrupt.signum), world, device)
        if budget_s is not None and elapsed >= budget_s:
            stop = True
        if rank == 0:
            bar.update(min(round(elapsed), bar.total) - bar.n if budget_s is not None else 1)
            bar.set_postfix(step=step, loss=f"{avg['loss']:.4f}", psnr=f"{avg['psnr']:.2f}", lr=f"{lr:.2e}")
            if bar.disable and time.time() - last_line >= PROGRESS_EVERY_S:  # a pipe or a log: no bar, a line
                done = elapsed / budget_s if budget_s else step / args.steps
                print(f"step {step}/{args.steps} ({100 * done:.0f} %{' of the time budget' if budget_s else ''}), "
                      f"loss {avg['loss']:.4f}, psnr {avg['psnr']:.2f}, lr {lr:.2e}, "
                      f"{(step - first_step) / max(time.time() - t_wall, 1e-9) * 60:.1f} steps/min, "
                      f"elapsed {elapsed:.0f} s", flush=True)
                last_line = time.time()
            row = {"step": step, "elapsed_s": round(elapsed, 1), "lr": lr, "grad_norm": float(gnorm)}
            row.update({k: round(v, 5) for k, v in avg.items()})
            if (step % args.val_every == 0 or stop or step == args.steps) and not interrupt.signum:
                if stop or step == args.steps:  # the last step: its bar's rate is the training's, not validation's
                    bar.close()
                row.update(keeper.check(step, elapsed))
                if budget_s is None:  # the bar's rate and ETA leave out the time validation took
                    bar.unpause()
            log.write(json.dumps(row) + "\n")
            log.flush()
        due = time.time() - last_ckpt > args.ckpt_minutes * 60 or stop or step == args.steps
        if world > 1:  # every rank writes its record when rank 0 saves the state (one collective, as _agree's)
            due = _agree(0.0, due, world, device)[1]
        if due:
            keeper.checkpoint(step, elapsed)
            last_ckpt = time.time()
    bar.close()
    if keeper.saved_step != step:  # the budget ran out in the last step's validation (the same step on every rank)
        keeper.checkpoint(step, elapsed)
    if rank == 0:
        info = _info(args, step, elapsed_before + clock() - t_start, world)
        save_model(out / "model.safetensors", model, info=info)
        if args.export:
            save_model(args.export, model, dtype=torch.bfloat16, info=info)
        log.write(json.dumps({"event": "end", "step": step}) + "\n")
        log.close()
    if world > 1:  # every rank done (rank 0 saving) before the group goes: none tears it down under another
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if interrupt.signum:
        if rank == 0:
            print(f"lrm4d train: interrupted at step {step}: state and weights saved in {out}; continue with "
                  f"--resume", file=sys.stderr)
        return 128 + interrupt.signum
    return 0


def _start(args, out: Path, cfg: LRM4DConfig, init: LRM4D | None, resume: bool, device: torch.device):
    """(model, optimizer, step, elapsed_s, next scene seed offset): new (from --init's weights where given), or as
    out/state.safetensors left them."""
    model = LRM4D(cfg).to(device)
    if init is not None:
        model.load_state_dict(init.state_dict())
    opt = _optimizer(model, args, device)
    if not resume:
        return model, opt, 0, 0.0, 0
    step, extra = load_training_state(out / "state.safetensors", model, opt)
    for g in opt.param_groups:  # a state saved by the unfused optimizer brings its own flags
        g["fused"], g["foreach"] = _fused(device) or None, None
    # the saved groups bring the saved decay (lr is set at each step): a --weight-decay changed on resume applies
    opt.param_groups[0]["weight_decay"] = args.weight_decay
    return model, opt, step, float(extra.get("elapsed_s", 0.0)), int(extra.get("next_seed", 0))


class _Keeper:
    """What a run keeps: rank 0 validates and keeps the weights as best.safetensors where the protocol score is the
    best yet (`check`), and saves the training state and weights (`checkpoint`); every rank writes its record."""

    def __init__(self, args, out: Path, model: LRM4D, opt, stream: SceneStream, rank: int, world: int, resume: bool,
                 seed_offset: int, step: int):
        self.args, self.out, self.model, self.opt, self.stream = args, out, model, opt, stream
        self.rank, self.world, self.seed_offset = rank, world, seed_offset
        # Rendered once, 3×3 supersampled like the bags. They select best.safetensors: the random validation scenes
        # differ from the evaluation's in background, primitive count, rigs and aliasing, and ranked trials otherwise.
        self.proto_scenes = [] if rank != 0 or args.val_protocol == "none" else \
            protocol_scenes(args) if stream.recorded is None else args._val_windows
        self.best_path, self.best_psnr = out / "best.safetensors", -math.inf
        self.val_data = _val_data(args)
        if self.best_path.is_file() and resume and rank == 0:
            kept = load_config(self.best_path)[1]
            same = kept.get("val_data", self.val_data if args.bags is None else None) == self.val_data
            if kept.get("val_protocol") == args.val_protocol and same:
                self.best_psnr = float(kept.get("val_protocol_psnr", -math.inf))
            else:  # scores on other scenes do not compare
                print(f"lrm4d train: note: {self.best_path} was chosen by another validation "
                      f"({kept.get('val_protocol')}, {kept.get('val_data', 'procedural scenes')}): this run's first "
                      "validation replaces it", file=sys.stderr)
        # Each rank's view of the run (rank<r>.json): DDP keeps the weights identical across ranks while each draws
        # its own scenes. Written with each saved state, so that after a kill it holds the seeds of the steps the
        # state has.
        self.rank_path = out / f"rank{rank}.json"
        self.seeds_before = (json.loads(self.rank_path.read_text()).get("scene_seeds", [])
                             if resume and self.rank_path.is_file() else [])
        self.saved_step = step

    def check(self, step: int, elapsed: float) -> dict:
        """Validate (rank 0), keep the weights as best.safetensors where the protocol score is the best yet, and
        say so; returns the log row's validation fields."""
        from tqdm import tqdm

        args, proto = self.args, self.proto_scenes
        tqdm.write(f"step {step}: validating on {_count(args.val_scenes, 'scene')}"
                   + (f" and {_count(len(proto), args.val_protocol + ' scene')}" if proto else "") + " ...")
        row = {"val": validate(self.model, self.stream, args)}
        text = f"step {step} val psnr {row['val']['psnr']:.2f} ssim {row['val']['ssim']:.4f}"
        if "rgbd_psnr" in row["val"]:
            text += f", RGB-D {row['val']['rgbd_psnr']:.2f} / {row['val']['rgbd_ssim']:.4f}"
        if proto:
            pv = row["val_protocol"] = validate_protocol(self.model, proto, args.val_protocol)
            text += (f" | {args.val_protocol} {pv['psnr']:.2f} dB"
                     + (f" (RGB-D {pv['rgbd']['psnr']:.2f}, RGB {pv['rgb']['psnr']:.2f})" if "rgbd" in pv
                        else "") + f", nearest {pv['nearest']:.2f}, gain {pv['gain']:+.2f}")
            if pv["psnr"] > self.best_psnr:
                self.best_psnr = pv["psnr"]
                save_model(self.best_path, self.model, info={**_info(args, step, elapsed, self.world),
                                                             "val_protocol": args.val_protocol,
                                                             "val_protocol_psnr": self.best_psnr,
                                                             "val_data": self.val_data})
                text += " (best)"
        tqdm.write(text + (" (the --init weights)" if step == 0 else ""))
        return row

    def checkpoint(self, step: int, elapsed: float) -> None:
        """Rank 0 saves the training state and the weights; every rank writes its record."""
        args, model = self.args, self.model
        if self.rank == 0:
            extra = {"elapsed_s": elapsed, "next_seed": self.seed_offset + self.stream.index * self.world,
                     "world": self.world, "args": {k: getattr(args, k) for k in RESUME_NOTED}}
            save_training_state(self.out / "state.safetensors", model, self.opt, step, extra)
            save_model(self.out / "model.safetensors", model, info=_info(args, step, elapsed, self.world))
        digest = hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in model.parameters())).hexdigest()
        tmp = self.rank_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"rank": self.rank, "world": self.world, "step": step, "weights_sha256": digest,
                                   "scene_seeds": self.seeds_before + self.stream.drawn}))
        tmp.replace(self.rank_path)
        self.saved_step = step


def _val_data(args) -> str:
    """What the protocol validation scores, as best.safetensors records it: scores on other data do not compare."""
    if args.bags:
        held = ("--val-bags " + " ".join(map(str, args.val_bags))) if args.val_bags else \
            ("the last fifth of --bags " + " ".join(map(str, args.bags)))
        return (f"{held} (up to {args.val_protocol_scenes or VAL_PROTOCOL_WINDOWS} windows of {args.frames} frames "
                f"at {args.resolution} px)")
    return f"procedural scenes ({args.val_protocol_scenes or VAL_PROTOCOL_SCENES} at {args.resolution} px)"


def _fused(device: torch.device) -> bool:
    # The fused kernel updates all parameters in one pass: ~3 ms a step on this CPU against ~10 for the loop
    # (benchmarks/results/train_cpu.txt); the same arithmetic up to rounding.
    return device.type in ("cpu", "cuda")


def _optimizer(model: LRM4D, args, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices (ndim >= 2) only."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95),
                             fused=_fused(device) or None)


def _forget_past(out: Path, log_path: Path, step: int, world: int) -> None:
    """Before a resumed run: a run killed outright (SIGKILL, out of memory) logged steps past its last saved state,
    which the resumed run trains again: their rows go, so that the log holds each step once. Ranks beyond this
    run's are gone."""
    if log_path.is_file():
        kept = [line for line in log_path.read_text().splitlines() if _logged_step(line) <= step]
        log_path.write_text("".join(line + "\n" for line in kept))
    for stale in out.glob("rank*.json"):
        if stale.stem[4:].isdigit() and int(stale.stem[4:]) >= world:
            stale.unlink()


def _progress_bar(args, budget_s: float | None, elapsed_before: float, step: int, rank: int):
    """tqdm bar of the run. With a time budget it counts seconds, so its ETA is the budget's end rather than that of
    --steps. Rank 0 shows it where stderr is a terminal (disable=None), not in a pipe or a log."""
    from tqdm import tqdm

    disable = True if rank != 0 else None
    if budget_s is not None:
        return tqdm(total=round(budget_s), initial=min(round(elapsed_before), round(budget_s)),
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s [{elapsed}<{remaining}{postfix}]",
                    disable=disable, dynamic_ncols=True)
    return tqdm(total=args.steps, initial=step, unit="step", disable=disable, dynamic_ncols=True)


def _backward_scene(ddp, item: dict, args, autocast: bool, depth_rng: torch.Generator,
                    reconstructor: Reconstructor | None = None) -> dict:
    """One drawn scene's loss back-propagated (scaled by 1 / --batch); its metrics. The inputs' depth is what an
    RGB-D camera would measure (noise, dropouts, range), dropped on some cameras or all; a recorded scene's is
    the camera's own, made as inference makes it (`recorded_inputs`, with `reconstructor`)."""
    model = ddp.module if hasattr(ddp, "module") else ddp
    targets = item["targets"]
    if args.self_targets:
        pick = torch.randperm(len(item["inputs"]))[:args.self_targets]
        targets = ViewSet.cat([targets, item["inputs"].select(pick)])
    depths = None
    if model.cfg.depth_input and item["inputs"].depths is not None:
        depths = item["inputs"].depths if item.get("measured") else \
            sensor_depth(item["inputs"].depths, item["inputs"].Ks.float(), depth_rng)
        depths = drop_depth(depths, depth_rng, args.depth_drop_scene, args.depth_drop_view)
    if item.get("measured"):
        loss, m = scene_loss(ddp, item["inputs"], targets, args.ssim_weight, autocast,
                             prepared=recorded_inputs(reconstructor, item["inputs"], depths))
    else:
        loss, m = scene_loss(ddp, item["inputs"], targets, args.ssim_weight, autocast, depths)
    (loss / args.batch).backward()
    m["n_in"] = len(item["inputs"])
    return m


def recorded_inputs(reconstructor: Reconstructor, inputs: ViewSet, depths: torch.Tensor | None):
    """Recorded input views with these depths (metres, 0 = none; None: colour only, as drawn or dropped) as the
    model takes them at inference (`Reconstructor.inputs`: the depth camera's background, unit, ray distance and
    noise made like the training sensor's; the frame levelled by the floor it measures), so that a fine-tune learns
    from what the node and `lrm4d reconstruct` will give it."""
    return reconstructor.inputs(replace(inputs, depths=depths))


def _logged_step(line: str) -> float:
    """The step of a train.log row (0 for one without), inf for a row a kill cut short."""
    try:
        return json.loads(line).get("step", 0)
    except ValueError:
        return math.inf


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _info(args, step: int, elapsed_s: float, world: int) -> dict:
    return {"steps": step, f"train_{args.budget_clock}_s": round(elapsed_s, 1), "processes": world,
            "image_size": _config(args).image_size,
            "target_resolution": args.resolution,
            "frames": args.frames, "cameras": "as recorded" if args.bags else args.cameras, "inputs": args.inputs,
            "targets": args.targets,
            "batch": args.batch, "lr": args.lr,
            "data": ("recorded bags: " + ", ".join(map(str, args.bags))) if args.bags else
            "procedural scenes (lrm4d_ros.data), train seeds < 1e6",
            **({"init": str(args.init)} if args.init else {})}
