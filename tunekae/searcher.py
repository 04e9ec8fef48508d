"""OptunaSearch that a kill -9 cannot derail (part of the search layer: imports Ray).

The Optuna journal records every ask, report and tell at once; Tune saves its own state, this
searcher's included, about once a second. A kill between the two leaves the journal ahead of
Tune, in two ways, and both are mended here:
1. A trial Tune still thinks is running has already finished in the journal. When Tune reruns
   it (the trial's log replays its final report, see trial_log.py), its reports and its
   completion reach a finished Optuna trial: they are skipped, its value is already there.
2. Trials the journal holds but Tune never saved (asked, maybe even finished, after the last
   save). They are adopted by the next trials Tune creates, in order, instead of asking the
   sampler for new ones: the study keeps exactly one Optuna trial per Tune trial, and a trial
   that had finished replays from its log rather than training again. When the kill damaged
   Tune's saved state itself (tune_state.py), the arm starts a fresh Tune experiment whose
   trials adopt every trial of the journal this way.
Every trial's config carries its Optuna trial number as `study_trial`: it names the trial's
log and seeds the trial, so the same trial gets the same seed whichever Tune trial runs it.
"""
from __future__ import annotations

import warnings

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

from .trial_log import STUDY_TRIAL, TrialLog, is_final


class ResumableOptunaSearch(OptunaSearch):
    def __init__(self, *args, log_dir: str | None = None, epochs: int = 0, **kwargs):
        """`log_dir`, `epochs`: where the trials' logs are and how many epochs a trial has."""
        super().__init__(*args, **kwargs)
        self._unclaimed: list[int] = []   # Optuna trial ids to adopt (filled on restore)
        self._log_dir, self._epochs = log_dir, epochs

    def suggest(self, trial_id: str):
        if callable(self._space) and trial_id not in self._ot_trials and self._unclaimed:
            self._ot_trials[trial_id] = optuna.Trial(self._ot_study, self._unclaimed.pop(0))
        config = super().suggest(trial_id)
        if config is None:
            return None
        return {**config, STUDY_TRIAL: self._ot_trials[trial_id].number}

    def on_trial_result(self, trial_id: str, result: dict):
        if "epoch" in result:   # Optuna's step is the epoch, also for a replayed final report
            result = {**result, TRAINING_ITERATION: result["epoch"]}
        try:
            with warnings.catch_warnings():
                # a trial cut off by the kill retrains from epoch 1 with the same seed: Optuna
                # keeps the values it already has for those epochs and would warn at each one
                warnings.filterwarnings("ignore", message="The reported value is ignored because this `step")
                super().on_trial_result(trial_id, result)
        except UpdateFinishedTrialError:
            pass                 # case 1: the journal already holds this trial's end

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and result and not error:
            self._record_early_end(ot_trial.number, result)
        if ot_trial is not None and self._state(ot_trial).is_finished():
            self._completed_trials.add(trial_id)   # case 1: told before the kill
            return
        super().on_trial_complete(trial_id, result=result, error=error)

    def _record_early_end(self, number: int, result: dict) -> None:
        """A trial stopped early (ASHA) has no final report in its log: the epoch it ended at
        is recorded beside the log before Optuna is told, so that a trial finished in the
        journal always replays from its log on resume and never trains again (trial_log.py)."""
        log_dir, epochs = getattr(self, "_log_dir", None), getattr(self, "_epochs", 0)   # older saves lack them
        if log_dir and "epoch" in result and not is_final(result, epochs):
            TrialLog(log_dir, number, epochs).mark_ended(result["epoch"])

    def restore(self, checkpoint_path: str):
        super().restore(checkpoint_path)
        self.adopt_journal()

    def adopt_journal(self) -> None:
        """The journal's trials that no Tune trial holds are adopted, in order, by the next
        trials Tune creates (case 2). Also for a fresh Tune experiment over a journal that
        already has trials: an arm whose Tune state a kill damaged (tune_state.py)."""
        claimed = {t._trial_id for t in self._ot_trials.values()}
        trials = self._ot_study.get_trials(deepcopy=False)
        self._unclaimed = [t._trial_id for t in sorted(trials, key=lambda t: t.number)
                           if t.state != TrialState.WAITING and t._trial_id not in claimed]

    def _state(self, ot_trial) -> TrialState:
        return self._ot_study._storage.get_trial(ot_trial._trial_id).state
