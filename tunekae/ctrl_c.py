"""Ctrl-C during a search: stop cleanly, and stop everything.

Tune catches SIGINT itself, saves its state one last time and returns from Tuner.fit() as if
the arm had ended, so a search of several arms would go on with the next arm. Here Tune's own
SIGINT handler is turned off (TUNE_DISABLE_SIGINT_HANDLER) and ours takes its place: during an
arm, the first Ctrl-C asks Tune for the same graceful stop through SIGUSR1 (which Tune always
handles) and is remembered, so the search stops after fit() returns; a second Ctrl-C, or one
between arms, raises KeyboardInterrupt at once.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager


class CtrlC:
    def __init__(self):
        self.pressed = False
        self._in_tune = False
        self._previous = None
        self._env = None

    def __enter__(self) -> "CtrlC":
        # Signal handlers belong to the main thread; elsewhere (or without SIGUSR1) Tune's default stays.
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1"):
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

    @contextmanager
    def inside_tune(self):
        """Around Tuner.fit(): only there does SIGUSR1 have Tune's handler."""
        self._in_tune = True
        try:
            yield
        finally:
            self._in_tune = False

    def _handle(self, signum, frame) -> None:
        if self.pressed or not self._in_tune:
            raise KeyboardInterrupt
        self.pressed = True
        os.kill(os.getpid(), signal.SIGUSR1)
