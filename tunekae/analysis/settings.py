"""A comparison's settings: where families are compared against each other. A plain search has
one per budget; a search that crossed budgets with latent sizes or training-set sizes
(`--latents`, `--train-sizes`) has one per combination, and families are compared only within
one: a 16-dimensional code and a 64-dimensional one are different questions."""
from __future__ import annotations

import pandas as pd

from .style import fmt_params

AXES = ("latent_dim", "train_size")
AXIS_NAMES = {"latent_dim": "latent size", "train_size": "training-set size"}   # as a sentence names them


def axis_columns(results: pd.DataFrame) -> list[str]:
    """The axes besides the budget that this search varied."""
    return [c for c in AXES if c in results and results[c].nunique(dropna=True) > 1]


def with_settings(rows: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """`rows` (one per arm or configuration, with an `arm`) with the arm's axis values and a
    `setting` label, sorted by budget then axes."""
    cols = axis_columns(results)
    arms = results.drop_duplicates("arm").set_index("arm")
    rows = rows.copy()
    for c in cols:
        rows[c] = rows["arm"].astype(str).map(arms[c])
    rows["setting"] = [setting_label(r, cols) for _, r in rows.iterrows()]
    return rows.sort_values(["budget", *cols], kind="stable")


def setting_label(row, cols: list[str]) -> str:
    parts = [f"{fmt_params(row['budget'])} parameters"]
    if "latent_dim" in cols:
        parts.append(f"latent {int(row['latent_dim'])}")
    if "train_size" in cols:
        parts.append(f"{int(row['train_size']):,} training images")
    return ", ".join(parts)


def groups(table: pd.DataFrame):
    """(setting label, its rows) in budget-then-axes order."""
    order = list(dict.fromkeys(table["setting"]))
    for s in order:
        yield s, table[table["setting"] == s]


def trend_sentence(cmp: pd.DataFrame, results: pd.DataFrame, mean_col: str = "test_loss_mean",
                   what: str = "test MSE") -> str:
    """For a search along an axis: each family's value at each point of it (per budget), the
    question such a study asks ("how does the loss change with the latent size?")."""
    cols = axis_columns(results)
    if not cols:
        return ""
    sentences = []
    for axis in cols:
        name = AXIS_NAMES[axis]
        others = [c for c in ("budget", *cols) if c != axis]
        for fixed, at in cmp.groupby(others, sort=True):
            fixed = fixed if isinstance(fixed, tuple) else (fixed,)
            where = ", ".join(setting_part(c, v) for c, v in zip(others, fixed))
            per_family = []
            for family, g in at.groupby("family", sort=False):
                g = g.sort_values(axis)
                points = ", ".join(f"{_fmt(v)} at {int(x):,}" for x, v in zip(g[axis], g[mean_col]))
                per_family.append(f"{family} {points}")
            sentences.append(f"{what[0].upper() + what[1:]} against {name} ({where}): " + "; ".join(per_family) + ".")
    return " ".join(sentences)


def setting_part(col: str, value) -> str:
    if col == "budget":
        return f"{fmt_params(value)} parameters"
    if col == "latent_dim":
        return f"latent {int(value)}"
    return f"{int(value):,} training images"


def _fmt(v) -> str:
    return f"{float(v):.4g}"
