"""Ray Tune + OptunaSearch + ASHA over equal-budget arms: the search layer's runner. This module,
searcher.py and trainable.py are the only ones that import Ray.

One Tune experiment per arm (family x budget), run one after another, each with the SAME number
of trials, epochs and ASHA settings, its own seeded TPE study (persisted as a journal that
optuna-dashboard opens) and the dataset shipped once through tune.with_parameters.
Layout of the output dir: see docs/ARCHITECTURE.md.
"""
from __future__ import annotations

import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import optuna
import pandas as pd
import ray
from ray import tune
from ray.exceptions import AuthenticationError
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from .ctrl_c import CtrlC
from .errors import UserError
from .ray_address import check_reachable, init_failure, requested, token_auth_on
from .results import arm_rows, summarize_arm, write_atomic, write_results
from .searcher import ResumableOptunaSearch
from .spaces import ArmContext, Space, starting_point
from .trainable import trainable
from .trial_log import log_dir
from .tune_state import newest_state, problems, set_aside
from .warm_trainers import WarmTrainers


GPU_SHARE = 0.25   # a trial's default share of a GPU: small models pack four to a GPU


@dataclass
class SearchOptions:
    samples: int
    epochs: int
    seed: int
    cpus_per_trial: float
    gpus_per_trial: float | None   # None: 0.25 when the cluster has GPUs, else 0
    max_concurrent: int | None
    address: str | None
    verbose: int = 1
    asha: bool = True          # False: FIFO (every trial runs all epochs), for ablations
    callbacks: tuple = ()      # extra tune.Callback objects (the benchmarks time trials with one)
    storage: str | None = None  # Tune's experiment folders: a shared path or cloud URI (default DIR/ray)
    warm_trainers: bool = True  # False: every trial trains in Tune's own fresh process (benchmark reference)


def connect(address: str | None, num_cpus: int | None = None) -> str | None:
    """Start or attach to Ray; returns the dashboard URL when one is up. An address where no
    Ray cluster answers, or whose cluster refuses this process's token, is the user's to fix
    (UserError), not a traceback or a hang (ray_address.py)."""
    if ray.is_initialized():
        return None
    address, named = requested(address)
    if address:
        check_reachable(address, named)
    # Without an address, always a fresh local Ray: a bare ray.init() joins whatever cluster
    # /tmp/ray/ray_current_cluster names, and hangs when that cluster is gone.
    kwargs = {"address": address} if address else {"address": "local", "num_cpus": num_cpus,
                                                    "include_dashboard": None}
    try:
        ctx = ray.init(logging_level="WARNING", log_to_driver=True, **kwargs)
    except (AuthenticationError, ConnectionError) as e:
        raise UserError(init_failure(e, named)) from None
    url = getattr(ctx, "dashboard_url", None)
    return f"http://{url}" if url and not url.startswith("http") else url


def resources(opts: SearchOptions) -> tuple[dict, int]:
    """One trial's resources and how many trials run at once: --max-concurrent, else as many as
    the cluster holds. gpus_per_trial None: a quarter GPU per trial when the cluster has GPUs
    (small models pack four to a GPU), else none."""
    total = ray.cluster_resources()
    gpu = opts.gpus_per_trial if opts.gpus_per_trial is not None else (GPU_SHARE if total.get("GPU", 0) else 0.0)
    per = {"cpu": opts.cpus_per_trial, "gpu": gpu}
    return per, max(1, opts.max_concurrent or trial_capacity(per, total))


def trial_capacity(per: dict, total: dict | None = None) -> int:
    """How many trials asking for `per` the whole cluster (`total`: its resources) holds at once."""
    total = ray.cluster_resources() if total is None else total
    by_cpu = int(int(total.get("CPU", 1)) // max(per["cpu"], 1e-9))
    by_gpu = int(total.get("GPU", 0) // per["gpu"]) if per["gpu"] else by_cpu
    return max(1, min(by_cpu, by_gpu))


def check_trial_fits(cpus: float, gpus: float, address: str | None, what: str = "a trial") -> None:
    """Ray waits forever for resources that no node has. On a local Ray that is a mistake in
    the flags (exit 2 before anything is written); an attached cluster (address or RAY_ADDRESS)
    may be autoscaling, so there it is a warning."""
    attached = bool(address or os.environ.get("RAY_ADDRESS"))
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
        return
    biggest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
    message = (f"{what} asks for CPU {cpus:g} and GPU {gpus:g}, but no node of the Ray cluster has that much "
               f"(the largest has CPU {biggest.get('CPU', 0):g} and GPU {biggest.get('GPU', 0):g})")
    if not attached:
        raise UserError(f"{message}; lower --cpus-per-trial" + (" or --gpus-per-trial" if gpus else ""))
    print(f"tunekae: warning: {message}; trials wait until the cluster adds such a node", file=sys.stderr)


def study_storage(output: Path, arm_key: str):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    (output / "studies").mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(output / "studies" / f"{arm_key}.journal")))


