"""Tidy results: one row per trial, from each trial's final report and configuration (no Ray)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pandas as pd

from .errors import UserError
from .status import FINISHED


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
NOT_HP = {"depth", "study_trial", "arm"}   # config keys that are not hyperparameters
# keys of a trial's report that are bookkeeping, not results
NOT_METRICS = {"arm", "family", "budget", "epoch", "pid", "started", "reported", "traceback"}


def trial_row(ctx, space_name: str, epochs: int, number: int, config: dict, result: dict) -> dict:
    """One results.csv row: the trial's arm, its final report's metrics and its hyperparameters."""
    row = {"space": space_name, "dataset": None, "arm": ctx.key, "family": ctx.arm.name, "layer": ctx.arm.family,
           "variant": ctx.arm.variant, "budget": ctx.budget, "budget_label": ctx.budget_label,
           "trial_id": result.get("trial_id") or "", "study_trial": number, "epochs_budget": epochs}
    for k, v in result.items():
        if k not in NOT_METRICS and k not in row and (isinstance(v, (int, float, str, bool)) or v is None):
            row[k] = v
    for k, v in config.items():
        if k not in NOT_HP and not k.startswith("shape_d"):
            row[f"hp_{k}"] = v
    row["status"] = result.get("status") or "error"
    row["epochs_completed"] = completed = int(result.get("epochs_completed") or 0)
    row["stopped_early"] = bool(row["status"] == "ok" and completed < epochs)
    return row


def infeasible_row(ctx, space_name: str, epochs: int) -> dict:
    """The one row of an arm that no depth or shape can build at its budget."""
    return {"space": space_name, "arm": ctx.key, "family": ctx.arm.name, "layer": ctx.arm.family,
            "variant": ctx.arm.variant, "budget": ctx.budget, "budget_label": ctx.budget_label, "trial_id": "",
            "status": "infeasible", "stopped_early": False, "epochs_completed": 0, "epochs_budget": epochs,
            "error": "no depth/shape of this arm fits the budget"}


def table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=CORE)
    return df[[c for c in CORE if c in df] + sorted(c for c in df if c not in CORE)]


def summarize_arm(rows: pd.DataFrame, epochs: int) -> dict:
    """An arm's counts by outcome and its best full-budget trial (a collapsed one only when every
    full-budget trial collapsed: the count says so)."""
    full = rows[rows["status"].isin(FINISHED) & (rows["epochs_completed"] >= epochs)] if len(rows) else rows
    feasible = rows[rows["status"] != "infeasible"] if "status" in rows else rows
    best = full.loc[full["val_loss"].idxmin()] if len(full) else None
    return {"trials": int(len(rows)), "feasible": int(len(feasible)), "full_budget": int(len(full)),
            "diverged": int((rows.get("status") == "diverged").sum()) if len(rows) else 0,
            "collapsed": int((rows.get("status") == "collapsed").sum()) if len(rows) else 0,
            "errors": int((rows.get("status") == "error").sum()) if len(rows) else 0,
            "best_val_loss": float(best["val_loss"]) if best is not None else None,
            "best_trial": str(best["trial_id"]) if best is not None else None,
            "best_hidden": str(best.get("hidden")) if best is not None else None}


def write_results(output: Path, rows: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """results.csv: every trial of every arm."""
    rows = rows.copy()
    rows["dataset"] = dataset
    write_atomic(output / "results.csv", lambda tmp: rows.to_csv(tmp, index=False))
    return rows


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
