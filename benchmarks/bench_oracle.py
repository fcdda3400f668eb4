"""What exact geometry, and then exact motion, buy under each protocol: oracle reconstructions beside the
nearest-input baseline.

For each evaluation scene (lrm4d_ros.data.eval_scenes) the protocol's input views are turned into "oracle"
Gaussians: one per covered input pixel, placed on its ray at the generator's ground-truth depth, with the pixel's
exact colour and coverage as opacity, a footprint-sized isotropic splat, centred at its view's time with temporal
extent `st` (normalised window units; frames are 2/11 apart). Rendered at every target (128², over the same
estimated background the model uses):

- "oracle st=…": no motion, i.e. static per-frame snapshots with each input's geometry exact;
- "motion st=…": the same Gaussians, each moving at the ground-truth velocity of its surface point at its view's
  time (first order: the 4D Gaussian's Σ_xt/Σ_tt, so spins and swings are followed along their tangent only);
- "self-render": the oracle rendered back at its own input views, the construction's ceiling (splat blur and the
  rasteriser's 0.3 px² low-pass on sharp procedural textures);
- optionally the model checkpoint on the same targets, and rendered back at its inputs ("model self").

These are reference reconstructions a feed-forward model could imitate, not strict upper bounds: an optimiser
with multi-view supervision could place sharper or more Gaussians. Each frame has a single input view in both
protocols, so a target camera sees surfaces that only other frames showed; "motion" minus "oracle" is what
knowing how they moved buys.

    python benchmarks/bench_oracle.py [--input-size 64] [--checkpoint PATH|shipped|none] [--threads 1]
    python benchmarks/bench_oracle.py --drift     # how far first-order motion carries one view across frames
"""
from __future__ import annotations

import argparse
from dataclasses import replace
import platform
from pathlib import Path

import torch
from torch import Tensor

from lrm4d_ros.baselines import nearest_input
from lrm4d_ros.cameras import SceneNormalization, TimeWindow, pixel_rays
from lrm4d_ros.data.eval_scenes import EVAL_SCENES, scene_config
from lrm4d_ros.data.generator import generate, sample_scene
from lrm4d_ros.data.protocols import split_protocol
from lrm4d_ros.data.raycast import surface_ids
from lrm4d_ros.gaussians import Gaussians4D
from lrm4d_ros.metrics import psnr
from lrm4d_ros.reconstruction import render_at_times
from lrm4d_ros.reconstructor import Reconstructor, estimate_background

RESULTS = Path(__file__).resolve().parent / "results"
TEMPORAL_EXTENTS = (0.05, 0.1, 0.2, 0.5)
MOTION_EXTENTS = (0.05, 0.1, 0.2)


