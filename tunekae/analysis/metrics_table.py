"""Beyond reconstruction: every metric confirm recorded, each family's best configuration side by
side per setting, with the direction of better and a Welch test of each family against the best
one on that metric (what the VAE family is judged by: KL, active units, KS distance, the
probes on the codes, the generation scores). One `compare --metric` per metric, in one table."""
from __future__ import annotations

import pandas as pd

from .compare import compare_table, value_columns
from .load import Results
from .metric_names import column, lookup
from .settings import groups
from .style import fmt_p, fmt_pm, markdown_table, sort_families

# In the order a reader of a VAE paper looks for them; those a run does not record are left out.
METRICS = ["loss", "kl", "active_units", "ks_distance", "linear_acc", "knn_acc", "class_sep", "silhouette",
           "label_agreement", "gen_gmm_entropy", "gen_gmm_confidence", "gen_gmm_mmd", "gen_prior_entropy",
           "gen_prior_confidence", "gen_prior_mmd"]


def available(res: Results) -> list[str]:
    """The METRICS that confirmed_runs.csv holds a finite value of."""
    if res.confirmed_runs is None:
        return []
    return [m for m in METRICS if column(lookup(m), res.confirmed_runs, "runs") is not None]


def metrics_table(res: Results, select: str = "val", alpha: float = 0.05) -> pd.DataFrame:
    """Long form: one row per (setting, metric, family) with mean, std, n, best family, p."""
    rows = []
    for name in available(res):
        metric = lookup(name)
        # every family at the configuration the search chose (validation rank 1), whatever the metric
        cmp = compare_table(res, select, alpha, metric)
        mean_col, std_col = value_columns(metric)
        for r in cmp.itertuples():
            rows.append({"setting": r.setting, "budget": r.budget, "metric": name, "family": r.family,
                         "higher_is_better": metric.higher, "mean": getattr(r, mean_col),
                         "std": getattr(r, std_col), "n": r.n, "is_best": r.is_best, "p_value": r.p_value,
                         "significant": r.significant, "trial_id": r.trial_id})
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, alpha: float) -> str:
    lines = ["### Every metric, each family's best configuration (test split, mean ± std over seeds)\n",
             f"Bold: the best family on that metric; p: Welch's t-test against it (p < {alpha:g} "
             "significant). Each family's configuration is chosen per metric as `compare --metric` "
             "chooses it.\n"]
    for setting, at in groups(table):
        families = sort_families(at["family"])
        shown = []
        for name in dict.fromkeys(at["metric"]):
            m = at[at["metric"] == name].set_index("family")
            row = {"metric": "test MSE" if name == "loss" else name,
                   "better": "higher" if m["higher_is_better"].iloc[0] else "lower"}
            for f in families:
                if f not in m.index:
                    row[f] = "–"
                    continue
                r = m.loc[f]
                cell = fmt_pm(r["mean"], r["std"])
                row[f] = f"**{cell}**" if r["is_best"] else f"{cell} (p={fmt_p(r['p_value'])})"
            shown.append(row)
        lines.append(f"#### {setting}\n")
        lines.append(markdown_table(pd.DataFrame(shown), {"metric": "metric", "better": "better",
                                                          **{f: f for f in families}}))
    return "\n".join(lines)


def run(res: Results, out, select: str = "val", alpha: float = 0.05) -> dict | None:
    table = metrics_table(res, select, alpha)
    if not len(table) or table["metric"].nunique() < 2:
        return None
    table.to_csv(out / "metrics.csv", index=False)
    return {"table": table, "markdown": to_markdown(table, alpha), "files": ["metrics.csv"]}


def answer_sentence(table: pd.DataFrame) -> str:
    """Which family is best on each metric besides reconstruction, per setting, and whether it is
    significantly ahead of every other family (the answer a VAE-family study gives)."""
    sentences = []
    for setting, at in groups(table[table["metric"] != "loss"]):
        parts = []
        for name in dict.fromkeys(at["metric"]):
            m = at[at["metric"] == name]
            best = m[m["is_best"]].iloc[0]
            others = m[~m["is_best"]]
            clear = "ahead of every other family" if len(others) and others["significant"].all() else \
                "not significantly ahead of " + ", ".join(others[~others["significant"]]["family"]) \
                if len(others) else "the only family"
            better = "highest" if best["higher_is_better"] else "lowest"
            parts.append(f"{better} {name} {best['family']} ({float(best['mean']):.4g}; {clear})")
        if parts:
            sentences.append(f"By the other metrics at {setting}: " + "; ".join(parts) + ".")
    return " ".join(sentences)
