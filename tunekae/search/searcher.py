"""The one Tune experiment's searcher: one Optuna study per arm behind a dispatching Searcher.

Trials are handed out round-robin over the arms, exactly `samples` per arm, so every arm trains
under the same machine conditions over time. Each arm samples from its own study with its own
define-by-run function (the arm's recipe enqueued as the study's first trial), so an arm's TPE
learns from that arm's trials only. A trial's config carries its arm and its number in the arm's
study; the number seeds the trial, names its log and its Optuna trial.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from optuna.trial import TrialState
from ray.tune.search import Searcher

from ..selection import Selection
from ..spaces import ArmContext
from .studies import ArmStudy, trial_seed
from .trial_log import ARM, STUDY_TRIAL, is_final

DEFINE_ERROR = "define_error"   # a config key: the arm's define raised for this trial
# Tune's own bookkeeping in every result: not the trial's metrics
TUNE_KEYS = {"config", "date", "done", "experiment_tag", "hostname", "iterations_since_restore", "node_ip",
             "training_iteration", "should_checkpoint", "checkpoint_dir_name", "time_since_restore",
             "time_this_iter_s", "time_total_s", "timestamp", "timesteps_since_restore", "timesteps_total",
             "episodes_total", "episode_reward_mean", "experiment_id"}


@dataclass
class ArmPlan:
    """What is left to run of one arm: trials cut off by an interruption (to train again, same
    number, same configuration) and how many new trials to ask for."""
    ctx: ArmContext
    index: int
    study: ArmStudy
    # (asked at, number, config or None when not yet configured), in the order they were asked
    reruns: deque = field(default_factory=deque)
    to_ask: int = 0
    last_asked: float = 0.0                        # when its latest trial was asked (a timestamp)

    @property
    def key(self) -> str:
        return self.ctx.key

    def has_work(self) -> bool:
        return bool(self.reruns) or self.to_ask > 0


class ArmSearcher(Searcher):
    def __init__(self, plans: list[ArmPlan], seed: int, epochs: int, stopped_early: Callable[[str], bool],
                 selection: Selection = Selection()):
        """`stopped_early(trial_id)`: whether the scheduler stopped that trial (ArmScheduler)."""
        super().__init__(metric=selection.primary.metric, mode=selection.primary.mode)
        self.plans = {p.key: p for p in plans}
        self.order = [p.key for p in plans]
        self.seed, self.epochs, self.stopped_early = seed, epochs, stopped_early
        # a resumed search goes on where it stopped: cut-off trials first, in the order they were
        # first asked, then round-robin from the arm after the one asked last
        latest = max(plans, key=lambda p: p.last_asked, default=None)
        self.turn = (self.order.index(latest.key) + 1) % len(self.order) if latest and latest.last_asked else 0
        self.live: dict[str, tuple[str, int]] = {}   # Tune trial id -> (arm, study number)

    def finished(self) -> bool:
        """Every trial handed out and ended."""
        return not self.live and not any(p.has_work() for p in self.plans.values())

    def suggest(self, trial_id: str):
        rerun = min((p for p in self.plans.values() if p.reruns), key=lambda p: p.reruns[0][0], default=None)
        if rerun is not None:
            _, number, config = rerun.reruns.popleft()
            if config is None:
                config = self._configure(rerun, rerun.study.reopen(number, self._sampler_seed(rerun, number)))
            self.live[trial_id] = (rerun.key, number)
            return config
        n = len(self.order)
        ring = (self.plans[self.order[(self.turn + i) % n]] for i in range(n))   # this arm's turn first
        plan = next((p for p in ring if p.has_work()), None)
        if plan is None:
            return Searcher.FINISHED
        self.turn = (self.order.index(plan.key) + 1) % n   # round-robin: the next arm goes next
        number, config = self._ask(plan)
        self.live[trial_id] = (plan.key, number)
        return config

    def _ask(self, plan: ArmPlan) -> tuple[int, dict]:
        plan.to_ask -= 1
        asked = sum(t.state != TrialState.WAITING for t in plan.study.trials())   # the new trial's number
        trial = plan.study.ask(self._sampler_seed(plan, asked))
        return trial.number, self._configure(plan, trial)

    def _sampler_seed(self, plan: ArmPlan, number: int) -> int:
        return trial_seed(self.seed, plan.index, number)

    def _configure(self, plan: ArmPlan, trial) -> dict:
        """The arm's define-by-run function samples the trial; its config is recorded with it."""
        config = {ARM: plan.key, STUDY_TRIAL: trial.number}
        try:
            constants = plan.ctx.arm.define(trial, plan.ctx) or {}
            config = {**trial.params, **constants, **config}
        except Exception as e:   # noqa: BLE001 - a branch of the user's define its checks missed
            config[DEFINE_ERROR] = f"the arm's define raised {type(e).__name__}: {e}"
        plan.study.record(trial.number, "config", config)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.live and "epoch" in result:
            key, number = self.live[trial_id]
            self.plans[key].study.report(number, result["epoch"], result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.live:
            return
        key, number = self.live.pop(trial_id)
        study = self.plans[key].study
        if error:   # the trial's process died or the trainable raised: no result of its own
            last = metrics_of(result or {})
            study.tell(number, {**last, "status": "error", "error": "the trial's process failed; Ray's log for "
                                f"trial {trial_id} says why", "val_loss": last.get("val_loss", 1e6)}, failed=True)
            return
        final = metrics_of(result or {})
        if not final or (not is_final(final, self.epochs) and not self.stopped_early(trial_id)):
            return   # Tune ended the run under it (Ctrl-C): left RUNNING, it trains again on resume
        if "epoch" in final:   # a result that made ASHA stop the trial reaches only this hook
            study.report(number, final["epoch"], final)
        study.tell(number, final)

    def save(self, checkpoint_path: str) -> None:
        """Tune saves its experiment state now and then; a resume reads the studies instead (see
        runner.py), so there is nothing here worth keeping."""
        with open(checkpoint_path, "w") as f:
            f.write("tunekae resumes from its Optuna studies, not from this file\n")

    def restore(self, checkpoint_path: str) -> None:
        raise RuntimeError("a tunekae search resumes from its Optuna studies (python -m tunekae search --output "
                           "DIR --resume), not through Tuner.restore")


def metrics_of(result: dict) -> dict:
    """A Tune result without Tune's bookkeeping (its keys, and the trial's config that Tune
    flattens into `config/<name>` in some results): the trial's own report."""
    return {k: v for k, v in result.items() if k not in TUNE_KEYS and not k.startswith("config/")}