def surface_points(views, camtoworlds: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """Points (V,H,W,3) float64 at each pixel's ground-truth z-depth along its ray from `camtoworlds` (the views'
    poses in some frame whose lengths are `scale` × metres), and their distances along the rays (V,H,W)."""
    V, H, W = views.depths.shape
    c2w = camtoworlds.double()
    o, d = pixel_rays(views.Ks.double(), c2w, H, W)
    dist = views.depths.double() * scale / (d * c2w[:, None, None, :3, 2]).sum(-1)  # z-depth -> ray distance
    return o + dist[..., None] * d, dist


def oracle_gaussians(inputs, norm: SceneNormalization, window: TimeWindow, st: float) -> Gaussians4D:
    """Canonical-frame oracle Gaussians of `inputs` (a ViewSet with ground-truth depths and alphas)."""
    V, H, W = inputs.depths.shape
    points, dist = surface_points(inputs, norm.poses_to_canonical(inputs.camtoworlds.double()), norm.scale)
    hit = (inputs.depths > 0).reshape(-1)
    f = (inputs.Ks[:, 0, 0] * inputs.Ks[:, 1, 1]).sqrt()[:, None, None]
    n = int(hit.sum())
    scale = (0.7 * dist / f).reshape(-1)[hit].float()
    return Gaussians4D(
        means=points.reshape(-1, 3)[hit].float(),
        times=window.normalize(inputs.stamps_ns).float()[:, None, None].expand(V, H, W).reshape(-1)[hit],
        velocities=torch.zeros(n, 3), covars=scale[:, None, None] ** 2 * torch.eye(3),
        scale_t=torch.full((n,), st), opacities=inputs.alphas.reshape(-1)[hit].clamp(max=0.99),
        colors=inputs.images.reshape(-1, 3)[hit])


def surface_velocities(scene, views, norm: SceneNormalization, window: TimeWindow, eps: float = 1e-3) -> Tensor:
    """(V,H,W,3) float64 velocity of the surface point under each pixel of `views` (rendered from `scene` with
    depths), in canonical units per normalised time; 0 on ground, backdrop and empty pixels."""
    V, H, W = views.depths.shape
    ids = surface_ids(scene, views.camera_ids, views.stamps_ns, H, W)
    x, _ = surface_points(views, views.camtoworlds)  # world, metres
    u0 = (views.stamps_ns.cpu() - scene.start_ns).double() / scene.duration_ns
    (R0, c0, s0), (Ra, ca, sa), (Rb, cb, sb) = (scene.motion.at(u0 + du) for du in (0.0, -eps, eps))
    vel = torch.zeros(V, H, W, 3, dtype=torch.float64)
    for k in range(V):
        hit = ids[k] >= 0
        p = ids[k][hit]
        y = ((x[k][hit] - c0[k, p])[:, None, :] @ R0[k, p])[:, 0] / s0[k, p]  # object-space point, fixed in time
        xa = (Ra[k, p] @ (sa[k, p] * y)[..., None])[..., 0] + ca[k, p]
        xb = (Rb[k, p] @ (sb[k, p] * y)[..., None])[..., 0] + cb[k, p]
        vel[k][hit] = (xb - xa) / (2 * eps)  # metres per window fraction
    # per window fraction -> per normalised time: t_norm = 2 (stamp − start) / span − 1, stamp = s0 + u·duration
    return vel * norm.scale * (window.end_ns - window.start_ns) / (2.0 * scene.duration_ns)


def moving(g: Gaussians4D, velocity: Tensor) -> Gaussians4D:
    """`g` with Gaussian i moving at velocity[i] (N,3): every slice keeps g's spatial covariance and its mean moves
    by v·(t − μ_t) (in the paper's form, a shear of the 4D covariance)."""
    return replace(g, velocities=velocity.to(g.means))


def render_psnr(g: Gaussians4D, views, c2w: Tensor, times: Tensor, background: Tensor) -> float:
    """Mean PSNR of `g` rendered at `views` (canonical poses c2w, normalised times) against their images."""
    with torch.no_grad():
        out = render_at_times(g, c2w, views.Ks.float(), views.width, views.height, times, background)
    return float(psnr(out.colors.clamp(0, 1), views.images).mean())


def score_scene(views, protocol: str, input_size: int, reconstructor: Reconstructor | None, scene=None) -> dict:
    """PSNR of nearest, the oracles and the model on one scene; `scene` (its sample_scene) adds the motion oracle."""
    inputs, targets = split_protocol(views, protocol)
    row = {"nearest": float(psnr(nearest_input(inputs, targets), targets.images).mean())}
    small = inputs.resized(input_size, input_size)
    norm = SceneNormalization.from_cameras(small.camtoworlds)
    window = TimeWindow.from_stamps(small.stamps_ns)
    bg = estimate_background(small.images)
    c2w = norm.poses_to_canonical(targets.camtoworlds.double()).float()
    times = window.normalize(targets.stamps_ns)
    for st in TEMPORAL_EXTENTS:
        row[f"oracle st={st}"] = render_psnr(oracle_gaussians(small, norm, window, st), targets, c2w, times, bg)
    # The construction's own ceiling: the oracle of the inputs rendered back at the inputs themselves.
    row["self-render"] = render_psnr(oracle_gaussians(small, norm, window, TEMPORAL_EXTENTS[0]), inputs,
                                     norm.poses_to_canonical(inputs.camtoworlds.double()).float(),
                                     window.normalize(inputs.stamps_ns), bg)
    if scene is not None:
        # Velocities at the inputs' own resolution: the oracle's pixels are those of `small`.
        vel = surface_velocities(scene, small, norm, window)
        hit = (small.depths > 0).reshape(-1)
        for st in MOTION_EXTENTS:
            g = moving(oracle_gaussians(small, norm, window, st), vel.reshape(-1, 3)[hit])
            row[f"motion st={st}"] = render_psnr(g, targets, c2w, times, bg)
    if reconstructor is not None:
        reconstructor.forget()  # unrelated scenes: no floor found in one is tried on the next
        rec = reconstructor.reconstruct(inputs)
        with torch.no_grad():
            out = rec.render(targets.camtoworlds, targets.Ks, targets.width, targets.height, targets.stamps_ns)
        row["model"] = float(psnr(out.colors.clamp(0, 1), targets.images).mean())
        with torch.no_grad():
            out = rec.render(inputs.camtoworlds, inputs.Ks, inputs.width, inputs.height, inputs.stamps_ns)
        row["model self"] = float(psnr(out.colors.clamp(0, 1), inputs.images).mean())
    return row


def drift(views, scene, input_size: int, camera: int = 0) -> dict[int, tuple[float, float]]:
    """How far first-order motion carries: the oracle of one view (`camera` at the middle frame, no temporal fade)
    rendered at that camera's other frames, without and with motion -> {frame offset: (static dB, moving dB)}."""
    C = len(views.camera_names)
    T = len(views) // C
    cam = views.select(torch.arange(camera, len(views), C))  # frame-major: view k·C + c
    mid = T // 2
    src = cam.select(torch.tensor([mid])).resized(input_size, input_size)
    norm = SceneNormalization.from_cameras(views.camtoworlds)
    window = TimeWindow.from_stamps(views.stamps_ns)
    vel = surface_velocities(scene, src, norm, window).reshape(-1, 3)[(src.depths > 0).reshape(-1)]
    c2w = norm.poses_to_canonical(cam.camtoworlds.double()).float()
    scores = []
    for g in (oracle_gaussians(src, norm, window, 5.0), moving(oracle_gaussians(src, norm, window, 5.0), vel)):
        with torch.no_grad():
            out = render_at_times(g, c2w, cam.Ks.float(), cam.width, cam.height, window.normalize(cam.stamps_ns),
                                  estimate_background(src.images))
        scores.append(psnr(out.colors.clamp(0, 1), cam.images))
    return {k - mid: (float(scores[0][k]), float(scores[1][k])) for k in range(T)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input-size", type=int, default=64,
                   help="inputs are resized to this (default 64, as results/oracle_bounds.txt; the shipped model "
                        "takes 128: results/oracle_bounds_128.txt)")
    p.add_argument("--checkpoint", default="shipped", help="also score this model ('shipped', a path, or 'none')")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="results file (default: results/oracle_bounds.txt, or "
                   "results/oracle_motion_drift.txt with --drift)")
    p.add_argument("--drift", action="store_true",
                   help="only measure how far first-order motion carries one view's oracle across frames")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.drift:
        return write_drift(args)
    rec = None if args.checkpoint == "none" else Reconstructor.from_checkpoint(
        None if args.checkpoint == "shipped" else args.checkpoint, "cpu")
    rows = {proto: [] for proto in ("alternating", "novel-camera")}
    for seed, rig, motion in EVAL_SCENES:
        views = generate(seed, scene_config(rig, motion))
        scene = sample_scene(seed, scene_config(rig, motion))
        for proto in rows:
            r = score_scene(views, proto, args.input_size, rec, scene)
            rows[proto].append(r)
            print(f"{seed} {rig:9s} {motion:11s} {proto:12s} " + "  ".join(f"{k} {v:.2f}" for k, v in r.items()),
                  flush=True)
    keys = list(rows["alternating"][0])
    lines = [f"# bench_oracle: mean PSNR (dB) over {len(EVAL_SCENES)} eval scenes, targets 128², inputs "
             f"{args.input_size}², checkpoint {args.checkpoint}; torch {torch.__version__}, {platform.machine()}, "
             f"{args.threads} thread(s)",
             f"{'protocol':<14}" + "".join(f"{k:>16}" for k in keys)]
    for proto, rs in rows.items():
        lines.append(f"{proto:<14}" + "".join(f"{sum(r[k] for r in rs) / len(rs):>16.2f}" for k in keys))
    _write("\n".join(lines), args.out or RESULTS / "oracle_bounds.txt")


