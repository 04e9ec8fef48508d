"""Which tunekae produced a result: its version and, in a git checkout, the commit (and whether
tracked files differed from it), so that a study says exactly what code made it."""
from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance() -> dict:
    """{"version", "commit", "modified"}: commit None outside a git checkout (an installed wheel);
    modified True when tracked files differ from that commit."""
    try:
        version = metadata.version("tunekae")
    except metadata.PackageNotFoundError:
        version = None
    commit = _git("rev-parse", "HEAD") if (ROOT / ".git").exists() else None
    modified = bool(_git("status", "--porcelain", "--untracked-files=no")) if commit else None
    return {"version": version, "commit": commit, "modified": modified}


def describe(info: dict | None) -> str:
    """'tunekae 0.1.0 at commit 1a2b3c4d (with local changes)' for reports."""
    if not info:
        return "tunekae (version not recorded)"
    text = f"tunekae {info.get('version') or '?'}"
    if info.get("commit"):
        text += f" at commit {info['commit'][:10]}" + (" (with uncommitted changes)" if info.get("modified") else "")
    return text
