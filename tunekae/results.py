"""Tidy results: Tune's ResultGrid -> one row per trial (no Ray import needed to read them)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pandas as pd

from .errors import UserError


def check_search_output(path: Path) -> None:
    """`path` holds a finished search (run.json and results.csv), else a UserError that says
    what it is instead. run.json is written first and results.csv once every arm is done, so
    a dir with only run.json is an interrupted search: point at --resume."""
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; pass the output dir of `python -m tunekae search`")
    missing = [n for n in ("run.json", "results.csv") if not (path / n).is_file()]
    if missing == ["results.csv"]:
        raise UserError(f"the search in {path} has not finished (no results.csv yet); finish it with "
                        f"`python -m tunekae search --output {path} --resume`")
    if missing:
        raise UserError(f"{path} is not a tunekae results dir (no {' or '.join(missing)}); "
                        f"pass the output dir of `python -m tunekae search`")


# Columns every row has, in this order; hyperparameters (hp_*) and metrics follow.
CORE = ["space", "dataset", "arm", "family", "layer", "variant", "budget", "budget_label", "trial_id",
        "study_trial", "status", "stopped_early", "epochs_completed", "epochs_budget", "depth", "hidden", "params", "flops",
        "val_loss", "train_loss", "train_seconds", "seconds_per_epoch", "peak_mem_mb"]
NOT_HP = {"depth", "study_trial"}   # config keys that are not hyperparameters
# Tune's own bookkeeping keys in every report: not results.
TUNE_KEYS = {"arm", "family", "budget", "config", "trial_id", "traceback", "checkpoint_dir_name", "date", "done",
             "experiment_tag", "hostname", "iterations_since_restore", "node_ip", "pid", "training_iteration",
             "should_checkpoint", "epoch"}


def arm_rows(grid, ctx, space, epochs: int) -> pd.DataFrame:
    rows = []
    for result in grid:
        metrics = dict(result.metrics or {})
        config = dict(result.config or {})
        row = {"space": space.name, "dataset": None, "arm": ctx.key, "family": ctx.arm.name,
               "layer": ctx.arm.family, "variant": ctx.arm.variant, "budget": ctx.budget,
               "budget_label": ctx.budget_label, "trial_id": metrics.get("trial_id") or _trial_id(result),
               "epochs_budget": epochs}
        for k, v in metrics.items():
            if k in TUNE_KEYS or k.startswith(("time_", "timestamp")):
                continue
            if isinstance(v, (int, float, str, bool)) or v is None:
                row[k] = v
        for k, v in config.items():
            if k not in NOT_HP and not k.startswith("shape_d"):
                row[f"hp_{k}"] = v
        row["study_trial"] = config.get("study_trial")   # the trial's number in studies/<arm>.journal
        status = metrics.get("status")
        if result.error is not None:
            status, row["error"] = "error", f"{type(result.error).__name__}: {result.error}"[:500]
        row["status"] = status or "error"
        completed = int(metrics.get("epochs_completed") or 0)
        row["epochs_completed"] = completed
        row["stopped_early"] = bool(row["status"] == "ok" and completed < epochs)
        rows.append(row)
    df = pd.DataFrame(rows)
    return df[[c for c in CORE if c in df] + sorted(c for c in df if c not in CORE)]


def _trial_id(result) -> str:
    """Tune's trial id from its folder name (trainable_<id>_<index>_...), for trials that never reported."""
    parts = Path(result.path).name.split("_") if result.path else []
    return "_".join(parts[1:3]) if len(parts) >= 3 else "_".join(parts)


def summarize_arm(rows: pd.DataFrame, epochs: int) -> dict:
    full = rows[(rows.get("status") == "ok") & (rows.get("epochs_completed", 0) >= epochs)] if len(rows) else rows
    feasible = rows[rows["status"] != "infeasible"] if "status" in rows else rows
    best = full.loc[full["val_loss"].idxmin()] if len(full) else None
    return {"trials": int(len(rows)), "feasible": int(len(feasible)), "full_budget": int(len(full)),
            "diverged": int((rows.get("status") == "diverged").sum()) if len(rows) else 0,
            "collapsed": int((rows.get("status") == "collapsed").sum()) if len(rows) else 0,
            "errors": int((rows.get("status") == "error").sum()) if len(rows) else 0,
            "best_val_loss": float(best["val_loss"]) if best is not None else None,
            "best_trial": str(best["trial_id"]) if best is not None else None,
            "best_hidden": str(best.get("hidden")) if best is not None else None}


def write_results(output: Path, space) -> pd.DataFrame:
    """Concatenate arms/*.csv into results.csv (and results.parquet)."""
    meta = json.loads((output / "run.json").read_text())
    frames = [pd.read_csv(p) for p in sorted((output / "arms").glob("*.csv"))]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CORE)
    table["space"] = space.name
    table["dataset"] = meta.get("dataset")
    table = table[[c for c in CORE if c in table] + sorted(c for c in table if c not in CORE)]
    write_atomic(output / "results.csv", lambda tmp: table.to_csv(tmp, index=False))
    return table


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """write(tmp) then rename: a reader (or a resume after kill -9) sees the old file or the whole new one."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def format_summary_line(key: str, s: dict) -> str:
    hidden = s.get("best_hidden")
    hidden = "none" if hidden in (None, "", "nan") else hidden
    best = f"best val_loss {s['best_val_loss']:.5f} (trial {s['best_trial']}, hidden {hidden})" \
        if s.get("best_val_loss") is not None else "no full-budget trial"
    collapsed = f"{s['collapsed']} collapsed, " if s.get("collapsed") else ""
    return (f"{key}: {s['trials']} trials, {s['feasible']} feasible, {s['full_budget']} full-budget, "
            f"{s['diverged']} diverged, {collapsed}{s['errors']} errors; {best}")
