"""A trial's own record of what it reported: the write-ahead log that keeps a resumed search from
retraining a trial that had finished (no Ray here).

A trial appends every report to DIR/trial_logs/<arm>/<study trial>.jsonl *before* handing it to
Tune; the driver records the trial's end in the Optuna journal only when Tune passes the result
on. A kill -9 between the two leaves a finished log beside a journal that still says RUNNING:
the resume reads the log's final report instead of training the trial again. A log without a
final report (the trial was cut off) is started afresh when the trial trains again.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

STUDY_TRIAL = "study_trial"   # the config key holding a trial's number in its arm's Optuna study
ARM = "arm"                   # the config key holding the trial's arm


def is_final(report: dict, epochs: int) -> bool:
    """A trial's last report: it ran every epoch, or it ended as infeasible, diverged or error."""
    return report.get("status") != "ok" or int(report.get("epochs_completed") or 0) >= epochs


class TrialLog:
    def __init__(self, directory: str | os.PathLike | None, number: int | None, epochs: int):
        self.epochs = epochs
        self.path = Path(directory) / f"{number}.jsonl" if directory and number is not None else None
        self._file = None

    def reports(self) -> list[dict] | None:
        """Every report in the log, or None when a line was cut off (the writer was killed)."""
        if self.path is None or not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                return None
        return out

    def finished_report(self) -> dict | None:
        """The final report of an earlier run of this trial that finished, else None."""
        reports = self.reports()
        return reports[-1] if reports and is_final(reports[-1], self.epochs) else None

    def restart(self) -> None:
        """Start the record afresh. A log that cannot be written (e.g. the output dir is not
        shared with this node) costs only the replay on resume, never the trial."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w")
        except OSError as e:
            print(f"tunekae: cannot write the trial log {self.path} ({e}); a resume would retrain this trial",
                  file=sys.stderr)
            self._file = None

    def append(self, report: dict) -> None:
        """A write that fails (a full disk) ends the record, not the trial: the trial reports on to
        Tune, and if the driver then records its end, nothing is lost; if the disk stops the driver
        too, the search ends with one line and the resume trains this trial again (its log holds no
        final report). Said nowhere here: a trial process's print would reach the user as lines
        of Ray's log forwarding around the search's one-line error."""
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(report, default=_plain) + "\n")
            self._file.flush()   # in the OS's hands now: a killed process loses nothing written
        except OSError:
            self.close()

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()   # flushes: may meet the full disk again
            except OSError:
                pass
            self._file = None


def _plain(value):
    """JSON for numpy/torch scalars (json itself writes and reads NaN)."""
    return value.item() if hasattr(value, "item") else str(value)


def log_dir(output: str | os.PathLike, arm_key: str) -> str:
    return str((Path(output) / "trial_logs" / arm_key).resolve())
