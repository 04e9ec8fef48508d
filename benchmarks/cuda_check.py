"""The CUDA paths end to end, on a machine with a GPU: prints what it saw, exits 1 when a check
fails. CI has no GPU, so this is how the GPU side is checked (README, benchmarks/README.md).

    ./venv-run python benchmarks/cuda_check.py [--out DIR] [--skip-search]

1. `python -m tunekae train --budget 4x --tolerance 0.2 --epochs 3 --json` for every family and VAE variant,
   on `--device cuda` and on `--device cpu` with the same seed: equal parameter counts, a
   training loss that falls on both, validation losses that agree, finite test metrics, the
   GPU's peak memory; it prints how much longer the first CUDA epoch took than the last (a
   fresh process's one-off CUDA costs, mostly paid by fit's untimed warm-up; the runs share
   the GPU and CPUs eight at a time, so this figure is noisy); then the KAE p=3 with `--compile`.
2. `python -m tunekae search --space all_families --budgets 4x --samples 4 --epochs 3` with
   the default resources (a quarter GPU per trial when the cluster has a GPU): every arm's
   trials ok and trained on the GPU (run.json names it; peak memory is the GPU's, in MiB).
3. `python -m tunekae confirm` of that search (runs get the search's GPU share) and
   `python -m tunekae.analysis pareto`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

FAMILIES = [("linear", "ae", ()), ("kae", "ae", ("--order", "3")), ("kan", "ae", ("--grid", "5", "--order", "3")),
            ("cheby", "ae", ("--order", "4")), ("rbf", "ae", ("--grid", "8")),
            ("linear", "vae", ()), ("linear", "beta_vae", ("--beta", "4")), ("linear", "derp_vae", ()),
            ("linear", "wae_mmd", ())]
FAILURES: list[str] = []


def check(ok: bool, what: str) -> None:
    if not ok:
        FAILURES.append(what)
        print(f"  FAIL: {what}", flush=True)


def tunekae(*argv, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=timeout)


def train(family: str, variant: str, extra: tuple, device: str, *more) -> dict:
    p = tunekae("tunekae", "train", "--family", family, "--variant", variant, *extra, "--budget", "4x",
                "--tolerance", "0.2", "--epochs", "3", "--lr", "3e-3", "--device", device, "--threads", "2", "--json", *more)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def first_epoch_excess(run: dict) -> float:
    """Seconds the first epoch took beyond the last: what a fresh process still pays once."""
    seconds = [e["epoch_seconds"] for e in run["history"]]
    return seconds[0] - seconds[-1]


def check_training() -> None:
    print("1. train on cuda and on cpu (digits, budget 4x, 3 epochs, lr 3e-3, seed 0)", flush=True)
    jobs = [(f, v, e, d) for f, v, e in FAMILIES for d in ("cuda", "cpu")]
    with ThreadPoolExecutor(max(1, min(8, (os.cpu_count() or 2) // 2))) as pool:
        runs = dict(zip(jobs, pool.map(lambda j: train(*j), jobs)))
    print(f"  {'model':<18}{'params':>8}{'val cuda':>10}{'val cpu':>10}{'s/ep cuda':>11}{'s/ep cpu':>10}"
          f"{'peak MiB':>10}{'test mse':>10}{'ep1-ep3 cuda':>14}", flush=True)
    for f, v, e in FAMILIES:
        name = f"{f}/{v}" + ("".join(e[1::2]) and f" {' '.join(e[1::2])}")
        g, c = runs[(f, v, e, "cuda")], runs[(f, v, e, "cpu")]
        if "error" in g or "error" in c:
            check(False, f"{name}: cuda {g.get('error', 'ok')}; cpu {c.get('error', 'ok')}")
            continue
        print(f"  {name:<18}{g['params']:>8}{g['val_loss']:>10.5f}{c['val_loss']:>10.5f}{g['seconds_per_epoch']:>11.3f}"
              f"{c['seconds_per_epoch']:>10.3f}{g['peak_mem_mb']:>10.1f}{g['test_loss'] or float('nan'):>10.5f}"
              f"{first_epoch_excess(g):>14.3f}", flush=True)
        check(g["device"].startswith("cuda") and c["device"] == "cpu", f"{name}: devices {g['device']}, {c['device']}")
        check(g["params"] == c["params"] and g["flops"] == c["flops"], f"{name}: params/flops differ across devices")
        check(g["status"] == "ok" and c["status"] == "ok", f"{name}: status {g['status']} / {c['status']}")
        for r, d in ((g, "cuda"), (c, "cpu")):
            h = [e["train_loss"] for e in r["history"]]
            check(len(h) == 3 and h[-1] < h[0], f"{name} on {d}: train loss did not fall: {h}")
        # same seed and data order; different kernels: close, not equal
        check(abs(g["val_loss"] - c["val_loss"]) <= 0.05 * c["val_loss"] + 1e-4,
              f"{name}: val_loss cuda {g['val_loss']:.5f} vs cpu {c['val_loss']:.5f}")
        check(g["test_loss"] is not None and g.get("knn_acc") is not None, f"{name}: test metrics missing on cuda")
        check(0 < g["peak_mem_mb"] < 4096, f"{name}: cuda peak memory {g['peak_mem_mb']} MiB")
    r = train("kae", "ae", ("--order", "3"), "cuda", "--compile")
    seen = r.get("error") or f"status {r['status']}, val {r['val_loss']:.5f}, {r['seconds_per_epoch']:.3f} s/epoch"
    print(f"  kae p=3 --compile on cuda: {seen}", flush=True)
    check("error" not in r and r["status"] == "ok", "kae --compile on cuda")


def check_search(out: Path) -> None:
    print("2. search all_families at 4x on the GPU (defaults: a quarter GPU per trial)", flush=True)
    start = time.perf_counter()
    p = tunekae("tunekae", "search", "--space", "all_families", "--budgets", "4x", "--samples", "4", "--epochs", "3",
                "--output", str(out), "--quiet")
    print(f"  exit {p.returncode} in {time.perf_counter() - start:.0f} s", flush=True)
    print("  " + "\n  ".join(p.stdout.strip().splitlines()[-12:]), flush=True)
    check(p.returncode == 0, f"search exit {p.returncode}: {p.stderr.strip()[-2000:]}")
    check("Traceback" not in p.stderr, f"search printed a traceback: {p.stderr[-2000:]}")
    if p.returncode != 0:
        return
    run = json.loads((out / "run.json").read_text())
    results = pd.read_csv(out / "results.csv")
    print(f"  gpu {run['hardware']['gpu']}; {len(results)} rows; status {results['status'].value_counts().to_dict()}; "
          f"peak_mem_mb median {results['peak_mem_mb'].median():.1f}", flush=True)
    check(bool(run["hardware"]["gpu"]), "run.json names no GPU")
    check(len(results) == 9 * 4 and results["status"].isin(["ok"]).all(), "a trial did not end ok")
    devices = {json.loads(c)["train"]["device"] for c in results["config_json"].dropna()}
    check(devices == {"cuda"}, f"trials trained on {devices}")
    check(results["peak_mem_mb"].max() < 4096, "peak memory looks like a CPU process's RSS, not the GPU's")

    print("3. confirm --top 1 --seeds 2, then analysis pareto", flush=True)
    start = time.perf_counter()
    p = tunekae("tunekae", "confirm", str(out), "--top", "1", "--seeds", "2")
    print(f"  confirm exit {p.returncode} in {time.perf_counter() - start:.0f} s", flush=True)
    check(p.returncode == 0 and "Traceback" not in p.stderr, f"confirm: {p.stderr.strip()[-2000:]}")
    if p.returncode == 0:
        runs = pd.read_csv(out / "confirmed_runs.csv")
        print(f"  {len(runs)} runs, status {runs['status'].value_counts().to_dict()}, "
              f"test_loss {runs['test_loss'].min():.5f}..{runs['test_loss'].max():.5f}", flush=True)
        check(len(runs) == 18 and (runs["status"] == "ok").all(), "a confirmation run did not end ok")
    p = tunekae("tunekae.analysis", "pareto", str(out))
    check(p.returncode == 0, f"pareto: {p.stderr.strip()[-1000:]}")
    print(f"  pareto exit {p.returncode}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="the search's output dir (default: a temporary one)")
    ap.add_argument("--skip-search", action="store_true", help="part 1 only (no Ray)")
    args = ap.parse_args()
    import torch
    if not torch.cuda.is_available():
        print("cuda_check: torch sees no CUDA device here; nothing to check", file=sys.stderr)
        return 2
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, {os.cpu_count()} CPUs", flush=True)
    check_training()
    if not args.skip_search:
        check_search(Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="cuda-check-")) / "search")
    print(f"\n{len(FAILURES)} checks failed" + "".join(f"\n  - {f}" for f in FAILURES), flush=True)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
