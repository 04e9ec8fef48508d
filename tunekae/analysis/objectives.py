"""A two-objective search's answer: each arm's Pareto set over its two validation objectives
(Optuna's best_trials, marked `pareto_optimal` in results.csv), as a table and a scatter of every
finished trial with the front drawn through the set."""
from __future__ import annotations

import pandas as pd

from ..selection import Selection
from ..status import FINISHED
from .load import Results
from .style import family_color, fmt_params, markdown_table, plt, save, sort_families
from .table import key_hyperparameters


def _objectives(res: Results) -> list[tuple[str, str]]:
    """(metric, mode) of each objective the search selected on (run.json's record)."""
    return [(o.metric, o.mode) for o in Selection.from_dict(res.run.get("selection")).objectives]


def pareto_sets(res: Results) -> pd.DataFrame | None:
    """The Pareto-optimal trials of every arm, best first by the first objective; None when the
    search had one objective."""
    objectives = _objectives(res)
    if len(objectives) < 2 or "pareto_optimal" not in res.results:
        return None
    metric, mode = objectives[0]
    front = res.results[res.results["pareto_optimal"].fillna(False).astype(bool)]
    return front.sort_values(["arm", metric], ascending=[True, mode == "min"])


def run(res: Results, out) -> dict | None:
    front = pareto_sets(res)
    if front is None:
        return None
    (a, da), (b, db) = _objectives(res)
    done = res.results[res.results["status"].astype(str).isin(FINISHED)]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    families = sort_families(done["family"])
    for arm, g in done.groupby("arm", sort=False):
        color = family_color(str(g["family"].iloc[0]), families)
        ax.scatter(g[a], g[b], s=14, alpha=0.35, color=color)
        f = front[front["arm"] == arm].sort_values(a)
        ax.plot(f[a], f[b], marker="o", color=color, label=f"{arm} ({len(f)} on the front)", drawstyle="steps-post")
    ax.set_xlabel(f"{a} ({'lower' if da == 'min' else 'higher'} is better)")
    ax.set_ylabel(f"{b} ({'lower' if db == 'min' else 'higher'} is better)")
    ax.set_title("each arm's Pareto set over its two objectives")
    ax.legend(fontsize=8)
    save(fig, out / "objectives.png")
    front.to_csv(out / "pareto_set.csv", index=False)
    shown = pd.DataFrame({"arm": front["arm"], "trial": front["trial_id"], a: front[a].map(lambda v: f"{v:.5g}"),
                          b: front[b].map(lambda v: f"{v:.5g}"), "params": front["params"].map(fmt_params),
                          "configuration": [key_hyperparameters(r) for _, r in front.iterrows()]})
    md = ["### Pareto sets of the two objectives\n",
          f"The search asked Optuna for two objectives, {a} and {b} (no ASHA: every trial ran every epoch). "
          "Each arm's Pareto set is the trials no other trial of the arm beats on both.\n",
          markdown_table(shown), "![objectives](objectives.png)\n", "Numbers: [pareto_set.csv](pareto_set.csv).\n"]
    return {"markdown": md, "files": ["objectives.png", "pareto_set.csv"], "table": front}


def answer_sentence(front: pd.DataFrame, res: Results) -> str:
    """Each arm's Pareto set in a sentence: its size and the range of the trade-off it spans."""
    (a, _), (b, _) = _objectives(res)
    parts = []
    for arm, f in front.groupby("arm", sort=False):
        f = f.sort_values(a)
        ends = f"{a} {f[a].iloc[0]:.4g} at {b} {f[b].iloc[0]:.4g}"
        if len(f) > 1:
            ends += f" to {a} {f[a].iloc[-1]:.4g} at {b} {f[b].iloc[-1]:.4g}"
        parts.append(f"{arm} {len(f)} trial{'s' if len(f) > 1 else ''} ({ends})")
    return f"Pareto sets over {a} and {b} (validation): " + "; ".join(parts) + "."
