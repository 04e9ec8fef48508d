"""A search: ONE Ray Tune experiment for every arm (family x budget), the arm being a config key.

    runner -> Tuner(trainable, ArmSearcher, ArmScheduler) -> trainable -> trial.run_trial

Resume reads one thing: the search's Optuna storage (studies.py), where every trial is asked,
reported and told as it happens, with its configuration and final metrics kept on it. Trials
that had ended are not run again (a trial whose log shows it finished while the journal had not
heard yet is told from its log); trials cut off are trained again with the same number, seed and
configuration; the rest are asked for as usual, and every arm's ASHA is first fed the finished
trials' epochs. Tune's own saved experiment state is not used: it lags the journal after a kill,
a kill while Tune copies it into place leaves it damaged (Tuner.restore then waited 600 s), and
it holds the output dir's absolute paths (a copied or moved search wrote into the original).
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import ray
from optuna.trial import TrialState
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from ..errors import UserError
from ..results import infeasible_row, summarize_arm, table, trial_row, write_atomic, write_results
from ..selection import Selection
from ..spaces import ArmContext, Space, starting_point
from ..trial import RunSpec
from .cluster import check_trial_fits, connect, trial_capacity, trial_resources
from .ctrl_c import CtrlC
from .disk_full import quiet_disk_full
from .progress import Progress
from .ray_address import token_auth_on
from .scheduler import ArmScheduler
from .searcher import ArmPlan, ArmSearcher
from .studies import FINISHED_STATES, open_storage, open_studies
from .trainable import SearchSpec, trainable
from .trial_log import ARM, STUDY_TRIAL, TrialLog, log_dir

LOCK = ".search.lock"


@dataclass(frozen=True)
class SearchOptions:
    samples: int
    epochs: int
    seed: int
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None   # None: GPU_SHARE when the cluster has GPUs, else 0
    max_concurrent: int | None = None
    address: str | None = None
    verbose: bool = False                 # Tune's own progress tables instead of tunekae's lines
    quiet: bool = False                   # no line per trial: the summary only
    asha: bool = True                     # False: every trial runs every epoch (ablations)
    storage: str | None = None            # Tune's experiment folders: a shared path or cloud URI (default DIR/ray)
    optuna_storage: str | None = None     # a database URL for the studies (default DIR/studies.journal)
    tensorboard: bool = False             # TensorBoard event files per trial (Tune's TBXLoggerCallback)
    mlflow: str | None = None             # an MLflow tracking URI (Tune's MLflowLoggerCallback)
    callbacks: tuple = ()                 # more tune.Callback objects (the benchmarks time trials with one)
    selection: Selection = Selection()    # what trials are ranked and chosen by (the space's)


def run_search(space: Space, contexts: list[ArmContext], splits, opts: SearchOptions, output: Path,
               meta: dict, resume: bool = False) -> pd.DataFrame:
    """Run (or finish) the search; returns the results table. Raises KeyboardInterrupt when
    interrupted (the studies keep everything for --resume)."""
    # A new search always trains: Ray first, so that bad flags or no cluster leave nothing
    # behind. A resumed one may have nothing left to train, and then needs no Ray at all.
    cluster = None if resume else start_ray(opts)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--output {output}: cannot create it ({e.strerror})") from None
    with exclusive(output):
        return _run(space, contexts, splits, opts, output, meta, resume, cluster)


@dataclass(frozen=True)
class Cluster:
    dashboard: str | None
    per_trial: dict                   # one trial's resources


def start_ray(opts: SearchOptions) -> Cluster:
    """Start or attach to Ray; UserError when the trials could never run there."""
    dashboard = connect(opts.address)
    per = trial_resources(opts.cpus_per_trial, opts.gpus_per_trial)
    check_trial_fits(per["cpu"], per["gpu"], opts.address)
    if dashboard:
        # Ray 2.60 turns token authentication on for a local Ray: the page then asks for the token
        token = " (it asks for the token that `ray get-auth-token` prints)" if token_auth_on() else ""
        print(f"tunekae: Ray dashboard at {dashboard}{token}", file=sys.stderr)
    return Cluster(dashboard, per)


@contextmanager
def exclusive(output: Path):
    """Hold DIR/.search.lock for the search's lifetime: a second search into the same dir would
    mix its trials into this one's studies and table. The OS releases the lock when the process
    dies, so a killed search never blocks its resume."""
    handle = open(output / LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UserError(f"{output} is in use by another search ({holder}); wait for it to end, or give another "
                        f"--output") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {os.uname().nodename}")
    handle.flush()
    try:
        yield
    finally:
        handle.close()


def _run(space, contexts, splits, opts, output, meta, resume, cluster: Cluster | None) -> pd.DataFrame:
    started = time.time()
    storage = open_storage(output, opts.optuna_storage)
    feasible = [c for c in contexts if c.feasible]
    studies = open_studies(storage, [c.key for c in feasible],
                           {c.key: starting_point(c, c.arm.define) for c in feasible}, opts.selection)
    plans = [plan_arm(i, c, studies[c.key], opts.samples, output, opts.epochs) for i, c in enumerate(feasible)]
    sessions = meta.setdefault("sessions", [])
    sessions.append({"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "resume": resume})
    write_json(output / "run.json", meta)   # from now on the search can be resumed
    if any(p.has_work() for p in plans):
        _train(space, plans, splits, opts, output, meta, len(sessions), cluster or start_ray(opts))
    rows = table(results_rows(space, contexts, studies, opts.epochs, len(splits.train_x)))
    rows = write_results(output, rows, meta["dataset"])
    meta["summary"] = {c.key: summarize_arm(rows[rows["arm"] == c.key], opts.epochs, opts.selection)
                       for c in contexts}
    meta["wall_seconds"] = meta.get("wall_seconds", 0) + time.time() - started
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(output / "run.json", meta)
    return rows


def plan_arm(index: int, ctx: ArmContext, study, samples: int, output: Path, epochs: int) -> ArmPlan:
    """What is left of an arm: trials in the study that had ended count as done; a trial asked
    before an interruption whose log holds its final report is told now; other such trials
    train again; new ones fill up to `samples`."""
    plan = ArmPlan(ctx, index, study)
    done = 0
    for t in study.trials():
        if t.datetime_start is not None:
            plan.last_asked = max(plan.last_asked, t.datetime_start.timestamp())
        if t.state in FINISHED_STATES:
            done += 1
        elif t.state == TrialState.RUNNING:
            final = TrialLog(log_dir(output, ctx.key), t.number, epochs).finished_report()
            if final is not None:
                study.tell(t.number, final)
                done += 1
            else:   # cut off, or asked just before the interruption and not yet configured (None)
                plan.reruns.append((t.datetime_start.timestamp(), t.number, t.user_attrs.get("config")))
    plan.to_ask = max(0, samples - done - len(plan.reruns))
    return plan


def _train(space, plans: list[ArmPlan], splits, opts: SearchOptions, output: Path, meta: dict, session: int,
           cluster: Cluster):
    # progress.csv and result.json per trial, no TensorBoard files unless asked (writing them
    # held every report about 4 ms on 2 cores); Tune saves its own state rarely: it is not read
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "60")
    # Tune's newer console output prints its configuration box even when silent; the older one,
    # at verbosity 0, prints nothing: tunekae's Progress speaks instead
    os.environ["RAY_AIR_NEW_OUTPUT"] = "1" if opts.verbose else "0"
    per = cluster.per_trial
    meta.update(dashboard=cluster.dashboard, ray_version=ray.__version__)
    write_json(output / "run.json", meta)
    concurrency = max(1, opts.max_concurrent or trial_capacity(per))
    run = RunSpec(input_dim=splits.input_dim, latent_dim=space.latent_dim, output_dim=splits.output_dim,
                  epochs=opts.epochs,
                  tolerance=space.tolerance, seed=opts.seed, threads=max(1, int(opts.cpus_per_trial)),
                  device="cuda" if per["gpu"] else "cpu")
    scheduler = ArmScheduler([p.key for p in plans], opts.epochs, space.grace_period, space.reduction_factor,
                             asha=opts.asha, objective=opts.selection.primary)
    spec = SearchSpec(run, {p.key: p.ctx.spec() for p in plans}, str(output.resolve()), _epochs_tune_sees(scheduler, opts))
    for plan in plans:
        replay_finished(scheduler, plan.key, plan.study)
    searcher = ArmSearcher(plans, opts.seed, opts.epochs, scheduler.stopped_early, opts.selection)
    progress = Progress({p.key: opts.samples for p in plans}, *_done_so_far(plans, opts.selection), opts.epochs,
                        quiet=opts.quiet, objective=opts.selection.primary)
    total = sum(len(p.reruns) + p.to_ask for p in plans)
    ctrl_c = CtrlC()
    fn = tune.with_resources(tune.with_parameters(trainable, data=[ray.put(splits)], spec=spec), per)
    tuner = tune.Tuner(
        fn,
        tune_config=tune.TuneConfig(metric=opts.selection.primary.metric, mode=opts.selection.primary.mode,
                                    search_alg=searcher, scheduler=scheduler,
                                    num_samples=total, max_concurrent_trials=concurrency, reuse_actors=True,
                                    trial_name_creator=trial_name, trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(name="search" if session == 1 else f"resume-{session - 1}",
                                  storage_path=opts.storage or str((output / "ray").resolve()),
                                  verbose=2 if opts.verbose else 0, stop=ctrl_c.stopper(),
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  callbacks=[progress, *tracking_callbacks(opts, output), *opts.callbacks]))
    try:
        with ctrl_c, quiet_disk_full():
            tuner.fit()
    except KeyboardInterrupt:          # a second Ctrl-C: no waiting for Tune
        ctrl_c.pressed = True
    finally:
        progress.close()
    if ctrl_c.pressed or not searcher.finished():
        raise KeyboardInterrupt   # the caller says how to resume


def _epochs_tune_sees(scheduler: ArmScheduler, opts: SearchOptions) -> frozenset[int] | None:
    """SearchSpec.report_epochs: the epochs the scheduler decides at; None (every epoch) where a
    callback draws learning curves or Tune's own output is asked for."""
    if opts.tensorboard or opts.mlflow or opts.verbose:
        return None
    return scheduler.decision_epochs()


