"""How far each arm's recipe starting point (the KAE paper's Adam 1e-4 / weight decay 1e-4 /
batch 256 for kae_vs_mlp) is from the arm's tuned best, on validation loss.

The recipe ran as each arm's first, enqueued trial; it is found again by its training
hyperparameters, which TPE practically never samples to the same floats.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .load import Results
from .style import fmt_loss, markdown_table

RECIPE_KEYS = ("optimizer", "lr", "weight_decay", "batch_size")


def starting_points(res: Results) -> dict[str, dict]:
    """arm key -> its starting point: from run.json, or (older runs) from the space module."""
    starts = {a["name"]: a.get("start") for a in res.run.get("arms", []) if isinstance(a, dict) and "name" in a}
    if starts and all(v is not None for v in starts.values()):
        return starts
    try:                                            # older run.json without "start": ask the space
        from ..spaces import load_space
        by_family = {arm.name: arm.start for arm in load_space(res.run["space"]).arms}
    except Exception:
        return {k: v for k, v in starts.items() if v}
    return {arm: starts.get(arm) or by_family.get(family)
            for arm, family in res.results[["arm", "family"]].drop_duplicates().itertuples(index=False)}


def _matches(trials: pd.DataFrame, start: dict) -> pd.Series:
    mask = pd.Series(True, index=trials.index)
    for key in RECIPE_KEYS:
        col = f"hp_{key}"
        if key not in start or col not in trials:
            continue
        value = start[key]
        if isinstance(value, str):
            mask &= trials[col].astype(str) == value
        else:
            mask &= np.isclose(pd.to_numeric(trials[col], errors="coerce"), float(value), rtol=1e-9, atol=0)
    return mask


def recipe_table(res: Results) -> pd.DataFrame:
    rows = []
    starts = starting_points(res)
    for arm, trials in res.results.groupby("arm", sort=False):
        start = starts.get(arm)
        full = trials[trials["full_budget"]]
        if not start or not len(full):
            continue
        recipe = trials[_matches(trials, start)]
        if not len(recipe):
            continue
        r = recipe.iloc[0]
        best = full["val_loss"].min()
        finished = bool(r["full_budget"])
        rows.append({"arm": arm, "family": r["family"], "budget": int(r["budget"]),
                     "recipe_val_loss": float(r["val_loss"]), "recipe_epochs": int(r["epochs_completed"]),
                     "recipe_status": "full budget" if finished else (
                         "stopped early by ASHA" if r["status"] == "ok" else str(r["status"])),
                     "tuned_best_val_loss": float(best), "recipe_over_best": float(r["val_loss"]) / best})
    return pd.DataFrame(rows)


def run(res: Results, out) -> dict | None:
    table = recipe_table(res)
    if not len(table):
        return None
    table.to_csv(out / "recipe.csv", index=False)
    shown = pd.DataFrame({
        "family": table["family"], "budget": table["budget"].map(lambda b: f"{b:,}"),
        "recipe val MSE": table["recipe_val_loss"].map(fmt_loss),
        "recipe run": [f"{s}, {e} epochs" for s, e in zip(table["recipe_status"], table["recipe_epochs"])],
        "tuned best val MSE": table["tuned_best_val_loss"].map(fmt_loss),
        "recipe / best": table["recipe_over_best"].map(lambda v: f"{v:.2f}x")})
    worst = table.loc[table["recipe_over_best"].idxmax()]
    sentence = (f"The recipe start point is {table['recipe_over_best'].min():.2f}x to "
                f"{table['recipe_over_best'].max():.2f}x the tuned best validation MSE "
                f"(furthest: {worst['family']} at {worst['budget']:,} parameters).")
    markdown = ("### The recipe starting point vs each arm's tuned best (validation MSE)\n\n"
                + markdown_table(shown) + "\n" + sentence + " A recipe stopped early by ASHA is reported at the "
                "epoch where it was stopped, i.e. ASHA judged it worse than its peers at that point.\n")
    return {"table": table, "markdown": markdown, "files": ["recipe.csv"]}
