"""A trial's own record of what it reported, so that a resumed search never retrains a trial
that had finished (no Ray here).

Tune saves its experiment state about once a second, while the Optuna journal and a trial's
reports land at once; after a kill -9, Tune may restart a trial that had in fact finished.
Each trial therefore appends every report it makes to DIR/trial_logs/<arm>/<study trial>.jsonl
*before* handing it to Tune. A restarted trial whose log ends in a final report sends that
report again instead of training; a log without one (the trial was cut off mid-way) is
discarded and the trial trains from the start.

A trial that a scheduler (ASHA) stopped early has no final report in its log: the driver's
searcher, which learns of the stop first, records the epoch it ended at beside the log
(<study trial>.ended) before Optuna is told; that logged report is then the trial's final one.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .results import write_atomic

STUDY_TRIAL = "study_trial"   # the Tune config key holding a trial's Optuna trial number


def is_final(report: dict, epochs: int) -> bool:
    """A trial's last report: it ran every epoch, or it ended as infeasible, diverged or error."""
    return report.get("status") != "ok" or int(report.get("epochs_completed") or 0) >= epochs


class TrialLog:
    def __init__(self, directory: str | None, number: int | None, epochs: int):
        self.epochs = epochs
        self.path = Path(directory) / f"{number}.jsonl" if directory and number is not None else None
        self._file = None

    @property
    def ended_path(self) -> Path | None:
        return self.path.with_suffix(".ended") if self.path is not None else None

    def finished_report(self) -> dict | None:
        """The final report of an earlier, finished run of this trial: the log's last report
        when it is final, else the report of the epoch a scheduler stopped it at; None if that
        run did not finish."""
        if self.path is None or not self.path.exists():
            return None
        reports = []
        for line in self.path.read_text().splitlines():
            try:
                reports.append(json.loads(line))
            except json.JSONDecodeError:   # a line cut off by the kill: that run did not finish
                return None
        if reports and is_final(reports[-1], self.epochs):
            return reports[-1]
        ended = self._ended_epoch()
        return next((r for r in reports if ended is not None and r.get("epoch") == ended), None)

    def mark_ended(self, epoch: int) -> None:
        """Record (driver side) that the trial ended at `epoch` though it had epochs left."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # whole or absent, whenever a kill comes
        write_atomic(self.ended_path, lambda tmp: tmp.write_text(json.dumps({"epoch": int(epoch)})))

    def _ended_epoch(self) -> int | None:
        try:
            return int(json.loads(self.ended_path.read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def restart(self) -> None:
        """Start the record afresh. A log that cannot be written (e.g. the output dir is not
        shared with this node) costs only the replay on resume, never the trial."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.ended_path.unlink(missing_ok=True)   # an end this retrained run has not reached
            self._file = open(self.path, "w")
        except OSError as e:
            print(f"tunekae: cannot write the trial log {self.path} ({e}); a resume would retrain this trial",
                  file=sys.stderr)
            self._file = None

    def append(self, report: dict) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(report, default=_plain) + "\n")
        self._file.flush()   # in the OS's hands now: a killed process loses nothing written

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _plain(value):
    """JSON for numpy/torch scalars (json itself writes and reads NaN)."""
    return value.item() if hasattr(value, "item") else str(value)


def log_dir(output: str | os.PathLike, arm_key: str) -> str:
    return str((Path(output) / "trial_logs" / arm_key).resolve())
