"""Search overhead on this machine: prints figures, asserts nothing.

    ./venv-run python benchmarks/search_overhead.py [--trials 32] [--epochs E] [--budget 1x] [--seeds 0 1 2]
                                                    [--asha-arms all|first]

1. Ray start-up seconds, then the search's warm trainers (tunekae/warm_trainers.py): one
   process per trial slot, started once per search, that imports and warms up everything a trial
   needs (torch, torch._dynamo, scikit-learn, the pixel classifier). Together: the one-time
   start-up of a search.
2. `--trials` trials of one arm (the space's first, the MLP) on digits, with no early stopping,
   trained by those warm trainers (the search's way): total wall time vs the ideal (sum of the
   trials' training seconds / concurrency) and their ratio, split into the search's set-up, the
   arm's start-up (Tune starting the arm's trial processes, which import ray.tune), the
   scheduling wall from the first trial's start to the last trial's end, and the wrap-up; and
   the per-trial overhead: the time a trial held its slot (driver's start to completion) minus
   its training seconds.
   Targets on 2 CPUs: wall <= 1.3x ideal once Ray is up; median per-trial overhead <= 0.5 s.
   Then the reference, in the same run: the same arm and seed with every trial training in
   Tune's own fresh worker processes (how trials trained before warm trainers), whose first
   trials pay the imports.
3. The same space and seed with the space's ASHA settings and without early stopping, for each of
   `--seeds`: epochs consumed (target: ASHA >= 2.5x fewer) and the best val_loss of each (among
   trials that ran every epoch), for every arm of the space at its budgets (what `python -m
   tunekae search --space S` runs) and over the whole space; `--asha-arms first` compares the
   one arm of part 2 only. How much ASHA saves depends on the sampler's path (once TPE finds a
   good region, most new trials pass the rungs) and on the arm, hence several seeds and arms.
4. Wall / ideal of every arm in the runs without early stopping of part 3 (warm trainers, one
   Tune experiment each, from its start to its end), per seed and their mean.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def trial_timer():
    """A tune.Callback that records when the driver starts and completes each trial, and when
    each experiment (arm) starts and ends."""
    from ray import tune

    class TrialTimer(tune.Callback):
        def __init__(self):
            self.spans: dict[str, list[float]] = {}
            self.arms: list[list[float]] = []

        def setup(self, **info):
            self.arms.append([time.time()])

        def on_experiment_end(self, trials, **info):
            self.arms[-1].append(time.time())

        def on_trial_start(self, iteration, trials, trial, **info):
            self.spans[trial.trial_id] = [time.time()]

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.spans[trial.trial_id].append(time.time())

    return TrialTimer()


def search_options(args, seed: int, **overrides):
    """The benchmark's SearchOptions: one CPU per trial, as many trials at once as CPUs."""
    from tunekae.search import SearchOptions
    return SearchOptions(samples=args.trials, epochs=args.epochs, seed=seed, cpus_per_trial=1, gpus_per_trial=0,
                         max_concurrent=None, address=None, **overrides)


def run_arm(space, ctx, splits, args, seed: int, asha: bool, out: Path, trainers=None):
    """One search over `ctx`: with the given warm trainers, or (None) none at all."""
    from tunekae.search import run_search
    out.mkdir(parents=True)
    timer = trial_timer()
    opts = search_options(args, seed, verbose=0, asha=asha, callbacks=(timer,), warm_trainers=trainers is not None)
    start = time.time()
    # trainers None with warm_trainers off: run_search starts none, every trial trains in Tune's process
    table = run_search(space, ctx, splits, opts, out, {"dataset": "digits"}, trainers=trainers)
    return table, start, time.time() - start, timer