def replay_finished(scheduler: ArmScheduler, key: str, study) -> None:
    """Feed the arm's ASHA the epochs of its trials that ended before this session, in the order
    they ended, up to the epoch each ended at (Optuna's intermediate values: what ASHA saw)."""
    ended = [t for t in study.trials() if t.state in FINISHED_STATES and "result" in t.user_attrs]
    for t in sorted(ended, key=lambda t: t.datetime_complete or t.datetime_start):
        last = int(t.user_attrs["result"].get("epoch") or t.user_attrs["result"].get("epochs_completed") or 0)
        reports = [{"epoch": e, scheduler.objective.metric: v} for e, v in sorted(t.intermediate_values.items())
                   if e <= last]
        scheduler.replay(key, f"{key}:{t.number}", reports)


def _done_so_far(plans: list[ArmPlan], selection: Selection) -> tuple[dict, dict]:
    done, best = {}, {}
    objective = selection.primary
    for p in plans:
        results = [t.user_attrs.get("result", {}) for t in p.study.trials() if t.state in FINISHED_STATES]
        done[p.key] = len(results)
        values = [objective.value(r) for r in results if int(r.get("epochs_completed") or 0) >= 1]
        values = [v for v in values if v != objective.worst]
        if values:
            best[p.key] = min(values) if objective.mode == "min" else max(values)
    return done, best


