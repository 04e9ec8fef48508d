"""The one Tune experiment's trainable: a plain function, run by Tune in trial processes that it
reuses for trial after trial, arm after arm (every trial asks for the same resources).

torch is imported at module level and each process warms up once (trial.warm_up: the imports
and first-call costs every fresh process pays), so only a process's first trial pays them, and
outside its training seconds. The dataset arrives as an object-store reference and is fetched
once per process. Each epoch's report is appended to the trial's log before Tune sees it (see
trial_log.py).

Tune is sent the epochs its scheduler decides at and the epoch after each (where a stopped trial
learns it was stopped), the last one, any report that is not a plain 'ok' epoch, and otherwise at
most one report a second (SearchSpec.report_epochs). Every report
costs the driver and both cores: on digits, where an epoch takes 5 ms, sending every epoch
slowed training by half and made reporting, not training, most of a search's wall. The trial log
keeps every epoch; --tensorboard, --mlflow and --verbose send every epoch to Tune.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import torch  # noqa: F401 - at module level on purpose: paid once per trial process
from ray import tune

from ..data import subset_train
from ..train import DIVERGED_LOSS
from ..trial import ArmSpec, RunSpec, stream_trial, warm_up
from .searcher import DEFINE_ERROR
from .trial_log import ARM, STUDY_TRIAL, TrialLog, log_dir


@dataclass(frozen=True)
class SearchSpec:
    """What every trial process of a search is given once (through tune.with_parameters)."""
    run: RunSpec
    arms: dict[str, ArmSpec]
    output: str              # the search's output dir (absolute): trial logs go under it
    report_epochs: frozenset[int] | None = None   # the epochs Tune must see; None: every epoch

    def must_report(self, metrics: dict) -> bool:
        """The epochs the scheduler decides at, and the epoch after each: a trial learns that Tune
        stopped it only when its next tune.report raises, so without that report a stopped trial
        would train on, unseen, until the next rung (and could still be training when Tune ends
        the search and its process)."""
        if self.report_epochs is None or metrics.get("status") != "ok" or "epoch" not in metrics:
            return True
        epoch = metrics["epoch"]
        return epoch in self.report_epochs or epoch - 1 in self.report_epochs or epoch >= self.run.epochs


REPORT_EVERY_S = 1.0   # between the epochs Tune must see: often enough for a live dashboard


_SPLITS: dict[str, object] = {}   # object-store id -> the search's splits, fetched once per process
_WARM: set[str] = set()           # the searches (output dirs) this process has warmed up for


def trainable(config: dict, data: list = None, spec: SearchSpec = None):
    """Reports each epoch to the trial log and the ones SearchSpec.must_report names (ASHA's time
    attribute is the reported `epoch`) to Tune. `data` is
    [ObjectRef of the Splits]; the list keeps tune.with_parameters from fetching it per trial.
    When Tune stops the trial (tune.report raises), closing the stream makes training abandon
    the epoch under way at its next batch."""
    started = time.time()
    number, key = config[STUDY_TRIAL], config[ARM]
    arm, run = spec.arms[key], spec.run
    context = {"trial_id": tune.get_context().get_trial_id(), "pid": os.getpid(), "started": started}
    if config.get(DEFINE_ERROR):
        tune.report({**context, "arm": key, "family": arm.family, "budget": arm.budget, "status": "error",
                     "error": config[DEFINE_ERROR], "val_loss": DIVERGED_LOSS, "epochs_completed": 0})
        return
    log = TrialLog(log_dir(spec.output, key), number, run.epochs)
    finished = log.finished_report()
    if finished is not None:   # it finished before an interruption the driver did not see it end
        tune.report(finished)
        return
    splits = subset_train(_splits(data[0]), arm.train_size, run.seed)
    threads = max(1, run.threads or 1)
    torch.set_num_threads(threads)   # this trial's CPU share, never more
    if spec.output not in _WARM:
        warm_up(splits, run.latent_dim, threads, device=run.device)
        _WARM.add(spec.output)
    params = {k: v for k, v in config.items() if k not in (ARM, STUDY_TRIAL)}
    # 1 + the Optuna number: the seeds trials had when Tune's 1-based trial index seeded them
    seed = run.seed + 1 + int(number)
    log.restart()
    reports = stream_trial(params, arm, run, splits, seed)
    sent = 0.0
    try:
        for metrics in reports:
            metrics = {**metrics, **context, "reported": time.time()}
            log.append(metrics)      # first on disk, then to Tune: the log is never behind Tune
            if spec.must_report(metrics) or metrics["reported"] - sent >= REPORT_EVERY_S:
                tune.report(metrics)
                sent = metrics["reported"]
    finally:
        reports.close()
        log.close()


def _splits(ref):
    import ray
    key = ref.hex()
    if key not in _SPLITS:
        _SPLITS.clear()              # one search's data at a time
        _SPLITS[key] = ray.get(ref)
    return _SPLITS[key]


def quiet_sigterm_in_finalizers() -> None:
    """When a search ends, Ray stops its trial processes with SIGTERM, and Ray's handler raises
    SystemExit. Arriving while Python runs a weakref callback during the worker's shutdown, that
    SystemExit cannot propagate, and Python printed it as an 'Exception ignored ... SystemExit: 1'
    traceback in the search's output (about once a search) though nothing had failed. Only such
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
