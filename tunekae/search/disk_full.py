"""A full disk under a search: the user's to fix, so it ends the search with one line (the
command's own) and a resume command, not with the tracebacks Tune logs on the way (no Ray here)."""
from __future__ import annotations

import errno
import logging
from contextlib import contextmanager

FULL = (errno.ENOSPC, errno.EDQUOT)
SIGNS = ("No space left on device", "Disk quota exceeded", "[Errno 28]", "[errno 28]")


def disk_full(error: BaseException) -> OSError | None:
    """The 'no space left on device' error behind `error`, if any (Ray and Optuna may wrap it)."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in FULL:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class _DropDiskFull(logging.Filter):
    """Drops a log record about a full disk: Tune logs one, with a traceback, for each save and
    trial that hit it, and a trial's error crosses processes as text only (RayTaskError)."""
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            if disk_full(record.exc_info[1]):
                return False
            text += str(record.exc_info[1])
        return not any(sign in text for sign in SIGNS)


@contextmanager
def quiet_disk_full(logger: str = "ray"):
    """Within: records about a full disk that reach the handlers of `logger` are dropped. Filters
    sit on the handlers, since a logger's own filters do not see its children's records."""
    handlers = logging.getLogger(logger).handlers + logging.getLogger().handlers
    drop = _DropDiskFull()
    for handler in handlers:
        handler.addFilter(drop)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(drop)