def print_overhead(label: str, run, cpus: int) -> None:
    table, started, wall, timer = run
    spans = timer.spans
    ok = table[table["status"] == "ok"].set_index("trial_id")
    ideal = ok["train_seconds"].sum() / cpus
    first_start = min(s[0] for s in spans.values())
    last_end = max(s[-1] for s in spans.values())
    held = {t: s[1] - s[0] for t, s in spans.items() if len(s) == 2 and t in ok.index}
    overhead = {t: held[t] - ok.loc[t, "train_seconds"] for t in held}
    firsts = sorted(held, key=lambda t: spans[t][0])[:cpus]   # each slot's first trial
    trials = last_end - first_start
    print(f"  {label}; a trial trains for {ok['train_seconds'].median():.2f} s (median)")
    experiment = timer.arms[0][0]
    print(f"    wall {wall:.1f} s = search set-up {experiment - started:.1f} s (run.json, study, Tuner) + arm start-up "
          f"{first_start - experiment:.1f} s (Tune starts the arm's trial processes) + trials {trials:.1f} s "
          f"+ wrap-up {started + wall - last_end:.1f} s")
    print(f"    ideal {ideal:.1f} s (sum of train seconds / {cpus}): wall / ideal {wall / ideal:.2f}x "
          f"(target <= 1.3x); trials (first start to last end) / ideal {trials / ideal:.2f}x")
    # trials running at once, averaged over the trials' span: below the slots when Tune keeps a slot idle
    running = sum(s[1] - s[0] for s in spans.values() if len(s) == 2) / trials
    print(f"    trials running at once: {running:.2f} on average (of {cpus} slots)")
    print(f"    per-trial overhead (slot held - train seconds): median {statistics.median(overhead.values()):.2f} s "
          f"(target <= 0.5 s); each slot's first trial {', '.join(f'{overhead[t]:.2f}' for t in firsts)} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--epochs", type=int, help="epochs per trial (default: the space's, 30)")
    ap.add_argument("--space", default="kae_vs_mlp")
    ap.add_argument("--budget", default="1x", help="the arm's budget; larger budgets make longer trials")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                    help="sampler seeds of the ASHA comparison (the overhead figures use the first)")
    ap.add_argument("--grace-period", type=int, help="ASHA's grace period (default: the space's)")
    ap.add_argument("--reduction-factor", type=int, help="ASHA's reduction factor (default: the space's)")
    ap.add_argument("--asha-arms", choices=("all", "first"), default="all",
                    help="ASHA comparison over every arm of the space at its budgets (default) or the first arm only")
    args = ap.parse_args()

    import ray

    from tunekae.data import load_dataset
    from tunekae.search import connect, start_trainers
    from tunekae.spaces import arm_contexts, load_space

    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    t0 = time.time()
    connect(None)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    print(f"ray start-up: {time.time() - t0:.1f} s ({cpus} CPUs)")

    space = load_space(args.space)
    space.grace_period = args.grace_period or space.grace_period
    space.reduction_factor = args.reduction_factor or space.reduction_factor
    args.epochs = args.epochs or space.epochs
    splits = load_dataset("digits", seed=0)
    ctx = arm_contexts(space, splits.input_dim, [args.budget])[:1]
    asha_ctx = ctx if args.asha_arms == "first" else [c for c in arm_contexts(space, splits.input_dim) if c.feasible]
    t0 = time.time()
    trainers = start_trainers(ray.put(splits), space, search_options(args, seed=0))
    warm_up = trainers.wait_ready()
    print(f"warm trainers: {len(warm_up)} started once per search, ready after {time.time() - t0:.1f} s "
          f"(each warmed up for {', '.join(f'{w:.1f}' for w in warm_up)} s: torch, torch._dynamo, scikit-learn, "
          f"the pixel classifier)")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        overhead = run_arm(space, ctx, splits, args, args.seeds[0], False, Path(tmp) / "overhead", trainers)
        cold = run_arm(space, ctx, splits, args, args.seeds[0], False, Path(tmp) / "cold")
        for seed in args.seeds:
            for asha in (False, True):
                if asha_ctx is ctx and seed == args.seeds[0] and not asha:
                    runs[seed, asha] = overhead
                    continue
                runs[seed, asha] = run_arm(space, asha_ctx, splits, args, seed, asha, Path(tmp) / f"{seed}-{asha}",
                                           trainers)
    trainers.stop()
    print(f"\n{ctx[0].key}: {args.trials} trials x {args.epochs} epochs, no early stopping, seed {args.seeds[0]}")
    print_overhead("warm trainers (the search's way)", overhead, cpus)
    print_overhead("reference: every trial in Tune's own fresh worker processes", cold, cpus)

    print(f"\nASHA (grace period {min(space.grace_period, args.epochs)}, reduction factor {space.reduction_factor}, "
          f"max_t {args.epochs}) vs none, {args.trials} trials per arm, same space and seed, "
          f"{len(asha_ctx)} arm(s); target: >= 2.5x fewer epochs")
    best = lambda t: t.loc[(t["status"] == "ok") & ~t["stopped_early"], "val_loss"].min()  # noqa: E731
    totals, per_arm = [], {c.key: [] for c in asha_ctx}
    for seed in args.seeds:
        (fifo, _, wall, _), (asha, _, asha_wall, _) = runs[seed, False], runs[seed, True]
        e_fifo, e_asha = fifo["epochs_completed"].sum(), asha["epochs_completed"].sum()
        totals.append(e_fifo / max(e_asha, 1))
        print(f"  seed {seed}: epochs {e_fifo} vs {e_asha} = {totals[-1]:.2f}x fewer; "
              f"wall {wall:.1f} s vs {asha_wall:.1f} s")
        for c in asha_ctx:
            f, a = fifo[fifo["arm"] == c.key], asha[asha["arm"] == c.key]
            per_arm[c.key].append(f["epochs_completed"].sum() / max(a["epochs_completed"].sum(), 1))
            # where ASHA's trials ended: a rung that passes far more than 1/reduction_factor of the
            # trials reaching it is why the saving is smaller than the rungs alone would give
            ended = a.loc[a["status"] == "ok", "epochs_completed"].value_counts().sort_index()
            print(f"    {c.key:<12} {per_arm[c.key][-1]:.2f}x; best val_loss {best(f):.5f} vs {best(a):.5f}; "
                  "trials ending at epoch " + ", ".join(f"{e}: {n}" for e, n in ended.items()))
    print(f"  mean over seeds: {statistics.mean(totals):.2f}x fewer epochs"
          + (f" over the space; per arm {', '.join(f'{k} {statistics.mean(v):.2f}x' for k, v in per_arm.items())}"
             if len(asha_ctx) > 1 else ""))

    print(f"\nwall / ideal of each arm, no early stopping, warm trainers (the runs above; target <= 1.3x)")
    for c in asha_ctx:
        ratios, trial_seconds = [], []
        for seed in args.seeds:
            table, _, _, timer = runs[seed, False]
            arm = table[(table["arm"] == c.key) & (table["status"] == "ok")]
            start, end = timer.arms[asha_ctx.index(c)]
            ratios.append((end - start) / (arm["train_seconds"].sum() / cpus))
            trial_seconds.append(arm["train_seconds"].median())
        print(f"  {c.key:<12} {statistics.mean(ratios):.2f}x (seeds: {', '.join(f'{r:.2f}' for r in ratios)}); "
              f"a trial trains for {statistics.mean(trial_seconds):.2f} s (median)")
    ray.shutdown()


if __name__ == "__main__":
    main()
