"""A hyperparameter study's marginals (pykan's demo shows its sweep this way): for each arm and
each sampled hyperparameter with a few values, the trials that used each value, their median and
best validation loss, how many collapsed, and (where models were pruned) the median pruned size.
Only trials that ran the full epoch budget count, so an ASHA-stopped trial's short loss never
flatters a value. Shown in reports of searches with one family, where the question is what the
hyperparameters do rather than which family wins."""
from __future__ import annotations

import pandas as pd

from ..status import FINISHED
from .load import Results
from .style import fmt_loss, fmt_params, markdown_table

MAX_VALUES = 8   # a hyperparameter with more distinct values (a float range) has no marginal table


def marginals(res: Results) -> pd.DataFrame:
    trials = res.full[res.full["status"].isin(FINISHED)]
    rows = []
    for arm, group in trials.groupby("arm", sort=False):
        for col in sorted(c for c in group.columns if c.startswith("hp_")):
            values = group[col].dropna()
            # a few values, some shared by several trials: a choice, not a range sampled afresh each time
            if not 2 <= values.nunique() <= min(MAX_VALUES, len(values) - 1):
                continue
            for value, used in group.groupby(col, sort=True):
                row = {"arm": arm, "hyperparameter": col[3:], "value": value, "trials": len(used),
                       "median_val_loss": used["val_loss"].median(), "best_val_loss": used["val_loss"].min(),
                       "collapsed": int((used["status"] == "collapsed").sum())}
                if "pruned_params" in used and used["pruned_params"].notna().any():
                    row["median_pruned_params"] = used["pruned_params"].median()
                    row["median_params"] = used["params"].median()
                rows.append(row)
    return pd.DataFrame(rows)


def run(res: Results, out) -> dict | None:
    """marginals.csv and its markdown; None when no hyperparameter has a few values."""
    table = marginals(res)
    if table.empty:
        return None
    table.to_csv(out / "marginals.csv", index=False)
    shown = pd.DataFrame({"arm": table["arm"], "hyperparameter": table["hyperparameter"],
                          "value": table["value"].map(lambda v: f"{v:g}" if isinstance(v, float) else str(v)),
                          "trials": table["trials"], "median": table["median_val_loss"].map(fmt_loss),
                          "best": table["best_val_loss"].map(fmt_loss), "collapsed": table["collapsed"]})
    columns = {"arm": "arm", "hyperparameter": "hyperparameter", "value": "value", "trials": "trials",
               "median": "median val loss", "best": "best val loss", "collapsed": "collapsed"}
    if "median_pruned_params" in table:
        shown["size"] = [f"{fmt_params(p)} -> {fmt_params(q)}" if pd.notna(q) else "–"
                         for p, q in zip(table["median_params"], table["median_pruned_params"])]
        columns["size"] = "median params -> after pruning"
    md = ("### What each hyperparameter does (full-budget trials)\n\n"
          "For each value of each sampled hyperparameter: the trials that used it, their median and best "
          "validation loss and how many collapsed" + (", and the median size before and after pruning"
                                                      if "size" in shown else "") + ".\n\n"
          + markdown_table(shown, columns))
    return {"table": table, "markdown": md, "files": ["marginals.csv"]}