def write_drift(args) -> None:
    per_offset: dict[int, list[tuple[float, float]]] = {}
    for seed, rig, motion in EVAL_SCENES:
        d = drift(generate(seed, scene_config(rig, motion)), sample_scene(seed, scene_config(rig, motion)),
                  args.input_size)
        print(f"{seed} {rig:9s} {motion:11s} " + "  ".join(f"{k:+d}: {a:.1f}/{b:.1f}" for k, (a, b) in d.items()),
              flush=True)
        for k, ab in d.items():
            per_offset.setdefault(abs(k), []).append(ab)
    lines = [f"# bench_oracle --drift: one view's oracle (camera 0, middle frame, inputs {args.input_size}², no "
             f"temporal fade) rendered at the same camera's other frames, mean PSNR (dB) over "
             f"{len(EVAL_SCENES)} eval scenes; torch {torch.__version__}, {platform.machine()}",
             f"{'|frame offset|':<16}{'static':>10}{'moving':>10}"]
    for k in sorted(per_offset):
        xs = per_offset[k]
        lines.append(f"{k:<16d}{sum(a for a, _ in xs) / len(xs):>10.2f}{sum(b for _, b in xs) / len(xs):>10.2f}")
    _write("\n".join(lines), args.out or RESULTS / "oracle_motion_drift.txt")


def _write(text: str, path) -> None:
    print(text)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
