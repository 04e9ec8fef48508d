"""`importance`: Optuna hyperparameter importances (fANOVA, seeded) per arm from the search's
studies (DIR/studies.journal, or the database --optuna-storage named; study name = arm).

Which trials count: every COMPLETE trial whose value is finite and below the sentinel loss
(1e6) that infeasible, diverged and crashed trials report, which would swamp the variance.
ASHA-stopped trials are COMPLETE in Optuna with their last (truncated) loss; they are kept by
default (they are the bad configurations the importances should explain) and dropped with
--full-only (last reported step < the epoch budget). Parameters that only some trials have
(define-by-run shapes per depth) are left out, as Optuna does.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ..errors import UserError
from .load import Results
from .style import family_color, plt, save, sort_families

SENTINEL = 1e6          # tunekae.train.DIVERGED_LOSS, restated to keep torch out of the analysis
MIN_TRIALS = 3


def search_storage(res: Results):
    """The search's Optuna storage: the database run.json names, else DIR/studies.journal."""
    import optuna
    url = (res.run.get("options") or {}).get("optuna_storage")
    if url:
        return optuna.storages.RDBStorage(url)
    journal = res.path / "studies.journal"
    if not journal.exists():
        raise UserError(f"no studies.journal in {res.path}; the search writes every arm's Optuna study there")
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))


def usable_trials(study, epochs: int | None, full_only: bool) -> tuple[list, int]:
    """(trials that count, how many of them stopped before the epoch budget)."""
    from optuna.trial import TrialState
    keep, short = [], 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.value is None or not math.isfinite(t.value) or t.value >= SENTINEL:
            continue
        last = max(t.intermediate_values) if t.intermediate_values else None
        stopped = bool(epochs and last is not None and last < epochs)
        if stopped and full_only:
            continue
        short += stopped
        keep.append(t)
    return keep, short


def arm_importance(study, epochs: int | None, full_only: bool = False) -> dict:
    """{'importances': {param: value}, 'n_trials', 'n_stopped_early', 'note'} for one arm's study."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances
    trials, short = usable_trials(study, epochs, full_only)
    out = {"importances": {}, "n_trials": len(trials), "n_stopped_early": short, "note": ""}
    if len(trials) < MIN_TRIALS:
        out["note"] = f"too few usable completed trials ({len(trials)} < {MIN_TRIALS})"
        return out
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)     # no "study created in memory" lines
    try:
        tmp = optuna.create_study(direction=study.direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    tmp.add_trials(trials)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = get_param_importances(tmp, evaluator=FanovaImportanceEvaluator(seed=0))
    except (ValueError, RuntimeError, ZeroDivisionError) as e:
        out["note"] = f"importances not computable: {e}"
        return out
    imp = {k: float(v) for k, v in imp.items() if v == v}
    if not imp:
        out["note"] = "no hyperparameter varies across all trials"
    elif len(imp) == 1:
        out["note"] = "a single hyperparameter: importance 1 by definition"
    out["importances"] = imp
    return out


def importance_table(res: Results, full_only: bool = False) -> pd.DataFrame:
    import optuna
    storage = search_storage(res)
    arms = {a.get("name"): a for a in res.run.get("arms") or [] if isinstance(a, dict)}
    first = res.results.drop_duplicates("arm").set_index("arm")
    rows = []
    for arm in sorted(s.study_name for s in storage.get_all_studies()):
        info = arms.get(arm) or (first.loc[arm].to_dict() if arm in first.index else {})
        r = arm_importance(optuna.load_study(study_name=arm, storage=storage), res.run.get("epochs"), full_only)
        base = {"arm": arm, "family": info.get("family", arm), "budget": info.get("budget"),
                "budget_label": info.get("budget_label"), "n_trials": r["n_trials"],
                "n_stopped_early": r["n_stopped_early"], "evaluator": "fanova(seed=0)", "note": r["note"]}
        if r["importances"]:
            rows += [{**base, "param": p, "importance": v} for p, v in r["importances"].items()]
        else:
            rows.append({**base, "param": None, "importance": np.nan})
    cols = ["arm", "family", "budget", "budget_label", "param", "importance", "n_trials", "n_stopped_early",
            "evaluator", "note"]
    return pd.DataFrame(rows).reindex(columns=cols)


def _arm_key(row, families) -> tuple:
    budget = pd.to_numeric(row["budget"], errors="coerce")
    return (budget if budget == budget else float("inf"), families.index(row["family"]))


def plot(table: pd.DataFrame, res: Results, out) -> str:
    families = sort_families(table["family"])
    firsts = table.drop_duplicates("arm")
    arms = sorted(firsts["arm"], key=lambda a: _arm_key(firsts.set_index("arm").loc[a], families))
    ncols = min(3, len(arms))
    nrows = math.ceil(len(arms) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 0.6 + 2.9 * nrows), squeeze=False)
    for ax, arm in zip(axes.flat, arms):
        sel = table[table["arm"] == arm]
        head = sel.iloc[0]
        at = f" at {head['budget_label']}" if isinstance(head["budget_label"], str) else ""
        ax.set_title(f"{head['family']}{at} ({arm}, {int(head['n_trials'])} trials)", fontsize=9)
        ok = sel.dropna(subset=["importance"]).sort_values("importance")
        if len(ok):
            ax.barh(ok["param"], ok["importance"], color=family_color(head["family"], families))
            ax.set_xlim(0, 1)
        if head["note"]:
            ax.text(0.5, 0.06 if len(ok) else 0.5, head["note"], transform=ax.transAxes, ha="center",
                    fontsize=7, wrap=True, color="dimgrey")
            if not len(ok):
                ax.set_yticks([])
        ax.set_xlabel("importance (fANOVA, sums to 1)")
        ax.set_ylabel("hyperparameter")
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(arms):]:
        ax.axis("off")
    from matplotlib.patches import Patch
    fig.legend(handles=[Patch(color=family_color(f, families), label=f) for f in families], loc="center left",
               bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False, title="family")
    fig.suptitle(f"{res.run.get('space', res.path.name)}: hyperparameter importance of the validation loss per arm")
    fig.tight_layout()
    save(fig, out / "importance.png")
    return "importance.png"


def run(res: Results, out, full_only: bool = False) -> dict:
    table = importance_table(res, full_only)
    table.to_csv(out / "importance.csv", index=False)
    return {"table": table, "files": ["importance.csv", plot(table, res, out)]}
