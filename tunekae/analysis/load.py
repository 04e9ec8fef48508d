"""Reading and validating a results dir (layout: docs/ARCHITECTURE.md, "Results directory").

`load(dir)` returns a Results with run.json as a dict and the CSVs as DataFrames; anything a
user can get wrong (not a results dir, empty results, unreadable files) raises UserError with
one sentence naming the fix. The analysis never imports Ray or torch from here.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..cli_support import check_writable_dir
from ..errors import UserError
from ..results import check_search_output, read_results, read_run_json
from ..status import FINISHED

CONFIRM_HINT = "run `python -m tunekae confirm {dir}` first"   # {dir}: shell-quoted (confirm_hint)


def confirm_hint(path: Path) -> str:
    return CONFIRM_HINT.format(dir=shlex.quote(str(path)))
REQUIRED = ("arm", "family", "status", "val_loss", "params")


@dataclass
class Results:
    path: Path
    run: dict
    results: pd.DataFrame                         # one row per trial, with a boolean `full_budget`
    confirmed: pd.DataFrame | None = None         # one row per configuration (mean/std over seeds)
    confirmed_runs: pd.DataFrame | None = None    # one row per configuration and seed

    @property
    def full(self) -> pd.DataFrame:
        return self.results[self.results["full_budget"]]

    @property
    def regression(self) -> bool:
        """A function-fitting run (function:NAME): models map x to f(x); there are no images."""
        return str(self.run.get("dataset", "")).startswith("function:")

    @property
    def pruned(self) -> bool:
        """Some trial recorded what pruning kept (spaces that set prune=True)."""
        return "pruned_params" in self.results and bool(self.results["pruned_params"].notna().any())

    def require_full(self) -> pd.DataFrame:
        full = self.full
        if not len(full):
            counts = ", ".join(f"{n} {s}" for s, n in self.results["status"].value_counts().items())
            stopped = int(self.results["stopped_early"].sum())
            raise UserError(f"no trial in {self.path} ran the full epoch budget ({len(self.results)} trials: "
                            f"{counts}; {stopped} stopped early by ASHA); run a longer search")
        return full

    @property
    def notes(self) -> list[str]:
        """What a reader of any table or figure of this dir must know: trials left out of them,
        and an interrupted confirm."""
        out = []
        loss = pd.to_numeric(self.results["val_loss"], errors="coerce")
        odd = self.results[self.results["status"].isin(FINISHED) & ~np.isfinite(loss)]
        if len(odd):
            arms = ", ".join(f"{a} {n}" for a, n in odd.groupby("arm").size().items())
            out.append(f"{len(odd)} trial(s) ended with a validation loss that is not a number ({arms}); they are "
                       f"left out of the fronts and tables")
        if (self.path / "models.partial").exists():
            out.append("a confirm was interrupted (models.partial/ holds its unfinished models): the confirmed "
                       "results and models used here are those of the last confirm that finished"
                       + ("" if self.confirmed is not None else ", and none did"))
        return out

    def require_confirmed_runs(self) -> pd.DataFrame:
        if self.confirmed_runs is None or not len(self.confirmed_runs):
            raise UserError(f"no confirmed_runs.csv in {self.path}; " + confirm_hint(self.path))
        return self.confirmed_runs

    def budgets(self) -> list[dict]:
        """[{label, params}] sorted by params: from run.json, else from results.csv."""
        budgets = self.run.get("budgets") or []
        out = []
        for b in budgets:
            if isinstance(b, dict):
                out.append({"label": str(b.get("label", b.get("params"))), "params": int(b["params"])})
            else:                                   # tolerate [label, params] pairs
                out.append({"label": str(b[0]), "params": int(b[1])})
        if not out and "budget" in self.results:
            pairs = self.results[["budget", "budget_label"]].dropna().drop_duplicates()
            out = [{"label": str(r.budget_label), "params": int(r.budget)} for r in pairs.itertuples()]
        return sorted(out, key=lambda b: b["params"])

    def budget_label(self, budget) -> str:
        for b in self.budgets():
            if b["params"] == int(budget):
                return b["label"]
        return f"{int(budget):,}"


def _to_bool(series: pd.Series) -> pd.Series:
    if series.dtype == bool:
        return series
    mapped = series.map(lambda v: str(v).strip().lower() in ("true", "1", "yes", "1.0"))
    return mapped.astype(bool)


def _clean_label(label):
    """Budget labels are text ('4x', '25888'); a column pandas once held as floats wrote '25888.0'."""
    text = str(label)
    return text[:-2] if text.endswith(".0") and text[:-2].isdigit() else label


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype={"trial_id": str, "arm": str, "family": str, "budget_label": str,
                                      "hidden": str})
        if "budget_label" in df:
            df["budget_label"] = df["budget_label"].map(_clean_label)
        return df
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not a readable CSV ({type(e).__name__}); re-run the command that wrote it")


def load(directory) -> Results:
    path = Path(directory)
    check_search_output(path)
    run = read_run_json(path)
    read_results(path, run)          # whole, and the table the search recorded
    results = _read_csv(path / "results.csv")
    if not len(results):
        raise UserError(f"{path / 'results.csv'} has no trials; the search recorded nothing (run it again)")
    absent = [c for c in REQUIRED if c not in results]
    if absent:
        raise UserError(f"{path / 'results.csv'} lacks column(s) {', '.join(absent)}; "
                        f"it was not written by `python -m tunekae search`")
    results = _normalise(results, run)
    out = Results(path=path, run=run, results=results)
    for name in ("confirmed", "confirmed_runs"):
        f = path / f"{name}.csv"
        if f.is_file():
            df = _read_csv(f)
            setattr(out, name, df if len(df) else None)
    return out


def _normalise(df: pd.DataFrame, run: dict) -> pd.DataFrame:
    df = df.copy()
    epochs = run.get("epochs")
    defaults = {"stopped_early": False, "epochs_completed": np.nan, "epochs_budget": epochs,
                "train_seconds": np.nan, "seconds_per_epoch": np.nan, "budget": np.nan,
                "budget_label": None, "trial_id": None}
    for col, value in defaults.items():
        if col not in df:
            df[col] = value
    df["trial_id"] = df["trial_id"].fillna(pd.Series([f"row{i}" for i in range(len(df))], index=df.index))
    df["status"] = df["status"].fillna("error").astype(str)
    df["stopped_early"] = _to_bool(df["stopped_early"].fillna(False))
    for col in ("val_loss", "params", "train_seconds", "seconds_per_epoch", "epochs_completed", "epochs_budget",
                "budget"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    if epochs is not None:
        df["epochs_budget"] = df["epochs_budget"].fillna(epochs)
    # collapsed trials ran the full budget: their loss is real (and never the best)
    df["full_budget"] = (df["status"].isin(FINISHED) & ~df["stopped_early"]
                         & (df["epochs_completed"] >= df["epochs_budget"])
                         & np.isfinite(df["val_loss"]) & np.isfinite(df["params"]))
    if df["budget_label"].isna().any():
        labels = {int(b["params"]): str(b["label"]) for b in run.get("budgets") or [] if isinstance(b, dict)}
        fill = df["budget"].map(lambda b: labels.get(int(b), f"{int(b):,}") if pd.notna(b) else "?")
        df["budget_label"] = df["budget_label"].fillna(fill)
    return df


def hp_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("hp_")]


def output_dir(res: Results, out) -> Path:
    """--out, else DIR/analysis; created (UserError when it cannot be)."""
    target = Path(out) if out else res.path / "analysis"
    check_writable_dir(target, "--out")
    target.mkdir(parents=True, exist_ok=True)
    return target
