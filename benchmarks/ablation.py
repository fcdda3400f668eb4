"""Ablation of the model's geometry components: every row trains from scratch for the same CPU minutes with the
same seeds and data, then is scored on the same evaluation bags (`lrm4d evaluate`, rig protocol on the robot bags
from RGB-D and from RGB inputs; the paper's protocols on the object-centric bags with --paper).

    python benchmarks/eval_scenes.py --robot --out BAGS/robot
    python benchmarks/ablation.py --bags BAGS/robot --minutes 30 --out runs/ablation [--rows plain,depth,...]
        [--parallel 2] [--paper BAGS/objects]

Rows (cumulative, as issue 15 lists them):
  plain       the previously shipped design: the paper's 20-channel head, no depth, no prior, free time offsets,
              one background colour
  depth       + measured depth as an input, and the surfel head that starts from it (anchored at the view time)
  (prior       + the plane-sweep multi-view prior: removed, constant start depths trained better and faster,
               ablation.txt block 11)
  (motion      + a predicted velocity per Gaussian: removed after it lost, see benchmarks/results/ablation.txt)
  environment + the environment map beyond the Gaussians (floors, walls, sky): the full model
  objects     the full model trained on object-centric scenes only (no robot scenes in the mix)

Writes OUT/<row>/ (the run), OUT/<row>/eval_*.json and the table to benchmarks/results/ablation.txt. Rows run
`--parallel` at a time, each on one thread, with the budget counted in the process's CPU time (`lrm4d train
--budget-clock cpu`): every row gets the same compute whatever else shares the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FULL = ["--head", "surfel", "--depth-input", "--environment"]
ROWS = {
    "plain": ["--head", "paper", "--no-depth-input", "--no-environment"],
    "depth": ["--head", "surfel", "--depth-input", "--no-environment"],
    "environment": FULL,
    "objects": FULL + ["--scenes", "objects"],
}


def lrm4d(*args: str) -> list[str]:
    return [sys.executable, "-m", "lrm4d_ros.cli", *args]


def train_cmd(row: str, out: Path, minutes: float, seed: int, extra: list[str]) -> list[str]:
    return lrm4d("train", "--out", str(out), "--preset", "small", "--time-budget", str(minutes), "--threads", "1",
                 "--budget-clock", "cpu",
                 "--seed", str(seed), "--val-every", "100000", "--val-protocol", "none", *ROWS[row], *extra)


def evaluations(row_dir: Path, bags: list[str], paper_bags: list[str]) -> list[tuple[str, list[str]]]:
    ckpt = str(row_dir / "model.safetensors")
    evals = [(f"rig_depth-{d}", lrm4d("evaluate", *bags, "--protocol", "rig", "--depth", d, "--threads", "1",
                                     "--checkpoint", ckpt, "--json", str(row_dir / f"eval_rig_depth-{d}.json")))
             for d in ("on", "off")]
    for protocol in ("alternating", "novel-camera") if paper_bags else ():
        evals.append((protocol, lrm4d("evaluate", *paper_bags, "--protocol", protocol, "--threads", "1",
                                      "--checkpoint", ckpt, "--json", str(row_dir / f"eval_{protocol}.json"))))
    return evals


def run_all(jobs: list[tuple[str, list[str], Path]], parallel: int) -> None:
    """Run (name, command, log) jobs, `parallel` at a time; raise on the first failure."""
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < parallel:
            name, cmd, log = pending.pop(0)
            log.parent.mkdir(parents=True, exist_ok=True)
            print(f"[{time.strftime('%H:%M:%S')}] start {name}", flush=True)
            running.append((name, subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                                   env={**os.environ, "OMP_NUM_THREADS": "1"}), log))
        time.sleep(2)
        for job in list(running):
            name, proc, log = job
            if proc.poll() is not None:
                running.remove(job)
                print(f"[{time.strftime('%H:%M:%S')}] done {name} (exit {proc.returncode})", flush=True)
                if proc.returncode:
                    raise SystemExit(f"ablation: {name} failed; see {log}")


def table(out: Path, rows: list[str], paper: bool, minutes: float) -> str:
    def cell(path: Path, group: str | None = None) -> str:
        if not path.is_file():
            return f"{'-':>13}"
        r = json.loads(path.read_text())
        m = r["groups"][group]["model"] if group else r["model"]
        return f"{m['psnr']:>7.2f} {m['ssim']:.3f}"

    cols = [("RGB-D novel_view", "rig_depth-on", "novel_view"), ("RGB-D time_interp", "rig_depth-on", "time_interp"),
            ("RGB-D self", "rig_depth-on", "self"), ("RGB novel_view", "rig_depth-off", "novel_view"),
            ("RGB time_interp", "rig_depth-off", "time_interp"), ("RGB self", "rig_depth-off", "self")]
    if paper:
        cols += [("alternating", "alternating", None), ("novel-camera", "novel-camera", None)]
    lines = [f"# benchmarks/ablation.py: every row {minutes:g} CPU minutes (process CPU time) on one thread (same seeds, same data "
             f"unless the row says), small preset, 128²; PSNR dB / SSIM, mean over bags",
             f"# {platform.machine()}, {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"{'row':<12}{'steps':>7}" + "".join(f"{c[0]:>20}" for c in cols)]
    for row in rows:
        d = out / row
        steps = "-"
        log = d / "train.log"
        if log.is_file():
            ends = [json.loads(x) for x in log.read_text().splitlines() if '"event": "end"' in x]
            steps = str(ends[-1]["step"]) if ends else "-"
        lines.append(f"{row:<12}{steps:>7}" + "".join(f"{cell(d / f'eval_{c[1]}.json', c[2]):>20}" for c in cols))
    base = [json.loads((out / rows[-1] / "eval_rig_depth-on.json").read_text())] \
        if (out / rows[-1] / "eval_rig_depth-on.json").is_file() else []
    if base:
        b = base[0]
        refs = "  ".join(f"{g}: " + ", ".join(f"{n} {e['baselines'][n]['psnr']:.2f}" for n in e["baselines"])
                         for g, e in b["groups"].items())
        lines.append(f"# baselines on the same bags (rig, RGB-D inputs): {refs}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bags", nargs="+", required=True, help="robot evaluation bags (rig protocol, with depth)")
    p.add_argument("--paper", nargs="*", default=[], help="object-centric bags for alternating / novel-camera")
    p.add_argument("--minutes", type=float, default=30.0, help="CPU minutes of training per row (one thread)")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {','.join(ROWS)}")
    p.add_argument("--out", type=Path, default=Path("runs/ablation"))
    p.add_argument("--parallel", type=int, default=2, help="rows trained at once (one thread each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-train", action="store_true",
                   help="only evaluate rows already trained (evaluations already written are kept)")
    p.add_argument("--train-args", default="", help="extra `lrm4d train` arguments for every row")
    args = p.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown}; choose from {list(ROWS)}")
    bags = [str(Path(b)) for b in args.bags]
    if not args.skip_train:
        run_all([(f"train {r}", train_cmd(r, args.out / r, args.minutes, args.seed, args.train_args.split()),
                  args.out / r / "stdout.log") for r in rows], args.parallel)
    # Evaluations already written are kept (a row added later is scored alone; delete eval_*.json to redo).
    run_all([(f"{name} {r}", cmd, args.out / r / f"{name}.log") for r in rows
             for name, cmd in evaluations(args.out / r, bags, args.paper)
             if not Path(cmd[cmd.index("--json") + 1]).is_file()], args.parallel)
    text = table(args.out, rows, bool(args.paper), args.minutes)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ablation.txt").write_text(text + "\n")
    print(f"wrote {RESULTS / 'ablation.txt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
