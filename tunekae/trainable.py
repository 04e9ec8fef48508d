"""The Tune function trainable (part of the search layer: imports Ray).

Kept apart from search.py so that a trial's worker process imports only what a trial needs
(torch and the engine), not the runner's pandas/Optuna: every arm starts fresh workers.
"""
from __future__ import annotations

import queue
import sys
import threading

from ray import tune

from .trial import run_trial
from .trial_log import STUDY_TRIAL, TrialLog

_END = object()   # the training thread's last item


def trainable(config: dict, splits=None, arm: dict = None, run: dict = None):
    """One tune.report per epoch (ASHA's time attribute is the reported `epoch`).

    Training runs in a thread of its own and never waits for Tune: tune.report blocks until the
    driver has taken the result (several ms on 2 busy cores, ~0.2 s per 30-epoch trial), so the
    next epoch trains meanwhile. When Tune stops the trial (tune.report raises SystemExit), the
    training thread abandons the epoch under way at its next batch.

    The trial's Optuna number seeds it and names its log, so a trial rerun after a kill -9
    replays its final report when it had finished, and otherwise retrains with the same seed."""
    import torch
    torch.set_num_threads(max(1, int(run["threads"])))   # this trial's CPU share, never more
    quiet_sigterm_in_finalizers()
    number = config.get(STUDY_TRIAL)
    log = TrialLog(run.get("log_dir"), number, run["epochs"])
    finished = log.finished_report()
    if finished is not None:
        tune.report(finished)
        return
    params = {k: v for k, v in config.items() if k != STUDY_TRIAL}
    reports: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def report(metrics: dict) -> None:
        log.append(metrics)      # first on disk, then to Tune: the log is never behind Tune
        reports.put(metrics)

    def train() -> None:
        try:
            # 1 + the Optuna number: the seeds trials had when Tune's 1-based trial index seeded them
            run_trial(params, arm, run, splits, report=report, seed=run["seed"] + 1 + int(number or 0),
                      should_stop=stop.is_set)
            reports.put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to Tune's thread, which raises it
            reports.put(e)

    log.restart()
    worker = threading.Thread(target=train, name=f"tunekae-trial-{number}", daemon=True)
    worker.start()
    try:
        while (item := reports.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            tune.report(item)
    finally:
        stop.set()
        worker.join()
        log.close()


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
