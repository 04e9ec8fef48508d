"""Is Tune's saved state of an arm whole? Checked before a resume (part of the search layer).

Tune saves an experiment's state (experiment_state-*.json, the search generator's and the
searcher's pickles, tuner.pkl) in a staging folder and then copies the files to the storage
path one by one, not atomically. A kill -9 during that copy leaves a file there empty or cut
short (a test caught it: an empty searcher-state pickle). Tuner.restore then only logs "Failed
to restore the run state" and goes on with a half-restored searcher, and Tune waited for a
trial from it for 600 s. The same kill can leave whole files from two different saves, out of
step with one another: a searcher that never saw a trial Tune restores (its reports then fail),
or a concurrency limiter holding a trial Tune no longer has (with one trial at a time, Tune then
waits forever). So a resume checks the files first. When they are damaged or out of step, the
search keeps them aside and starts the arm again from its Optuna journal and trial logs
(search.make_tuner), which is always safe.

out_of_step reads Tune's and OptunaSearch's saved attributes (Ray 2.60). A Ray that saves them
differently makes every resume take that safe way; the resume tests would show it.

Paths are local folders or URIs that pyarrow opens (a cloud --storage), as Tune's own are.
"""
from __future__ import annotations

import json
import pickle
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
    return [i.base_name for i in infos if i.type == pafs.FileType.File
            and not i.base_name.startswith(".") and i.base_name.endswith((".json", ".pkl"))]


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


def newest_state(path: str) -> dict[str, bytes]:
    """The files Tune reads on restore, by name: the newest of each kind (experiment_state,
    searcher-state, ...), each read once."""
    fs, base = _fs(path)
    out = {}
    for name in _newest(_state_files(fs, base)).values():
        with fs.open_input_stream(f"{base}/{name}") as f:
            out[name] = f.read()
    return out


def _newest(names) -> dict[str, str]:
    """Of each kind of state file, the newest name."""
    newest: dict[str, str] = {}
    for name in sorted(names):                   # a later session's stamp sorts later
        newest[_SESSION.split(name)[0]] = name
    return newest


def problems(files: dict[str, bytes]) -> tuple[str, list[str]]:
    """('damaged', reasons) when a file Tune reads is not whole, else ('out of step', reasons),
    with no reasons when the state can be restored. `files`: state files by name."""
    files = {name: files[name] for name in _newest(files).values()}
    broken = _damaged(files)
    return ("damaged", broken) if broken else ("out of step", _out_of_step(files))


def damaged(path: str) -> list[str]:
    """The damaged files among those Tune reads on restore, each as 'name (why)'; [] when the
    state is whole."""
    return _damaged(newest_state(path))


def out_of_step(path: str) -> list[str]:
    """Why whole state files cannot be from one save; [] when they agree."""
    return _out_of_step(newest_state(path))


def _damaged(files: dict[str, bytes]) -> list[str]:
    return [f"{name} ({'empty' if not data else f'cut short at {len(data):,} bytes'})"
            for name, data in files.items() if not is_whole(data)]


def _out_of_step(files: dict[str, bytes]) -> list[str]:
    """In one save, the search generator has created exactly the experiment's trials, the
    searcher knows exactly those, and the concurrency limiter's live trials are among them."""
    newest = _newest(files)
    missing = [kind for kind in ("experiment_state", "search_gen_state", "searcher-state") if kind not in newest]
    if missing:
        return [f"no {', '.join(missing)} file"]
    try:
        experiment = json.loads(files[newest["experiment_state"]])
        trials = {json.loads(t[0])["trial_id"] for t in experiment["trial_data"]}
        generator = pickle.loads(files[newest["search_gen_state"]])
        counter = int(generator["counter"])
        live = set(generator.get("name:ConcurrencyLimiter", {}).get("live_trials", ()))
        known = set(pickle.loads(files[newest["searcher-state"]])["_ot_trials"])
    except Exception as e:   # noqa: BLE001 - whatever the reason, Tune could not restore it either
        return [f"unreadable ({type(e).__name__}: {e})"]
    out = []
    if counter != len(trials):
        out.append(f"{newest['search_gen_state']} counts {counter} trials, {newest['experiment_state']} "
                   f"has {len(trials)}")
    if live - trials:
        out.append(f"the concurrency limiter holds {len(live - trials)} trial(s) the experiment lacks")
    if known != trials:
        out.append(f"{newest['searcher-state']} knows {len(known)} trials, {len(known & trials)} of the "
                   f"experiment's {len(trials)}")
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