def results_rows(space: Space, contexts: list[ArmContext], studies: dict, epochs: int, full_size: int) -> list[dict]:
    """Every trial of every arm, from the studies: its configuration and final report."""
    rows = []
    for ctx in contexts:
        if not ctx.feasible:
            rows.append(infeasible_row(ctx, space.name, epochs, full_size))
            continue
        pareto = studies[ctx.key].pareto_numbers()
        for t in studies[ctx.key].trials():
            if "result" in t.user_attrs:
                rows.append(trial_row(ctx, space.name, epochs, t.number, t.user_attrs.get("config", t.params),
                                      t.user_attrs["result"], full_size))
                if pareto is not None:
                    rows[-1]["pareto_optimal"] = t.number in pareto
    return rows


def tracking_callbacks(opts: SearchOptions, output: Path) -> list:
    """Tune's own experiment tracking: TensorBoard event files in each trial's folder, MLflow runs."""
    out = []
    if opts.tensorboard:
        from ray.tune.logger import TBXLoggerCallback
        out.append(TBXLoggerCallback())
    if opts.mlflow:
        from ray.air.integrations.mlflow import MLflowLoggerCallback
        out.append(MLflowLoggerCallback(tracking_uri=opts.mlflow, experiment_name=output.name, save_artifact=False))
    return [CSVLoggerCallback(), JsonLoggerCallback(), *out]


def trial_name(trial) -> str:
    """mlp_b2128:7: the arm and the trial's number in its study, in Tune's output and the dashboard."""
    return f"{trial.config[ARM]}:{trial.config[STUDY_TRIAL]}"


def trial_dirname(trial) -> str:
    return f"{trial.config[ARM]}-{trial.config[STUDY_TRIAL]}"


def write_json(path: Path, obj: dict) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str)))
