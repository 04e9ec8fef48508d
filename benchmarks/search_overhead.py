"""Search overhead, the previous search layer against this one, in one run: prints figures,
asserts nothing.

    ./venv-run python benchmarks/search_overhead.py [--before REV] [--pairs 2] [search options ...]
    ./venv-run python benchmarks/search_overhead.py --analyze DIR [DIR ...]   # figures of finished searches

Each pair runs the same search (README's main command by default: `search --space kae_vs_mlp`
on digits) twice as a user would, `python -m tunekae search ...` in a process of its own: once
with the tunekae of commit REV (default: the last commit with one Tune experiment per arm,
checked out in a temporary git worktree), once with this checkout; the two alternate so that
both meet the same machine. For each run:
  wall / ideal        the search's wall seconds (run.json) / (sum of its trials' training seconds
                      / trial slots)
  no trial running    seconds of the search's wall in which no trial was running (a trial runs
                      from its process starting it to its last report, from Tune's result.json)
  trial processes     distinct processes that ran trials (the previous layer also started one warm
                      trainer per slot, counted apart)
  CPU outside training  CPU seconds of every process of the search (the command, Ray, trial
                      processes; sampled from /proc twice a second) minus the trials' training
                      seconds x their threads
Targets (issue 24): wall / ideal <= 1.25 for README's main command on an idle 2-CPU machine,
<= 1.15 for the Fashion-MNIST study's arms (`--analyze` its output dir).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "4ba2fbe"   # the last commit of the one-experiment-per-arm search layer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default=BEFORE, help=f"the commit to compare with (default {BEFORE})")
    ap.add_argument("--pairs", type=int, default=2, help="before/after pairs to run (default 2)")
    ap.add_argument("--analyze", nargs="+", metavar="DIR", help="only print the figures of finished searches")
    ap.add_argument("search", nargs=argparse.REMAINDER,
                    help="options after `--` for both searches (default: --space kae_vs_mlp)")
    args = ap.parse_args()
    if args.analyze:
        for d in args.analyze:
            print_figures(Path(d).name, figures(Path(d)))
        return
    # README's main command, its samples spelt out: the two commits' spaces need not agree on them
    search = [a for a in args.search if a != "--"] or ["--space", "kae_vs_mlp", "--samples", "12", "--epochs", "30"]
    print(f"load average at start {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; search: {' '.join(search)}")
    with tempfile.TemporaryDirectory(prefix="tunekae-before-") as tmp:
        before = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
                       check=True, capture_output=True)
        try:
            rows = []
            for pair in range(args.pairs):
                for label, tree in (("before", before), ("after", ROOT)):
                    out = Path(tmp) / f"{label}-{pair}"
                    cpu = run(tree, search + ["--output", str(out), "--quiet"])
                    row = figures(out, cpu)
                    print_figures(f"{label} #{pair + 1}", row)
                    rows.append({"design": label, **row})
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)],
                           capture_output=True)
    table = pd.DataFrame(rows)
    print("\nmeans over pairs:")
    print(table.groupby("design", sort=False).mean(numeric_only=True).round(2).to_string())


def run(tree: Path, argv: list[str]) -> float:
    """Run one search with the tunekae in `tree`; the CPU seconds of all its processes."""
    env = {**os.environ, "PYTHONPATH": str(tree), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "tunekae", "search", *argv], cwd=tree, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: dict[int, float] = {}
    while proc.poll() is None:
        for pid, seconds in session_cpu(proc.pid).items():
            seen[pid] = max(seen.get(pid, 0.0), seconds)
        time.sleep(0.5)
    if proc.returncode != 0:
        raise SystemExit(f"the search failed ({proc.returncode}):\n{proc.stderr.read()[-3000:]}")
    return sum(seen.values())


def session_cpu(sid: int) -> dict[int, float]:
    """CPU seconds (user + system) of every live process in session `sid`, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()     # after "pid (comm) ": state is fields[0]
        if int(fields[3]) == sid:                         # session id: the 6th field of stat
            out[int(entry)] = (int(fields[11]) + int(fields[12])) / tick   # utime, stime
    return out


def figures(out: Path, cpu: float | None = None) -> dict:
    meta = json.loads((out / "run.json").read_text())
    results = pd.read_csv(out / "results.csv")
    trained = results[results["train_seconds"].notna()]
    slots = max(1, meta["options"].get("max_concurrent") or int(meta["hardware"]["cpus"] or 1))
    threads = max(1, int(meta["options"].get("cpus_per_trial") or 1))
    ideal = trained["train_seconds"].sum() / slots
    spans, pids = [], set()
    for path in glob.glob(str(out / "ray" / "**" / "result.json"), recursive=True):
        lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        if lines:
            spans.append((lines[0]["timestamp"] - lines[0]["time_this_iter_s"], lines[-1]["timestamp"]))
            pids.add(lines[0]["pid"])
    start = time.mktime(time.strptime(meta["started"], "%Y-%m-%dT%H:%M:%S"))
    busy, until = 0.0, start
    for a, b in sorted(spans):
        a = max(a, until)
        if b > a:
            busy, until = busy + b - a, b
    wall = meta["wall_seconds"]
    return {"trials": len(results), "wall_s": wall, "ideal_s": ideal, "wall_over_ideal": wall / max(ideal, 1e-9),
            "no_trial_running_s": max(0.0, wall - busy), "trial_processes": len(pids),
            "cpu_outside_training_s": (cpu - trained["train_seconds"].sum() * threads) if cpu is not None else float("nan")}


def print_figures(label: str, f: dict) -> None:
    print(f"{label:12} {f['trials']} trials: wall {f['wall_s']:.1f} s / ideal {f['ideal_s']:.1f} s = "
          f"{f['wall_over_ideal']:.2f}x; no trial running {f['no_trial_running_s']:.1f} s; trial processes "
          f"{f['trial_processes']}; CPU outside training {f['cpu_outside_training_s']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
