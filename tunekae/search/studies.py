"""The search's Optuna studies: one storage for the whole search, one study per arm (public Optuna
APIs only; no Ray here).

The storage is the search's record, and the only one a resume reads: every trial is asked,
reported and told there as it happens, and a trial's final metrics are kept on it as user
attributes ("config" when asked, "result" when told). By default it is the journal file
DIR/studies.journal, which `optuna-dashboard DIR/studies.journal` opens with every arm in it;
--optuna-storage takes a database URL instead (sqlite:///runs/studies.db, postgresql://...).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from ..errors import UserError
from ..selection import Selection

JOURNAL = "studies.journal"
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def open_storage(output: Path, url: str | None = None):
    """The search's storage: `url` when given, else DIR/studies.journal, whose last line is
    first checked whole (repair_journal_tail)."""
    if url:
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as e:   # noqa: BLE001 - an unknown scheme, a bad path, a missing driver
            raise UserError(f"--optuna-storage {url}: {type(e).__name__}: {str(e).splitlines()[0]} (give a "
                            f"database URL such as sqlite:///runs/studies.db)") from None
    path = output / JOURNAL
    repair_journal_tail(path)
    clear_stale_lock(path)
    from optuna.storages.journal import JournalFileBackend
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def clear_stale_lock(journal: Path) -> bool:
    """Remove the journal's write lock (Optuna's `<journal>.lock` symlink) that a writer killed
    while holding it left behind. Only called under the search's exclusive hold of its output dir
    (runner.exclusive), where no other writer of this journal can be alive. Left in place, Optuna
    would wait out its 30 s grace period; and once the dir has been moved, the link points at the
    journal's old path, and Optuna's JournalFileSymlinkLock.acquire (5.1), which stats the lock
    through the link, never sees it age and spins at full CPU forever. Returns whether one was
    removed."""
    lock = journal.with_name(journal.name + ".lock")
    if not os.path.lexists(lock):
        return False
    os.unlink(lock)   # the link itself, never its target
    return True


def repair_journal_tail(path: Path) -> str | None:
    """A journal whose last line was cut off (a kill or a full disk in the middle of a write) would
    fail to load, and Optuna would append after the partial line, burying it mid-file. The partial
    tail is moved into `<journal>.cut-<time>` beside it (nothing is deleted) and the journal ends
    at its last whole line. Returns the set-aside file, or None when the journal was whole."""
    if not path.exists():
        return None
    data = path.read_bytes()
    whole = data.rfind(b"\n") + 1            # everything up to the last newline
    tail = data[whole:]
    # the last newline-terminated line may itself be garbage (a write that stopped at a newline
    # inside a string is impossible in JSON Lines, so only the unterminated tail can be partial)
    if not tail:
        return None
    aside = path.with_name(f"{path.name}.cut-{time.strftime('%Y%m%d-%H%M%S')}")
    aside.write_bytes(tail)
    with open(path, "r+b") as f:
        f.truncate(whole)
        f.flush()
        os.fsync(f.fileno())
    return str(aside)


@dataclass
class ArmStudy:
    """One arm's study and what it holds."""
    key: str
    study: optuna.Study
    storage: object
    selection: Selection = Selection()

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        return sorted(self.study.get_trials(deepcopy=False), key=lambda t: t.number)

    def trial_id(self, number: int) -> int:
        """The storage's id of trial `number` (what the storage API's setters take)."""
        study_id = self.storage.get_study_id_from_name(self.key)
        return self.storage.get_trial_id_from_study_id_trial_number(study_id, number)

    def ask(self, seed: int):
        """A new trial, sampled by a TPE seeded for this trial alone: the sampler keeps no state
        between trials, so a resumed search samples what an uninterrupted one would have."""
        self.study.sampler = optuna.samplers.TPESampler(seed=seed)
        return self.study.ask()

    def reopen(self, number: int, seed: int):
        """Trial `number`, asked before an interruption that came before its configuration was
        recorded, to sample the rest of it (what it sampled already it keeps) with the sampler
        `ask` gave it. Optuna's Trial constructor is public but meant for Optuna's own use; there
        is no other way to go on sampling a trial that a previous process asked for."""
        self.study.sampler = optuna.samplers.TPESampler(seed=seed)
        return optuna.trial.Trial(self.study, self.trial_id(number))

    def report(self, number: int, epoch: int, result: dict) -> None:
        """The epoch's value of what is selected on (the dashboard's learning curves, and what a
        resume replays into ASHA); a multi-objective study has no intermediate values."""
        metric = self.selection.primary.metric
        if not self.selection.multi and metric in result:
            self.storage.set_trial_intermediate_value(self.trial_id(number), int(epoch), float(result[metric]))

    def record(self, number: int, name: str, value) -> None:
        self.storage.set_trial_user_attr(self.trial_id(number), name, value)

    def tell(self, number: int, result: dict, failed: bool = False) -> None:
        """The trial's end: its final metrics as the user attribute "result", then COMPLETE with
        the value(s) selected on (the worst for infeasible, diverged and erroneous configurations,
        so TPE avoids them), or FAIL (`failed`) when the trial's process died."""
        self.record(number, "result", json_safe(result))
        if failed:
            self.study.tell(number, state=TrialState.FAIL)
        else:
            values = self.selection.values(result)
            self.study.tell(number, values if self.selection.multi else values[0])

    def pareto_numbers(self) -> set[int] | None:
        """The numbers of the trials on the study's Pareto front (Optuna's best_trials) among those
        that finished; None for a single-objective study."""
        if not self.selection.multi:
            return None
        worst = [o.worst for o in self.selection.objectives]
        return {t.number for t in self.study.best_trials if list(t.values) != worst}


def open_studies(storage, keys: list[str], starts: dict[str, dict | None],
                 selection: Selection = Selection()) -> dict[str, ArmStudy]:
    """Each arm's study, created when new (with the arm's starting point enqueued as its first
    trial), loaded when it exists; its direction(s) are the selection's."""
    directions = ["minimize" if o.mode == "min" else "maximize" for o in selection.objectives]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)   # no "A new study created" per arm
    try:
        out = {}
        for key in keys:
            study = optuna.create_study(study_name=key, storage=storage, directions=directions, load_if_exists=True)
            if not study.get_trials(deepcopy=False) and starts.get(key):
                study.enqueue_trial(starts[key])
            out[key] = ArmStudy(key, study, storage, selection)
        return out
    finally:
        optuna.logging.set_verbosity(verbosity)


def trial_seed(search_seed: int, arm_index: int, number: int) -> int:
    """The seed of the sampler that samples trial `number` of an arm."""
    return int(np.random.SeedSequence([search_seed, arm_index, number]).generate_state(1)[0])


def json_safe(metrics: dict) -> dict:
    """Metrics as the journal can hold them (JSON: numpy and torch scalars become numbers)."""
    return json.loads(json.dumps(metrics, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
