"""The one Tune experiment's scheduler: one ASHA per arm behind a dispatching TrialScheduler.

Every call is routed to the trial's own arm's ASHA, so a trial is only ever ranked against the
trials of its own arm, each arm with the same ASHA settings. On resume, the trials that finished
before the interruption are replayed into their arm's ASHA, epoch by epoch, so its rungs hold
what they held: an interrupted search stops the same trials as an uninterrupted one.
"""
from __future__ import annotations

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from ..selection import Objective
from .trial_log import ARM

TIME_ATTR = "epoch"   # the reported epoch (not Tune's report count: reports skip epochs; a replay keeps them)


def decision_epochs(epochs: int, grace_period: int, reduction_factor: int) -> frozenset[int]:
    """The epochs at which an arm's ASHA ranks a trial (its rungs, computed as Ray's ASHA bracket
    computes them), and the last. A report between them changes no decision: ASHA ranks a trial
    at the first report at or past a rung, and every rung epoch is reported."""
    grace = min(grace_period, epochs)
    rungs = int(np.log(epochs / grace) / np.log(reduction_factor) + 1)
    return frozenset(int(grace * reduction_factor ** k) for k in range(rungs)) | {epochs}


class ArmScheduler(FIFOScheduler):
    def __init__(self, keys: list[str], epochs: int, grace_period: int, reduction_factor: int, asha: bool = True,
                 objective: Objective = Objective()):
        """asha False: no early stopping (every trial runs every epoch), for ablations. `objective`:
        what the search selects on (a metric every epoch reports, when asha)."""
        super().__init__()
        self.asha, self.objective = asha, objective
        self.arms = {k: ASHAScheduler(time_attr=TIME_ATTR, metric=objective.metric, mode=objective.mode, max_t=epochs,
                                      grace_period=min(grace_period, epochs), reduction_factor=reduction_factor)
                     for k in keys} if asha else {}
        self.epochs = epochs
        self.grace_period, self.reduction_factor = min(grace_period, epochs), reduction_factor
        self._stopped_early: set[str] = set()

    def decision_epochs(self) -> frozenset[int]:
        """The epochs at which this scheduler may stop a trial, and the last (only the last without
        ASHA: nothing is decided before it)."""
        if not self.asha:
            return frozenset({self.epochs})
        return decision_epochs(self.epochs, self.grace_period, self.reduction_factor)

    def set_search_properties(self, metric, mode, **spec) -> bool:
        """Tune's check that the experiment's metric is the scheduler's: what the search selects on."""
        return metric in (None, self.objective.metric) and mode in (None, self.objective.mode)

    def stopped_early(self, trial_id: str) -> bool:
        """Whether this scheduler stopped the trial before its last epoch."""
        return trial_id in self._stopped_early

    def _of(self, trial) -> ASHAScheduler | None:
        return self.arms.get(trial.config.get(ARM))

    def on_trial_add(self, tune_controller, trial):
        if (asha := self._of(trial)) is not None:
            asha.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        if (asha := self._of(trial)) is not None:
            asha.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result):
        asha = self._of(trial)
        if asha is None:
            return TrialScheduler.CONTINUE
        decision = asha.on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and result.get(TIME_ATTR, self.epochs) < self.epochs:
            self._stopped_early.add(trial.trial_id)
        return decision

    def on_trial_complete(self, tune_controller, trial, result):
        if (asha := self._of(trial)) is not None:
            asha.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        if (asha := self._of(trial)) is not None:
            asha.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller):
        """The newest pending trial. With reused trial processes, FIFO's oldest-first handed a trial
        that waited for a process still starting the process of a trial that had just ended; Tune
        then stopped the starting one, every time, and after one trial process died the rest of
        the search ran one trial at a time."""
        return next((t for t in reversed(tune_controller.get_trials()) if t.status == Trial.PENDING), None)

    def replay(self, arm: str, name: str, reports: list[dict]) -> None:
        """Feed one finished trial's reports (epoch by epoch, up to where it ended) into its arm's
        ASHA, as if it had run now; `name` stands for its Tune trial id."""
        asha = self.arms.get(arm)
        if asha is None:
            return
        ghost = Trial("tunekae_replay", config={ARM: arm}, trial_id=name, stub=True)
        asha.on_trial_add(None, ghost)
        for report in reports:
            if TIME_ATTR in report and self.objective.metric in report:
                asha.on_trial_result(None, ghost, report)
        asha.on_trial_remove(None, ghost)

    def debug_string(self) -> str:
        return "\n".join(f"{k}: {s.debug_string()}" for k, s in self.arms.items()) or "no early stopping"