def start_trainers(splits_ref, space: Space, opts: SearchOptions) -> WarmTrainers:
    """The search's warm trainers (warm_trainers.py): none for GPU trials or when turned off."""
    per, concurrent = resources(opts)
    if not opts.warm_trainers or per["gpu"]:
        return WarmTrainers({})
    return WarmTrainers.start(splits_ref, space.latent_dim, per["cpu"], concurrent)


def make_tuner(ctx: ArmContext, space: Space, opts: SearchOptions, splits, output: Path, restore: bool,
               data: list, trainers: WarmTrainers):
    """`data`: [ObjectRef of the splits], put in the object store once per search."""
    per, concurrent = resources(opts)
    storage_path = opts.storage or str((output / "ray").resolve())
    path = f"{storage_path.rstrip('/')}/{ctx.key}"
    restore = restore and tune.Tuner.can_restore(path) and not _set_aside_if_damaged(path, ctx.key)
    run = {"input_dim": splits.input_dim, "latent_dim": space.latent_dim, "epochs": opts.epochs,
           "tolerance": space.tolerance, "seed": opts.seed, "threads": max(1, int(opts.cpus_per_trial)),
           "device": "cuda" if per["gpu"] else "cpu", "log_dir": log_dir(output, ctx.key)}
    if not restore:
        # the trials that start together, each in its own process, and wait for one another
        # (warm_trainers.join_first_wave); a resumed arm may have fewer left, so none waits there
        run.update(wave=uuid.uuid4().hex, first_wave=min(concurrent, trial_capacity(per), opts.samples))
    fn = tune.with_resources(tune.with_parameters(trainable, data=data, arm=ctx.to_dict(), run=run,
                                                  trainers=trainers.by_node), per)
    if restore:
        return tune.Tuner.restore(path, trainable=fn, resume_unfinished=True, resume_errored=True)
    define = partial(ctx.arm.define, ctx=ctx)
    storage = study_storage(output, ctx.key)
    # a journal with trials (Tune's state was damaged, or never saved): they are the arm's first
    # trials, the starting point among them (enqueued again, it would be one trial too many)
    journal = _journal_trials(storage, ctx.key)
    start = None if journal else starting_point(ctx, ctx.arm.define)
    searcher = ResumableOptunaSearch(space=define, metric="val_loss", mode="min",
                                     points_to_evaluate=[start] if start else None,
                                     sampler=optuna.samplers.TPESampler(seed=opts.seed), study_name=ctx.key,
                                     storage=storage, log_dir=run["log_dir"], epochs=opts.epochs)
    if journal:
        searcher.adopt_journal()
    # time_attr is the reported epoch, not Tune's report count: a trial replaying its final
    # report after a resume is judged at the epoch it really reached
    scheduler = ASHAScheduler(time_attr="epoch", max_t=opts.epochs,
                              grace_period=min(space.grace_period, opts.epochs),
                              reduction_factor=space.reduction_factor) if opts.asha else FIFOScheduler()
    return tune.Tuner(
        fn,
        tune_config=tune.TuneConfig(metric="val_loss", mode="min", search_alg=searcher, scheduler=scheduler,
                                    num_samples=opts.samples, max_concurrent_trials=concurrent,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=ctx.key, storage_path=storage_path, verbose=opts.verbose,
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  callbacks=[CSVLoggerCallback(), JsonLoggerCallback(), *opts.callbacks]),
    )


def _set_aside_if_damaged(path: str, arm_key: str) -> bool:
    """True when Tune's saved state of the arm was damaged or out of step (tune_state.py) and
    is now set aside."""
    what, broken = problems(newest_state(path))
    if broken:
        aside = set_aside(path)
        print(f"tunekae: {arm_key}: Tune's saved state is {what} ({'; '.join(broken)}), as a kill during "
              f"Tune's save leaves it; it is kept in {aside}. The arm starts again from its Optuna journal and "
              f"trial logs: finished trials replay their results, unfinished ones train again with their seeds",
              file=sys.stderr)
    return bool(broken)


def _journal_trials(storage, arm_key: str) -> int:
    """How many trials the arm's Optuna journal holds (0 when it has no study yet)."""
    try:
        return len(optuna.load_study(study_name=arm_key, storage=storage).get_trials(deepcopy=False))
    except KeyError:
        return 0


def interrupted(grid, samples: int, output: Path, arm_key: str) -> bool:
    """Tune, stopped by a signal, saves its state and returns from fit() as if the arm had ended,
    with the trials it stopped marked terminated. An arm that really ended has all its trials,
    and none is still running in its Optuna study."""
    if len(grid) < samples:
        return True
    study = optuna.load_study(study_name=arm_key, storage=study_storage(output, arm_key))
    return any(t.state == optuna.trial.TrialState.RUNNING for t in study.get_trials(deepcopy=False))


