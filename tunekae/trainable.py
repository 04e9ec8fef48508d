"""The Tune function trainable (part of the search layer: imports Ray).

A thin process: it imports ray.tune and nothing heavy (no torch, no scikit-learn), because Tune
starts fresh trial processes for every arm. The training itself runs in a warm trainer of the
search (warm_trainers.py) on the trial's node; only when none is free there, or the trial has
a GPU, does the trial train in its own process, importing torch then.
"""
from __future__ import annotations

import sys

import ray
from ray import tune

from .trial_log import STUDY_TRIAL, TrialLog
from .warm_trainers import join_first_wave, stream_from_warm_trainer

_JOINED: set[str] = set()   # the first waves this process took part in (Tune keeps it for one arm)


def trainable(config: dict, data: list = None, arm: dict = None, run: dict = None, trainers: dict = None):
    """One tune.report per epoch (ASHA's time attribute is the reported `epoch`).

    `data` is [ObjectRef of the Splits], fetched only when the trial trains here; `trainers`
    maps node ids to the search's warm trainers. Training never waits for Tune: its reports
    are queued while tune.report blocks. When Tune stops the trial (tune.report raises
    SystemExit), closing the stream makes training abandon the epoch under way at its next
    batch, and the trial returns only once its trainer is free again.

    An arm's first trial in each process waits until the arm's other first trials have started
    (warm_trainers.join_first_wave), which keeps Tune from running the arm one trial at a time.

    The trial's Optuna number seeds it and names its log, so a trial rerun after a kill -9
    replays its final report when it had finished, and otherwise retrains with the same seed."""
    number = config.get(STUDY_TRIAL)
    if run.get("wave") and run["wave"] not in _JOINED:
        # only a process's first trial: later ones reuse a started actor. Also a trial that
        # replays (an arm rerun from its journal): it would end at once, the very case to avoid
        _JOINED.add(run["wave"])
        join_first_wave(trainers, run["wave"], run["first_wave"])   # no trainers: returns at once
    log = TrialLog(run.get("log_dir"), number, run["epochs"])
    finished = log.finished_report()
    if finished is not None:
        tune.report(finished)
        return
    params = {k: v for k, v in config.items() if k != STUDY_TRIAL}
    # 1 + the Optuna number: the seeds trials had when Tune's 1-based trial index seeded them
    seed = run["seed"] + 1 + int(number or 0)
    log.restart()
    reports = None
    try:
        reports = stream_from_warm_trainer(trainers, params, arm, run, seed) if trainers else None
        if reports is None:
            reports = _train_here(params, arm, run, data, seed)
        for metrics in reports:
            log.append(metrics)      # first on disk, then to Tune: the log is never behind Tune
            tune.report(metrics)
    finally:
        if reports is not None:
            reports.close()
        log.close()


def _train_here(params: dict, arm: dict, run: dict, data: list, seed: int):
    import torch

    from .trial import stream_trial
    torch.set_num_threads(max(1, int(run["threads"])))   # this trial's CPU share, never more
    return stream_trial(params, arm, run, ray.get(data[0]), seed)


def quiet_sigterm_in_finalizers() -> None:
    """When an arm ends, Ray stops its trial workers with SIGTERM, and Ray's handler raises
    SystemExit. Arriving while Python runs a weakref callback during the worker's shutdown, that
    SystemExit cannot propagate, and Python printed it as an 'Exception ignored ... SystemExit: 1'
    traceback in the search's output (about once an arm) though nothing had failed. Only such
    unraisable SystemExits are dropped; every other unraisable error is printed as before."""
    previous = sys.unraisablehook
    if getattr(previous, "_tunekae", False):
        return

    def hook(unraisable) -> None:
        if not isinstance(unraisable.exc_value, SystemExit):
            previous(unraisable)

    hook._tunekae = True
    sys.unraisablehook = hook


# At import, so that it is in place from the trial process's start whatever Tune does with the
# process. Installed only at a trial's start, the traceback was still seen about once in ten
# searches (cause not found).
quiet_sigterm_in_finalizers()
