"""What a person watching a search sees (a Tune callback): one line per finished trial and, on a
terminal, one live line per arm kept at the bottom. Tune's own tables are behind --verbose."""
from __future__ import annotations

import math
import sys
import time

from ray import tune

from ..selection import Objective
from .trial_log import ARM, STUDY_TRIAL

REDRAW_S = 0.5


class Progress(tune.Callback):
    def __init__(self, totals: dict[str, int], done: dict[str, int], best: dict[str, float], epochs: int,
                 quiet: bool = False, stream=None, objective: Objective = Objective()):
        """totals: trials per arm; done/best: what earlier sessions of a resumed search finished;
        best: of `objective`, what the search selects on."""
        self.totals, self.done, self.best, self.epochs = totals, dict(done), dict(best), epochs
        self.objective = objective
        self.quiet = quiet
        self._stream = stream
        self.live = not quiet and self.stream.isatty()
        self.running: dict[str, int] = {}
        self._drawn = 0
        self._last = 0.0

    @property
    def stream(self):
        return self._stream or sys.stdout

    def __getstate__(self):
        # Tune pickles its configuration, callbacks included: the stream is not part of it
        return {**self.__dict__, "_stream": None}

    # ---- Tune's hooks
    def on_step_end(self, iteration, trials, **info):
        if not self.live or time.monotonic() - self._last < REDRAW_S:
            return
        self.running = {}
        for t in trials:
            if t.status == "RUNNING":
                self.running[t.config.get(ARM)] = self.running.get(t.config.get(ARM), 0) + 1
        self._redraw()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finished(trial, dict(trial.last_result or {}))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finished(trial, {**(trial.last_result or {}), "status": "error"})

    # ---- lines
    def _finished(self, trial, result: dict) -> None:
        arm = trial.config.get(ARM)
        self.done[arm] = self.done.get(arm, 0) + 1
        value, o = self.objective.value(result), self.objective
        if value != o.worst:
            pick = min if o.mode == "min" else max
            self.best[arm] = pick(self.best.get(arm, o.worst), value)
        if not self.quiet:
            self._print(trial_line(arm, trial.config.get(STUDY_TRIAL), result, self.epochs, o.metric))

    def _print(self, line: str) -> None:
        self._clear()
        print(line, file=self.stream, flush=True)
        self._redraw(force=True)

    def _clear(self) -> None:
        if self._drawn:   # up to the block's first line, and clear to the end of the screen
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _redraw(self, force: bool = False) -> None:
        if not self.live:
            return
        self._clear()
        lines = [arm_line(a, self.done.get(a, 0), n, self.running.get(a, 0), self.best.get(a), self.objective.metric)
                 for a, n in self.totals.items()]
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn, self._last = len(lines), time.monotonic()

    def close(self) -> None:
        """Leave the terminal as plain lines (the summary follows)."""
        self._clear()


def _shown(name: str, value) -> str:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and abs(value) < 1e6
    return f"{name} {value:.6f}" if ok else ""


def trial_line(arm: str, number, result: dict, epochs: int, metric: str = "val_loss") -> str:
    status = result.get("status", "?")
    done = int(result.get("epochs_completed") or 0)
    shown = _shown("val_loss", result.get("val_loss"))
    if metric != "val_loss" and (also := _shown(metric, result.get(metric))):   # what it is selected on, too
        shown = f"{shown}  {also}" if shown else also
    if status == "ok" and done < epochs:
        ending = f"stopped early by ASHA at epoch {done}"
    elif status in ("ok", "collapsed"):
        ending = status
    else:
        ending = f"{status}: {str(result.get('error', '')).splitlines()[0][:80]}" if result.get("error") else status
    return f"  {arm}:{number:<4} {done:>3}/{epochs} epochs  {shown:<19} {ending}".rstrip()


def arm_line(arm: str, done: int, total: int, running: int, best: float | None, metric: str = "val_loss") -> str:
    width = 20
    filled = int(width * done / max(total, 1))
    best_text = f", best {metric} {best:.6f}" if best is not None and math.isfinite(best) else ""
    return f"  {arm:<16} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} trials, {running} running{best_text}"
