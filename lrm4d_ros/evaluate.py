"""`lrm4d evaluate BAG... --protocol alternating|novel-camera|rig --json OUT`: docs/design.md §5 on contract bags.

Per bag: split the views by the protocol (lrm4d_ros.data.protocols), reconstruct from the inputs, render every
target at its camera and stamp at the evaluation resolution, and score PSNR / SSIM against the target images,
beside the baselines (lrm4d_ros.baselines: nearest input, background only, and the RGB-D depth reference when
the bag has depth) and, with `--per-scene SECONDS`, a per-scene optimisation of 4D Gaussians on the same inputs
with the same renderer (lrm4d_ros.optimize; from an uninformed start, or from the model's prediction with
`--per-scene-init model`). Metrics are averaged over targets within a bag, then over bags.

Depth: the inputs carry the bag's /<cam>/depth where it has them (`ViewSet.depths`); `--depth off` strips them
from the model's inputs (an RGB-only run). The depth reference always uses them: it is a reference, not the model.

The rig protocol scores target groups (novel_view, novel_view_time, time_interp, self): the JSON holds model and
baselines per group and per bag ("groups"), and the top-level "model"/"baselines" are over the held-out targets
(every group but self). The nearest-input baseline is not scored on "self" (it is the input itself). A view's
PSNR is capped at 60 dB (a copy of an identical image, e.g. a static camera on a static scene). Timings are
wall-clock on the machine that runs it. Each bag's "input_findings" are what its inputs held unlike the model's
training data and what was done (Reconstruction.findings: a depth unit or ray distance mended, another camera frame,
a renderer's background, a tilted world; `lrm4d check-bag` reports the same before an evaluation).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from .baselines import DEPTH_RENDERS, baselines_for, has_depth
from .cameras import project_points
from .metrics import DEPTH_MIN_ALPHA, DELTA1, depth_scores, depth_sums, psnr, ssim
from .pixel_gaussians import z_rays
from .model import BF16_CHOICES
from .outputs import check_writable
from .reconstructor import REFINE_STEPS, Reconstructor
from .views import ViewSet, short_side_size

SELF = "self"  # the rig group of re-rendered inputs
SHEET_TILES = 6  # targets shown per contact sheet
PSNR_CAP = 60.0  # dB: identical 8-bit images score this, not inf (8-bit quantisation alone is 58.9 dB)


def _db(m: dict, n: int) -> str:
    """A method's mean PSNR over n views for a summary line, saying how many of them were exact copies (each
    scored PSNR_CAP: a still camera's in-between moments are its own frames)."""
    k = m.get("exact", 0)
    return f"{m['psnr']:.2f} dB" + (" (exact)" if k == n else f" ({k} of {n} exact)" if k else "")
SEEN_TOLERANCE = 0.05  # relative z-depth: an input whose exact depth is this near a reprojected point saw it


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .data.protocols import PROTOCOLS

    p.add_argument("bags", nargs="+", help="contract bags (docs/design.md §4)")
    p.add_argument("--protocol", required=True, choices=PROTOCOLS,
                   help="which views are the inputs and which are scored (docs/design.md §5): alternating (one "
                        "camera per frame in turn), novel-camera (the even cameras in; the odd ones scored) or rig "
                        "(a synchronized rig: the even cameras at every s-th frame in; the rest scored by group); "
                        "required, no default")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--checkpoint", default=None, help="model weights (default: the shipped checkpoint)")
    p.add_argument("--resolution", type=int, default=128,
                   help="targets are scored at this short-side resolution (resized from the bag if needed) "
                        "(default: 128)")
    p.add_argument("--depth", choices=("on", "off"), default="on",
                   help="give the model the bag's depth images where it has them (default: on)")
    p.add_argument("--floor-z", type=float, default=None, metavar="METRES",
                   help="world height of the bags' floor where it is known (a ground robot's odom/map frame: 0); "
                        "default: found from depth or by matching the views")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--bf16", choices=tuple(BF16_CHOICES), default="auto",
                   help="the transformer under bf16 autocast: auto = where the hardware computes it natively "
                        "(default: auto)")
    p.add_argument("--refine-steps", type=int, default=REFINE_STEPS,
                   help=f"colour refinement passes per reconstruction (default {REFINE_STEPS}; 0 = the model's colours)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    p.add_argument("--per-scene", type=float, default=0.0, metavar="SECONDS",
                   help="also fit 4D Gaussians per scene for this many seconds (default: 0, off)")
    p.add_argument("--per-scene-steps", type=int, default=None, help="stop the per-scene fit after N steps")
    p.add_argument("--per-scene-init", choices=("rays", "model"), default="rays",
                   help="per-scene start: uninformed Gaussians on the input rays, or the model's prediction "
                        "(default: rays)")
    p.add_argument("--sheets", default=None, metavar="DIR",
                   help="write a contact sheet per bag here: ground truth, the model and each baseline on the "
                        f"first held-out group's targets (at most {SHEET_TILES})")


