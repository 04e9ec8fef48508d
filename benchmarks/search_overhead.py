"""Search overhead on this machine: prints figures, asserts nothing.

    ./venv-run python benchmarks/search_overhead.py [--trials 32] [--epochs 15]

1. Ray start-up seconds.
2. `--trials` short trials of one arm on digits: total wall time vs the ideal (sum of the
   trials' training seconds / concurrency), their ratio, and the median per-trial overhead
   (trial wall time minus its training time). Targets on 2 CPUs: wall <= 1.3x ideal once Ray
   is up; median overhead <= 0.5 s.
3. The same space and seed with and without ASHA: epochs consumed (target: ASHA >= 2.5x
   fewer) and the best val_loss of each.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=15, help="> the space's grace period (5), so ASHA has a rung")
    ap.add_argument("--space", default="kae_vs_mlp")
    ap.add_argument("--budget", default="1x")
    args = ap.parse_args()

    import pandas as pd
    import ray

    from tunekae.data import load_dataset
    from tunekae.search import SearchOptions, connect, run_search
    from tunekae.spaces import arm_contexts, load_space

    t0 = time.time()
    connect(None)
    startup = time.time() - t0
    cpus = int(ray.cluster_resources().get("CPU", 1))
    print(f"ray start-up: {startup:.1f} s ({cpus} CPUs)")

    space = load_space(args.space)
    splits = load_dataset("digits", seed=0)
    ctx = arm_contexts(space, splits.input_dim, [args.budget])[:1]   # one arm: the MLP
    with tempfile.TemporaryDirectory() as tmp:
        figures = {}
        for asha in (False, True):
            out = Path(tmp) / ("asha" if asha else "fifo")
            out.mkdir()
            opts = SearchOptions(samples=args.trials, epochs=args.epochs, seed=0, cpus_per_trial=1,
                                 gpus_per_trial=0, max_concurrent=None, address=None, verbose=0, asha=asha)
            start = time.time()
            table = run_search(space, ctx, splits, opts, out, {"dataset": "digits"})
            wall = time.time() - start
            figures[asha] = (table, wall)
        table, wall = figures[False]
        ok = table[table["status"] == "ok"]
        ideal = ok["train_seconds"].sum() / cpus
        trial_wall = []
        for path in (Path(tmp) / "fifo" / "ray").glob("*/*/progress.csv"):
            p = pd.read_csv(path)
            trial_wall.append(float(p["time_total_s"].iloc[-1]))
        overheads = sorted(w - t for w, t in zip(sorted(trial_wall), sorted(ok["train_seconds"])))
        print(f"{len(table)} trials x {args.epochs} epochs, no ASHA: wall {wall:.1f} s, ideal {ideal:.1f} s "
              f"(sum of train seconds / {cpus}), ratio {wall / max(ideal, 1e-9):.2f}x (target <= 1.3x)")
        print(f"per-trial overhead: mean {(wall * cpus - ok['train_seconds'].sum()) / len(table):.2f} s "
              f"(wall x CPUs - train seconds, per trial), median in-trial {statistics.median(overheads) if overheads else float('nan'):.2f} s "
              f"(Tune's trial time - train seconds; target <= 0.5 s)")
        asha_table, asha_wall = figures[True]
        e_fifo, e_asha = table["epochs_completed"].sum(), asha_table["epochs_completed"].sum()
        print(f"epochs consumed: no ASHA {e_fifo}, ASHA {e_asha} ({e_fifo / max(e_asha, 1):.2f}x fewer; target >= 2.5x); "
              f"wall {wall:.1f} s vs {asha_wall:.1f} s")
        best = lambda t: t.loc[(t['status'] == 'ok') & ~t['stopped_early'], 'val_loss'].min()  # noqa: E731
        print(f"best val_loss: no ASHA {best(table):.5f}, ASHA {best(asha_table):.5f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
