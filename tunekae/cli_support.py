"""What every tunekae command line shares: usage errors and UserError become one line on
stderr and exit status 2 (no traceback); Ctrl-C exits 130."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Callable

from .errors import UserError

DATA_DIR_HELP = ("data root for torchvision datasets, the only place looked at (else $TUNEKAE_DATA, else a cache "
                 "dir; Fashion-MNIST also from Debian's dataset-fashion-mnist)")


MAX_SEED = 2**31 - 1   # numpy and scikit-learn take 0..2**32-1; a search adds trial numbers to it


def check_seed(seed: int) -> None:
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"--seed must be between 0 and {MAX_SEED}; got {seed}")


def check_writable_dir(path: Path, flag: str = "--output") -> None:
    """UserError (one line) unless `path` is, or can be made, a directory this process writes in:
    checked before any work, so that nothing is computed and then lost."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a directory")
    parent = next(p for p in [path, *path.parents] if p.exists())
    try:   # really creating something: os.access says yes to root even in /proc or a read-only mount
        tempfile.TemporaryDirectory(dir=parent, prefix=".tunekae-probe-").cleanup()
    except OSError:
        raise UserError(f"{flag} {path}: cannot create or write in {parent}") from None


def check_writable_file(path: Path, flag: str) -> None:
    """The same for a file to be written (e.g. --save model.pt)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{flag} {path} is a directory; give a file name such as {path / 'model.pt'}")
    check_writable_dir(path.parent, flag)


def option_defaults(add_arguments: Callable[[argparse.ArgumentParser], None]) -> dict:
    """dest -> default of a command's options: what a user left out compares equal to these."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args([]))


class OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def run_guarded(prog: str, command: Callable[[], int]) -> int:
    try:
        return int(command() or 0)
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