def _scores(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(M,2) per-view PSNR (at most PSNR_CAP) and SSIM."""
    return torch.stack([psnr(pred, target).clamp(max=PSNR_CAP), ssim(pred, target)], 1).double().cpu()


def _mean(per_view: torch.Tensor) -> dict:
    """Mean PSNR and SSIM of (M,2) per-view scores, and how many views were exact (scored PSNR_CAP)."""
    return {"psnr": float(per_view[:, 0].mean()), "ssim": float(per_view[:, 1].mean()),
            "exact": int((per_view[:, 0] >= PSNR_CAP).sum())}


def seen_by_inputs(targets: ViewSet, inputs: ViewSet) -> torch.Tensor:
    """(T,H,W) bool: the target pixel's surface point (from its exact depth) lies in some input view, at that
    view's exact depth there within SEEN_TOLERANCE (relative): some input saw it. False where nothing was hit
    (depth 0). targets, inputs: ViewSets with exact depths (metres), e.g. a scene's ground truth."""
    o, d = z_rays(targets.Ks.double(), targets.camtoworlds.double(), targets.height, targets.width)
    points = o + targets.depths.double()[..., None] * d  # (T,H,W,3) world
    seen = torch.zeros(points.shape[:3], dtype=torch.bool)
    H, W = inputs.height, inputs.width
    for i in range(len(inputs.Ks)):
        uv, z = project_points(points, inputs.Ks[i].double(), inputs.camtoworlds[i].double())
        u, v = uv.unbind(-1)
        inside = (z > 0) & (u > -0.5) & (u < W - 0.5) & (v > -0.5) & (v < H - 0.5)
        held = inputs.depths[i].double()[v.round().clamp(0, H - 1).long(), u.round().clamp(0, W - 1).long()]
        seen |= inside & ((held - z).abs() <= SEEN_TOLERANCE * z)
    return seen & (targets.depths > 0)


def evaluate_views(reconstructor: Reconstructor, views: ViewSet, protocol: str, resolution: int = 128,
                   per_scene=None, per_scene_init: str = "rays", depth: bool = True,
                   baselines: dict | None = None, sheet: list | None = None) -> dict:
    """Scores of one scene's full T×C ViewSet under `protocol` (see module docstring).

    per_scene: an optimize.FitConfig to also score a per-scene fit (started from `per_scene_init`).
    depth: False strips the depths from the model's inputs. baselines: {name: fn(inputs, targets)}; None ->
    `baselines_for(inputs)` (the depth reference included when the inputs have depth). sheet: a list that
    receives contact-sheet rows (label, images (n,H,W,3), PSNR tags) for the first held-out group's targets.
    """
    from .data.protocols import protocol_groups

    in_idx, groups = protocol_groups(views, protocol)
    inputs = views.select(in_idx.to(views.device))
    model_inputs = inputs if depth else replace(inputs, depths=None)
    sync = torch.cuda.synchronize if reconstructor.device.type == "cuda" else (lambda: None)
    reconstructor.forget()  # scenes are unrelated: no floor found in one is tried on the next
    t0 = time.perf_counter()
    rec = reconstructor.reconstruct(model_inputs)
    sync()
    t1 = time.perf_counter()
    # Targets stamped outside the inputs' span (cameras not synchronised: a held-out camera's last frame after the
    # last input's) would be extrapolated, which a reconstruction refuses: they are left out, and counted.
    stamps = views.stamps_ns.cpu()
    kept = {g: idx[rec.covers(stamps[idx]).cpu()] for g, idx in groups.items()}
    outside = sum(len(groups[g]) - len(kept[g]) for g in groups if g != SELF)
    if not any(len(kept[g]) for g in kept if g != SELF):
        raise ValueError(f"every held-out target of the {protocol} protocol lies outside the inputs' time span "
                         "(a reconstruction does not extrapolate)")
    groups = kept
    names = list(groups)
    sizes = [len(groups[g]) for g in names]
    targets = views.select(torch.cat([groups[g] for g in names]).to(views.device))
    targets = targets.resized(*short_side_size(targets.height, targets.width, resolution))
    with torch.no_grad():
        out = rec.render(targets.camtoworlds, targets.Ks, targets.width, targets.height, targets.stamps_ns)
    sync()
    t2 = time.perf_counter()
    gt = targets.images.to(out.colors.device)
    per_view = {"model": _scores(out.colors.clamp(0, 1), gt)}
    shown = {"model": out.colors.clamp(0, 1)}
    for name, fn in (baselines_for(inputs) if baselines is None else baselines).items():
        shown[name] = fn(inputs, targets).to(gt.device)
        per_view[name] = _scores(shown[name], gt)
    if sheet is not None:
        g = next((k for k, n in enumerate(names) if n != SELF and sizes[k]), 0)
        pick = torch.arange(sum(sizes[:g]), sum(sizes[:g]) + sizes[g])
        pick = pick[torch.linspace(0, len(pick) - 1, min(SHEET_TILES, len(pick))).round().long()]
        sheet.append((f"ground truth ({names[g]})", gt[pick].cpu(), []))
        for name, imgs in shown.items():
            sheet.append(("lrm4d" if name == "model" else name, imgs[pick].cpu(),
                          [f"{float(v):.1f} dB" for v in per_view[name][pick, 0]]))
    extra = {}
    if per_scene is not None:
        from .optimize import fit

        res = fit(model_inputs, per_scene, init=rec if per_scene_init == "model" else None)
        with torch.no_grad():
            fo = res.reconstruction.render(targets.camtoworlds, targets.Ks, targets.width, targets.height,
                                           targets.stamps_ns)
        per_view["per_scene"] = _scores(fo.colors.clamp(0, 1), gt)
        extra = {"init": per_scene_init, "fit_s": round(res.seconds, 2), "steps": res.steps,
                 "input_psnr": round(res.input_psnr, 3)}
    split = {n: dict(zip(names, s.split(sizes))) for n, s in per_view.items()}
    held = [g for g in names if g != SELF]
    depth_split = {}
    if has_depth(targets):  # the rendered depth against the targets' measured depth
        truth = targets.depths.cpu()
        sums = {"model": depth_sums(out.depths[..., 0].cpu(), out.alphas[..., 0].cpu(), truth)}
        if has_depth(inputs):
            for name, fn in DEPTH_RENDERS.items():
                z, a = fn(inputs, targets)
                sums[name] = depth_sums(z.cpu(), a.cpu(), truth)
        depth_split = {n: dict(zip(names, s.split(sizes))) for n, s in sums.items()}

    def depth_of(gs: list[str]) -> dict:
        """{"model": scores, "baselines": {name: scores}} of the rendered depth over groups gs, pixels pooled."""
        res = {n: depth_scores(torch.cat([depth_split[n][g] for g in gs])) for n in depth_split}
        return {"model": res.pop("model"), "baselines": res}

    def methods(gs: list[str]) -> dict:
        res = {}
        for n in per_view:
            use = [g for g in gs if sizes[names.index(g)] and not (n == "nearest" and g == SELF)]
            if use:
                res[n] = {**_mean(torch.cat([split[n][g] for g in use])), **(extra if n == "per_scene" else {})}
        return res

    overall = methods(held)
    row = {"num_inputs": len(inputs), "num_targets": sum(len(groups[g]) for g in held),
           "resolution": [targets.height, targets.width], "num_gaussians": len(rec.gaussians),
           "input_depth": 0.0 if inputs.depths is None else round(float((inputs.depths > 0).float().mean()), 4),
           "model_depth": bool(depth and inputs.depths is not None), "input_findings": list(rec.findings),
           "model": overall.pop("model"), "baselines": overall,
           "reconstruct_s": round(t1 - t0, 4), "render_s_per_view": round((t2 - t1) / len(targets), 4)}
    if depth_split:
        row["rendered_depth"] = depth_of(held)
    if outside:
        row["outside_window"] = outside
    if len(names) > 1:
        row["groups"] = {}
        for g in names:
            m = methods([g])
            row["groups"][g] = {"num_targets": len(groups[g]), **({"model": m.pop("model"), "baselines": m}
                                                                 if m else {})}
            if depth_split and sizes[names.index(g)]:
                row["groups"][g]["rendered_depth"] = depth_of([g])
    return row


def _average(entries: list[dict]) -> dict:
    """Mean of the numeric keys of metric dicts (psnr, ssim, and per-scene fit_s/steps where present); the sum of
    their exact views."""
    keys = [k for k in ("psnr", "ssim", "fit_s", "steps") if all(k in e for e in entries)]
    return {**{k: sum(e[k] for e in entries) / len(entries) for k in keys},
            **({"exact": sum(e["exact"] for e in entries)} if all("exact" in e for e in entries) else {})}


def _summarize_methods(entries: list[dict], average=_average) -> dict:
    """{"model": mean, "baselines": {name: mean over the entries that have it, with "bags" (that many) and
    "of_bags" (of these) where fewer}}; `average` makes a mean of metric dicts (_average, or _depth_mean)."""
    out = {"model": average([e["model"] for e in entries]), "baselines": {}}
    names = list(dict.fromkeys(n for e in entries for n in e["baselines"]))
    for n in names:
        have = [e["baselines"][n] for e in entries if n in e["baselines"]]
        out["baselines"][n] = {**average(have), **({"bags": len(have), "of_bags": len(entries)}
                                                   if len(have) < len(entries) else {})}
    return out


def _depth_mean(scores: list[dict]) -> dict:
    """Mean over bags of each depth figure (AbsRel, δ₁, coverage) where a bag has it, their pixels summed, and on
    how many bags ("bags")."""
    out = {}
    for k in ("abs_rel", "delta1", "coverage"):
        have = [e[k] for e in scores if e[k] is not None]
        out[k] = sum(have) / len(have) if have else None
    return {**out, "pixels": sum(e["pixels"] for e in scores), "bags": len(scores)}


def _summarize_depth(entries: list[dict]) -> dict | None:
    """The "rendered_depth" of `entries` (per-bag rows or their groups) averaged over those that have one (None if
    none)."""
    have = [e["rendered_depth"] for e in entries if "rendered_depth" in e]
    return _summarize_methods(have, _depth_mean) if have else None


def summarize(rows: list[dict], protocol: str) -> dict:
    """Mean over bags of each method's per-bag mean PSNR/SSIM (per group too where the protocol has groups),
    plus the per-bag rows."""
    def mean(get):
        return sum(get(r) for r in rows) / len(rows)

    result = {"protocol": protocol, **_summarize_methods(rows)}
    depth = _summarize_depth(rows)
    if depth is not None:
        result["rendered_depth"] = depth
    if "groups" in rows[0]:
        result["groups"] = {}
        for g in rows[0]["groups"]:
            scored = [r["groups"][g] for r in rows if "model" in r["groups"][g]]
            if scored:
                result["groups"][g] = {"bags": len(scored), "num_targets": sum(e["num_targets"] for e in scored),
                                       **_summarize_methods(scored)}
                depth = _summarize_depth(scored)
                if depth is not None:
                    result["groups"][g]["rendered_depth"] = depth
    result["timing"] = {"reconstruct_s": mean(lambda r: r["reconstruct_s"]),
                        "render_s_per_view": mean(lambda r: r["render_s_per_view"])}
    result["per_bag"] = rows
    return result


def _cell(m: dict | None) -> str:
    return f"{'-':>15}" if m is None else f"{m['psnr']:>8.2f} {m['ssim']:.3f}"


def format_table(result: dict) -> str:
    """Methods (rows) over the held-out targets; for grouped protocols, then groups (rows) × methods
    (columns), each cell "PSNR SSIM"."""
    depth = ""
    if "depth" in result:
        sensed = any(row.get("input_depth") for row in result["per_bag"])
        depth = f", model depth input {result['depth']}" + ("" if sensed else " (no bag has depth: colour only)")
    # a baseline scored on fewer bags (the depth reference: those with depth) says on how many
    labels = {"lrm4d": result["model"]}
    for name, m in result["baselines"].items():
        labels[name + (f" ({m['bags']} of {m['of_bags']} bags)" if "of_bags" in m else "")] = m
    width = max(16, *(len(label) + 1 for label in labels))
    lines = [f"protocol: {result['protocol']}  ({len(result['per_bag'])} bags){depth}",
             f"{'method':<{width}}{'PSNR (dB)':>10}{'SSIM':>8}"]
    for label, m in labels.items():
        lines.append(f"{label:<{width}}{m['psnr']:>10.2f}{m['ssim']:>8.4f}")
    exact = {label.split()[0]: m["exact"] for label, m in labels.items() if m.get("exact")}
    if exact:  # a still camera's in-between moments are its frames: copies that score the cap, not a reconstruction
        lines.append("(exact copies of their target, each counted as {:g} dB: {}; the lines per bag show where)".format(
            PSNR_CAP, ", ".join(f"{n} {k} of the held-out targets" for n, k in exact.items())))
    if "groups" in result:
        methods = ["lrm4d", *dict.fromkeys(n for g in result["groups"].values() for n in g["baselines"])]
        lines.append("")
        lines.append(f"{'group (PSNR SSIM)':<18}{'targets':>8}" + "".join(f"{n:>16}" for n in methods))
        for g, e in result["groups"].items():
            cells = [e["model"]] + [e["baselines"].get(n) for n in methods[1:]]
            lines.append(f"{g:<18}{e['num_targets']:>8}" + "".join(f" {_cell(c)}" for c in cells))
        lines.append("(targets summed over bags; held-out = every group but self, as in the rows above"
                     + "".join(f"; {n} over {m['bags']} of {m['of_bags']} bags" for n, m in result["baselines"].items()
                               if "of_bags" in m) + ")")
    if "rendered_depth" in result:
        lines.extend(_depth_table(result))
    t = result["timing"]
    lines.append(f"reconstruct {t['reconstruct_s']:.3f} s/window, render {t['render_s_per_view']:.3f} s/view")
    return "\n".join(lines)


def _depth_cell(m: dict | None) -> str:
    def pct(x):
        return f"{'-':>8}" if x is None else f"{x:>8.1%}"

    if m is None:
        return f"{'-':>8}" * 3
    return (f"{'-':>8}" if m["abs_rel"] is None else f"{m['abs_rel']:>8.3f}") + pct(m["delta1"]) + pct(m["coverage"])


def _depth_table(result: dict) -> list[str]:
    """Rows (held-out, then each group) × methods of the rendered depth against the bags' measured depth."""
    top = result["rendered_depth"]
    methods = ["lrm4d", *top["baselines"]]
    rows = [("held-out", top)] + [(g, e["rendered_depth"]) for g, e in result.get("groups", {}).items()
                                  if "rendered_depth" in e]
    return ["", f"rendered depth against the bags' measured depth ({top['model']['bags']} of {len(result['per_bag'])} "
            f"bags): AbsRel and δ<{DELTA1:g} over the measured pixels the render covers (α ≥ {DEPTH_MIN_ALPHA:g}), "
            "and their share",
            f"{'':<18}" + "".join(f"{n:>25}" for n in methods),
            f"{'group':<18}" + f" {'AbsRel':>8}{'δ<' + format(DELTA1, 'g'):>8}{'covered':>8}" * len(methods),
            *(f"{name:<18}" + "".join(f" {_depth_cell(c)}" for c in [d["model"]] + [d["baselines"].get(n)
                                                                                  for n in methods[1:]])
              for name, d in rows)]


def _check_arguments(args) -> None:
    """ValueError (BagError is one) or OSError for arguments that would fail later: output paths that cannot be
    written and bags that cannot be opened, before hours of evaluation."""
    if args.json:
        check_writable(args.json, "--json", is_dir=False)
    if args.sheets:
        check_writable(args.sheets, "--sheets")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.resolution < 16:
        raise ValueError(f"--resolution must be >= 16 pixels (SSIM's window), got {args.resolution}")
    from .io.bag import BagError, check_bag

    for bag in args.bags:  # every bag opens and has its cameras' topics, before the first one is evaluated
        try:
            check_bag(bag)
        except BagError as exc:
            raise exc if str(bag) in str(exc) else BagError(f"{bag}: {exc}") from None


def run(args) -> int:
    from .io.bag import BagError, check_fits, read_bag

    try:
        _check_arguments(args)
        if args.threads:
            torch.set_num_threads(args.threads)
        reconstructor = Reconstructor.from_checkpoint(args.checkpoint, args.device, args.refine_steps, args.floor_z,
                                                      BF16_CHOICES[args.bf16])
    except (ValueError, OSError) as e:  # OSError: FileNotFoundError, an output that cannot be written
        print(f"lrm4d evaluate: error: {e}", file=sys.stderr)
        return 2
    per_scene = None
    if args.per_scene > 0 or args.per_scene_steps:
        from .optimize import FitConfig

        per_scene = FitConfig(steps=args.per_scene_steps, seconds=args.per_scene if args.per_scene > 0 else None)
    rows, skipped = [], []
    names = [Path(bag).name for bag in args.bags]  # two bags of one name (scene_3 in two folders): the folder too
    sheet_names = {bag: f"{Path(bag).resolve().parent.name}_{n}" if names.count(n) > 1 else n
                   for bag, n in zip(args.bags, names)}
    for bag in args.bags:
        try:
            check_fits(bag, advice="evaluate a shorter recording (the protocols take a whole bag)")
            views = read_bag(bag)
        except BagError as e:
            print(f"lrm4d evaluate: error: {e}", file=sys.stderr)
            return 2
        sheet = [] if args.sheets else None
        try:
            row = evaluate_views(reconstructor, views, args.protocol, args.resolution, per_scene,
                                 args.per_scene_init, depth=args.depth == "on", sheet=sheet)
        except ValueError as e:  # this bag cannot be scored so (too few cameras or frames): the others still are
            print(f"lrm4d evaluate: error: {bag}: {e}; not scored", file=sys.stderr)
            skipped.append({"bag": str(bag), "error": str(e)})
            continue
        row["bag"] = str(bag)
        if sheet is not None:
            from .video import contact_sheet, write_png

            path = Path(args.sheets) / f"{sheet_names[bag]}_{args.protocol}_depth-{args.depth}.png"
            write_png(path, contact_sheet([(label, imgs) for label, imgs, _ in sheet], [t for *_, t in sheet]))
            print(f"wrote {path}")
        n = row["num_targets"]
        notes = ["held-out"]
        if row["input_depth"]:
            notes.append(f"model depth input on {row['input_depth']:.0%} of pixels" if row["model_depth"] else
                         f"RGB-only model inputs; the bag's depth on {row['input_depth']:.0%} of pixels went to "
                         "depth_reference only")
        if row.get("outside_window"):
            notes.append(f"{row['outside_window']} targets outside the inputs' time span left out")
        depth = row.get("rendered_depth", {}).get("model")
        if depth and depth["abs_rel"] is not None:
            notes.append(f"rendered depth AbsRel {depth['abs_rel']:.3f} on {depth['coverage']:.0%} of the measured "
                         "pixels")
        print(f"{bag}: lrm4d {_db(row['model'], n)}, "
              + ", ".join(f"{name} {_db(m, n)}" for name, m in row["baselines"].items())
              + f" ({'; '.join(notes)})", flush=True)
        rows.append(row)
    if not rows:
        print(f"lrm4d evaluate: error: none of the {len(args.bags)} bag(s) could be scored", file=sys.stderr)
        return 2
    result = summarize(rows, args.protocol)
    result["depth"] = args.depth
    result["floor_z"] = args.floor_z
    result["checkpoint"] = str(args.checkpoint or "shipped")
    result["device"] = str(reconstructor.device)
    result["host"] = {"cpu_threads": torch.get_num_threads(), "machine": platform.machine(),
                      "torch": torch.__version__}
    if skipped:
        result["not_scored"] = skipped
    print(format_table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    if skipped:
        print(f"lrm4d evaluate: {len(skipped)} of {len(args.bags)} bags not scored (above): the table is the other "
              f"{len(rows)}'s", file=sys.stderr)
        return 1
    return 0