def run_search(space: Space, contexts: list[ArmContext], splits, opts: SearchOptions, output: Path,
               meta: dict, resume: bool = False, trainers: WarmTrainers | None = None) -> pd.DataFrame:
    """Run every arm (skipping arms already finished when resuming); returns the results table.
    `trainers`: warm trainers started by the caller for these splits (the benchmarks reuse them
    across searches); by default the search starts its own and stops them at its end."""
    # Tune's experiment state every 5 s (its own default: 10 s or more). After a kill -9 the trial
    # logs and the Optuna journal make up for what Tune had not saved (searcher.py); each save
    # took 20 ms of the driver's CPU with 32 trials, 2-3% of a 2-core arm when made every second.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")
    # progress.csv and result.json per trial, but no TensorBoard event files: writing them held
    # every report (and so the reporting trial) about 4 ms on 2 cores
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")
    started = time.time()
    arms_dir = output / "arms"
    finished = {c.key for c in contexts if resume and (arms_dir / f"{c.key}.csv").exists()}
    dashboard = None
    if len(finished) < len(contexts):   # a search whose arms have all finished needs no Ray
        dashboard = connect(opts.address, num_cpus=None)
        per, _ = resources(opts)
        check_trial_fits(per["cpu"], per["gpu"], opts.address)
    if dashboard:
        # Ray 2.60 turns token authentication on for a local Ray: the page then asks for the token
        token = " (it asks for the token that `ray get-auth-token` prints)" if token_auth_on() else ""
        print(f"tunekae: Ray dashboard at {dashboard}{token}", file=sys.stderr)
    try:   # only now: bad flags or no cluster leave nothing behind
        output.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--output {output}: cannot create it ({e.strerror})") from None
    meta = {**meta, "dashboard": dashboard, "ray_version": ray.__version__}
    _write_json(output / "run.json", meta)
    arms_dir.mkdir(parents=True, exist_ok=True)
    summaries = meta.get("summary", {}) if resume else {}
    to_train = [c for c in contexts if c.key not in finished and c.feasible]
    data = [ray.put(splits)] if to_train else []   # in the object store once for every arm
    own_trainers = trainers is None
    if own_trainers:
        trainers = start_trainers(data[0], space, opts) if to_train else WarmTrainers({})
    try:
        with CtrlC() as ctrl_c:
            for ctx in contexts:
                if ctx.key in finished:
                    print(f"tunekae: {ctx.key} finished earlier; skipped", file=sys.stderr)
                    continue
                rows = _run_arm(ctx, space, opts, splits, output, resume, data, trainers, ctrl_c)
                # a kill while writing must not leave a "finished" half arm
                write_atomic(arms_dir / f"{ctx.key}.csv", lambda tmp: rows.to_csv(tmp, index=False))
                summaries[ctx.key] = summarize_arm(rows, opts.epochs)
                meta["summary"] = summaries
                _write_json(output / "run.json", meta)
    finally:
        if own_trainers:
            trainers.stop()
    table = write_results(output, space)
    meta.update(summary=summaries, wall_seconds=meta.get("wall_seconds", 0) + time.time() - started,
                finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    _write_json(output / "run.json", meta)
    return table


def _run_arm(ctx: ArmContext, space: Space, opts: SearchOptions, splits, output: Path, resume: bool,
             data: list, trainers: WarmTrainers, ctrl_c: CtrlC) -> pd.DataFrame:
    """One arm's rows: its Tune experiment, or one `infeasible` row when no shape fits."""
    if not ctx.feasible:
        return pd.DataFrame([{"space": space.name, "arm": ctx.key, "family": ctx.arm.name,
                              "layer": ctx.arm.family, "variant": ctx.arm.variant, "budget": ctx.budget,
                              "budget_label": ctx.budget_label, "trial_id": "", "status": "infeasible",
                              "stopped_early": False, "epochs_completed": 0, "epochs_budget": opts.epochs,
                              "error": "no depth/shape of this arm fits the budget"}])
    tuner = make_tuner(ctx, space, opts, splits, output, resume, data, trainers)
    with ctrl_c.inside_tune():
        grid = tuner.fit()
    trainers.free_all()   # a trial whose process Tune killed at the arm's end trains no longer
    if ctrl_c.pressed or interrupted(grid, opts.samples, output, ctx.key):
        # no arms/<arm>.csv, so --resume picks this arm up; and no later arm may start
        print(f"tunekae: {ctx.key} interrupted; continue with: python -m tunekae search "
              f"--output {output} --resume", file=sys.stderr)
        raise KeyboardInterrupt
    return arm_rows(grid, ctx, space, opts.epochs)


def _write_json(path: Path, obj: dict) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str)))
