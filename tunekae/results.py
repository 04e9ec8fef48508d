"""Tidy results: one row per trial, from each trial's final report and configuration (no Ray)."""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Callable

import pandas as pd

from .errors import UserError
from .selection import Selection, rank
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
                        f"`{resume_command(path)}`")
    if missing:
        raise UserError(f"{path} is not a tunekae results dir (no {' or '.join(missing)}); "
                        f"pass the output dir of `python -m tunekae search`")


def resume_command(output: Path) -> str:
    """The command that continues (or rewrites the results of) the search in `output`."""
    return f"python -m tunekae search --output {shlex.quote(str(output))} --resume"


def read_run_json(path: Path, to_resume: bool = False) -> dict:
    """DIR/run.json as the search wrote it, else a UserError naming what is wrong with it
    (`to_resume`: it must hold the search's options too)."""
    file = path / "run.json"
    try:
        run = json.loads(file.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is not a tunekae search output (no run.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{file} is not valid JSON ({getattr(e, 'msg', e)}), as a crash or a full disk leaves it; "
                        f"nothing in it can be trusted: run the search again with another --output") from None
    if not isinstance(run, dict):
        raise UserError(f"{file} does not hold a JSON object; run the search again with another --output")
    if to_resume and not isinstance(run.get("options"), dict):
        raise UserError(f"{file} holds no options of the search to resume it with; run the search again with "
                        f"another --output")
    return run


def read_results(path: Path, run: dict) -> pd.DataFrame:
    """DIR/results.csv, checked against the per-arm summary run.json recorded when the search
    ended: a table cut short (a row missing, a value cut inside) would otherwise be analysed as if
    whole. UserError naming the first disagreement."""
    file = path / "results.csv"
    resume = f"the search's studies still hold every trial: `{resume_command(path)}` writes it again"
    with open(file, "rb") as f:   # the writer ends every row with a newline: a cut one has none
        f.seek(max(0, f.seek(0, os.SEEK_END) - 1))
        if f.read(1) not in (b"\n", b""):
            raise UserError(f"{file} ends in the middle of a row: it was cut short; {resume}")
    try:
        rows = pd.read_csv(file, dtype={"trial_id": str, "arm": str, "family": str, "budget_label": str,
                                        "hidden": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"{file} is not a readable table ({type(e).__name__}); {resume}") from None
    summary = run.get("summary") or {}
    for arm, s in summary.items():
        mine = rows[rows["arm"] == arm] if "arm" in rows else rows.iloc[:0]
        problem = None
        if len(mine) != s.get("trials", len(mine)):
            problem = f"has {len(mine)} rows of arm {arm}, run.json counts {s['trials']} trials"
        elif s.get("best_val_loss") is not None:
            best = summarize_arm(mine, int(run.get("epochs") or 0),
                                 Selection.from_dict(run.get("selection"))).get("best_val_loss")
            if best is None or abs(best - s["best_val_loss"]) > 1e-9 * max(1.0, abs(s["best_val_loss"])):
                problem = f"gives arm {arm} a best val_loss of {best}, run.json {s['best_val_loss']}"
        if problem:
            raise UserError(f"{file} {problem}: the table is cut short or was edited; {resume}")
    extra = set(rows["arm"]) - set(summary) if summary and "arm" in rows else set()
    if extra:
        raise UserError(f"{file} has rows of arms run.json does not know ({', '.join(sorted(map(str, extra)))}); "
                        f"it is not this search's table")
    return rows


# Columns every row has, in this order; hyperparameters (hp_*) and metrics follow.
CORE = ["space", "dataset", "arm", "family", "layer", "variant", "budget", "budget_label", "latent_dim", "train_size",
        "trial_id",
        "study_trial", "status", "stopped_early", "epochs_completed", "epochs_budget", "depth", "hidden", "params", "flops",
        "val_loss", "train_loss", "train_seconds", "seconds_per_epoch", "peak_mem_mb"]
NOT_HP = {"depth", "study_trial", "arm"}   # config keys that are not hyperparameters
# keys of a trial's report that are bookkeeping, not results
NOT_METRICS = {"arm", "family", "budget", "epoch", "pid", "started", "reported", "traceback"}


def trial_row(ctx, space_name: str, epochs: int, number: int, config: dict, result: dict, full_size: int) -> dict:
    """One results.csv row: the trial's arm, its final report's metrics and its hyperparameters.
    full_size: the training split's size (what an arm without a train_size trains on)."""
    row = {"space": space_name, "dataset": None, "arm": ctx.key, "family": ctx.arm.name, "layer": ctx.arm.family,
           "variant": ctx.arm.variant, "budget": ctx.budget, "budget_label": ctx.budget_label,
           "latent_dim": ctx.latent_dim, "train_size": ctx.train_size or full_size,
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


def infeasible_row(ctx, space_name: str, epochs: int, full_size: int) -> dict:
    """The one row of an arm that no depth or shape can build at its budget."""
    return {"space": space_name, "arm": ctx.key, "family": ctx.arm.name, "layer": ctx.arm.family,
            "variant": ctx.arm.variant, "budget": ctx.budget, "budget_label": ctx.budget_label,
            "latent_dim": ctx.latent_dim, "train_size": ctx.train_size or full_size, "trial_id": "",
            "status": "infeasible", "stopped_early": False, "epochs_completed": 0, "epochs_budget": epochs,
            "error": "no depth/shape of this arm fits the budget"}


def table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=CORE)
    return df[[c for c in CORE if c in df] + sorted(c for c in df if c not in CORE)]


def summarize_arm(rows: pd.DataFrame, epochs: int, selection=None) -> dict:
    """An arm's counts by outcome and its best full-budget trial by what the search selected on
    (selection.rank: a collapsed one only when every full-budget trial collapsed: the count says
    so). best_val_loss is that trial's val_loss whatever it was selected on."""
    selection = selection or Selection()
    full = rows[rows["status"].isin(FINISHED) & (rows["epochs_completed"] >= epochs)] if len(rows) else rows
    feasible = rows[rows["status"] != "infeasible"] if "status" in rows else rows
    ranked = rank(full, selection) if len(full) else full
    best = ranked.iloc[0] if len(ranked) else None
    extra = {}
    if not selection.is_default() and best is not None:
        extra = {f"best_{o.metric}": float(best[o.metric]) for o in selection.objectives if o.metric != "val_loss"}
        if selection.multi:
            extra["pareto_set"] = int(full["pareto_optimal"].fillna(False).astype(bool).sum()) \
                if "pareto_optimal" in full else 0
    return {**extra, "trials": int(len(rows)), "feasible": int(len(feasible)), "full_budget": int(len(full)),
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
    chosen = [(k[len("best_"):], v) for k, v in s.items() if k.startswith("best_val_") and k != "best_val_loss"]
    by = "".join(f" {name} {v:.5g}," for name, v in chosen)     # what it was selected on, when not val_loss
    front = f"Pareto set of {s['pareto_set']}; " if "pareto_set" in s else ""
    best = f"{front}best{by} val_loss {s['best_val_loss']:.5f} (trial {s['best_trial']}, hidden {hidden})" \
        if s.get("best_val_loss") is not None else "no full-budget trial"
    collapsed = f"{s['collapsed']} collapsed, " if s.get("collapsed") else ""
    return (f"{key}: {s['trials']} trials, {s['feasible']} feasible, {s['full_budget']} full-budget, "
            f"{s['diverged']} diverged, {collapsed}{s['errors']} errors; {best}")
