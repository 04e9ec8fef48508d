"""The Tune function trainable (part of the search layer: imports Ray).

Kept apart from search.py so that a trial's worker process imports only what a trial needs
(torch and the engine), not the runner's pandas/Optuna: every arm starts fresh workers.
"""
from __future__ import annotations

from ray import tune

from .trial import run_trial
from .trial_log import STUDY_TRIAL, TrialLog


def trainable(config: dict, splits=None, arm: dict = None, run: dict = None):
    """One tune.report per epoch (ASHA's time attribute is the reported `epoch`). The trial's
    Optuna number seeds it and names its log, so a trial rerun after a kill -9 replays its final
    report when it had finished, and otherwise retrains with the same seed."""
    import torch
    torch.set_num_threads(max(1, int(run["threads"])))   # this trial's CPU share, never more
    number = config.get(STUDY_TRIAL)
    log = TrialLog(run.get("log_dir"), number, run["epochs"])
    finished = log.finished_report()
    if finished is not None:
        tune.report(finished)
        return
    params = {k: v for k, v in config.items() if k != STUDY_TRIAL}

    def report(metrics: dict) -> None:
        log.append(metrics)      # first on disk, then to Tune: the log is never behind Tune
        tune.report(metrics)

    log.restart()
    try:
        # 1 + the Optuna number: the seeds trials had when they were seeded by Tune's 1-based trial index
        run_trial(params, arm, run, splits, report=report, seed=run["seed"] + 1 + int(number or 0))
    finally:
        log.close()
