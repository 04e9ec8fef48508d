"""Ctrl-C during a search: the first stops it cleanly, a second at once.

Tune's own SIGINT handler is turned off (TUNE_DISABLE_SIGINT_HANDLER) while the search runs, and
ours takes its place: the first Ctrl-C is remembered and the search's Tune Stopper ends the
experiment at Tune's next step (trials under way stop, nothing more starts); a second one raises
KeyboardInterrupt at once. Either way the studies hold every trial that had ended, for --resume.
"""
from __future__ import annotations

import os
import signal
import threading

from ray import tune


class CtrlC:
    def __init__(self):
        self.pressed = False
        self._previous = None
        self._env = None

    def stopper(self) -> tune.Stopper:
        outer = self

        class StopOnCtrlC(tune.Stopper):
            def __call__(self, trial_id, result) -> bool:
                return False

            def stop_all(self) -> bool:
                return outer.pressed

        return StopOnCtrlC()

    def __enter__(self) -> "CtrlC":
        # Signal handlers belong to the main thread; elsewhere Tune's default stays.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            if self._env is None:
                os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
            else:
                os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = self._env

    def _handle(self, signum, frame) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True
