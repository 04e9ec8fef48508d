"""Is Tune's saved state of an arm whole? Checked before a resume (part of the search layer).

Tune saves an experiment's state (experiment_state-*.json, the search generator's and the
searcher's pickles, tuner.pkl) in a staging folder and then copies the files to the storage
path one by one, not atomically. A kill -9 during that copy leaves a file there empty or cut
short (a test caught it: an empty searcher-state pickle). Tuner.restore then only logs "Failed
to restore the run state" and goes on with a half-restored searcher, and Tune waited for a
trial from it for 600 s. So a resume checks the files first. When one is damaged, the search
keeps them aside and starts the arm again from its Optuna journal and trial logs
(search.make_tuner).

Paths are local folders or URIs that pyarrow opens (a cloud --storage), as Tune's own are.
"""
from __future__ import annotations

import json
import pickletools
import re
import time

import pyarrow.fs as pafs

_SESSION = re.compile(r"-\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}")   # Tune's session stamp in a name
ASIDE_PREFIX = "damaged-state-"


def _fs(path: str):
    return pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path.rstrip("/"))


def _state_files(fs, base: str) -> list[str]:
    """Names of the state files directly in the experiment folder (not the trials' folders)."""
    infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.File
                  and not i.base_name.startswith(".") and i.base_name.endswith((".json", ".pkl")))


def is_whole(data: bytes) -> bool:
    """JSON that parses, or a pickle stream that reaches its STOP opcode (read, never run)."""
    try:
        json.loads(data)
        return True
    except ValueError:
        pass
    try:
        return any(op.name == "STOP" for op, _, _ in pickletools.genops(data))
    except Exception:   # noqa: BLE001 - any malformed stream is damaged
        return False


def damaged(path: str) -> list[str]:
    """The damaged files among those Tune reads on restore (the newest of each kind), each as
    'name (why)'; [] when the state is whole."""
    fs, base = _fs(path)
    newest: dict[str, str] = {}
    for name in _state_files(fs, base):          # sorted: a later session's stamp sorts later
        newest[_SESSION.split(name)[0]] = name
    out = []
    for name in newest.values():
        with fs.open_input_stream(f"{base}/{name}") as f:
            data = f.read()
        if not is_whole(data):
            out.append(f"{name} ({'empty' if not data else f'cut short at {len(data):,} bytes'})")
    return out


def set_aside(path: str) -> str:
    """Move every state file of the experiment folder into a new `damaged-state-<time>` folder
    inside it, so that Tune starts afresh there and nothing is deleted; returns that folder."""
    fs, base = _fs(path)
    folder = f"{ASIDE_PREFIX}{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    fs.create_dir(f"{base}/{folder}")
    for name in _state_files(fs, base):
        fs.move(f"{base}/{name}", f"{base}/{folder}/{name}")
    return f"{path.rstrip('/')}/{folder}"
