"""`compare`: at each budget, every family's best confirmed configuration side by side, and the
test-loss difference of each family to the best one (other minus best, so >= 0) with its 95%
Welch confidence interval and Welch t-test p-value over the confirmation seeds.

With --metric NAME the families are ranked and tested on that metric of confirmed_runs.csv
instead; the difference stays signed (other minus best), so it is <= 0 for a metric where
higher is better, and the markdown states the direction."""
from __future__ import annotations

import shlex
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..status import FINISHED
from .load import Results
from .metric_names import DEFAULT, Metric, column, lookup, not_in
from .style import fmt_loss, fmt_p, fmt_params, fmt_pm, fmt_seconds, markdown_table, sort_families
from .settings import axis_columns, groups, with_settings
from .table import best_confirmed


def welch(a, b) -> dict:
    """Difference mean(a) - mean(b): 95% Welch CI, t, df and two-sided p (NaN with < 2 seeds each)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = a.mean() - b.mean() if len(a) and len(b) else np.nan
    out = {"diff": diff, "ci_low": np.nan, "ci_high": np.nan, "t": np.nan, "df": np.nan, "p_value": np.nan}
    if len(a) < 2 or len(b) < 2 or a.var(ddof=1) + b.var(ddof=1) == 0:   # no spread: nothing to test
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test = stats.ttest_ind(a, b, equal_var=False)
        ci = test.confidence_interval(0.95)
    return {**out, "ci_low": float(ci.low), "ci_high": float(ci.high), "t": float(test.statistic),
            "df": float(test.df), "p_value": float(test.pvalue)}


def _ok(runs: pd.DataFrame) -> pd.Series:
    # a collapsed seed is the configuration's real outcome: it counts
    return runs["status"].astype(str).isin(FINISHED) if "status" in runs else pd.Series(True, index=runs.index)


def _configs(res: Results, select: str, metric: Metric | None = None) -> pd.DataFrame:
    runs = res.require_confirmed_runs()
    if res.confirmed is None:       # derive the per-configuration means from the runs
        ok = runs[_ok(runs)]
        keys = [k for k in ("arm", "family", "budget", "budget_label", "trial_id", "rank", "params") if k in ok]
        res.confirmed = ok.groupby(keys, dropna=False).agg(test_loss_mean=("test_loss", "mean"),
                                                           test_loss_std=("test_loss", "std"),
                                                           n=("test_loss", "size")).reset_index()
    return best_confirmed(res, select, metric)


def value_columns(metric: Metric) -> tuple[str, str]:
    """compare.csv's columns of the per-family mean and std: test_loss_mean for the loss."""
    name = "test_loss" if metric.is_default else metric.name
    return f"{name}_mean", f"{name}_std"


def compare_table(res: Results, select: str = "val", alpha: float = 0.05, metric: Metric | None = None) -> pd.DataFrame:
    metric = metric or lookup(DEFAULT)
    runs = res.require_confirmed_runs().copy()
    col = column(metric, runs, "runs")
    if col is None:
        raise not_in(metric, res, "confirmed_runs.csv")
    runs["_v"] = pd.to_numeric(runs[col], errors="coerce")
    ok = runs[_ok(runs) & np.isfinite(runs["_v"])]
    best = with_settings(_configs(res, select, metric), res.results)
    axes = axis_columns(res.results)
    mean_col, std_col = value_columns(metric)
    rows = []
    for setting, at in groups(best[np.isfinite(pd.to_numeric(best["budget"], errors="coerce"))]):
        budget = pd.to_numeric(at["budget"]).iloc[0]
        by_family = {}
        for _, r in at.iterrows():
            sel = ok[(ok["arm"].astype(str) == str(r["arm"])) & (ok["trial_id"].astype(str) == str(r["trial_id"]))]
            losses = sel["_v"].to_numpy(dtype=float)
            if len(losses):
                by_family.setdefault(str(r["family"]), (r, losses, sel))
        if not by_family:
            continue
        winner = min(by_family, key=lambda f: metric.sign * by_family[f][1].mean())
        for fam in sort_families(by_family):
            r, losses, sel = by_family[fam]
            w = welch(losses, by_family[winner][1]) if fam != winner else \
                {"diff": 0.0, "ci_low": np.nan, "ci_high": np.nan, "t": np.nan, "df": np.nan, "p_value": np.nan}
            spe = pd.to_numeric(sel.get("seconds_per_epoch", pd.Series(dtype=float)), errors="coerce")
            rows.append({"budget": int(budget), "budget_label": r.get("budget_label", res.budget_label(budget)),
                         "setting": setting, **{a: r[a] for a in axes},
                         "family": fam, "arm": r["arm"], "trial_id": r["trial_id"], "rank": r.get("rank"),
                         "params": r.get("params"), "n": len(losses), "metric": col,
                         "higher_is_better": metric.higher, mean_col: losses.mean(),
                         std_col: losses.std(ddof=1) if len(losses) > 1 else np.nan,
                         "seconds_per_epoch": spe.mean(), "best_family": winner, "is_best": fam == winner,
                         "diff_vs_best": w["diff"], "ci_low": w["ci_low"], "ci_high": w["ci_high"],
                         "welch_t": w["t"], "welch_df": w["df"], "p_value": w["p_value"],
                         "significant": bool(np.isfinite(w["p_value"]) and w["p_value"] < alpha)})
    return pd.DataFrame(rows)


def budget_sentence(at: pd.DataFrame, metric: Metric | None = None) -> str:
    """One plain sentence per budget, numbers formatted from the compare table itself."""
    metric = metric or lookup(DEFAULT)
    mean_col, std_col = value_columns(metric)
    label = "test MSE" if metric.is_default else f"test {metric.name}"
    # "worse by" reads as a size; for a higher-is-better metric the signed difference is <= 0
    how = "" if metric.is_default or not metric.higher else f"{metric.worse_word()}; "
    win = at[at["is_best"]].iloc[0]
    where = f"{win['budget_label']} ({win['setting']})" if "setting" in at else \
        f"{win['budget_label']} ({fmt_params(win['budget'])} parameters)"
    head = (f"At {where} the best family is "
            f"{win['family']} with {label} {fmt_pm(win[mean_col], win[std_col])} (n={int(win['n'])})")
    others = []
    for _, r in at[~at["is_best"]].iterrows():
        by = fmt_loss(abs(r["diff_vs_best"]))
        if np.isfinite(r["p_value"]):
            verdict = "significant" if r["significant"] else "not significant"
            ci = "95% CI" if not how else "other minus best, 95% CI"
            others.append(f"{r['family']} is worse by {by} ({how}{ci} {fmt_loss(r['ci_low'])} "
                          f"to {fmt_loss(r['ci_high'])}, p={fmt_p(r['p_value'])}, {verdict})")
        else:
            others.append(f"{r['family']} is worse by {by} ({how}no test: fewer than 2 seeds "
                          f"or no spread)")
    return head + ("; " + "; ".join(others) + "." if others else "; no other family was confirmed here.")


def significance_summary(table: pd.DataFrame, alpha: float = 0.05) -> str:
    others = table[~table["is_best"]]
    sig = [f"{r.family} vs {r.best_family} at {r.budget_label}" for r in others.itertuples() if r.significant]
    not_sig = [f"{r.family} vs {r.best_family} at {r.budget_label}" for r in others.itertuples() if not r.significant]
    if not len(others):
        return "Only one family was confirmed at each budget, so there is nothing to test."
    return (f"Significant at p < {alpha:g} (Welch t-test): {', '.join(sig) or 'none'}. "
            f"Not significant: {', '.join(not_sig) or 'none'}.")


def to_markdown(table: pd.DataFrame, select: str, alpha: float, metric: Metric | None = None) -> str:
    metric = metric or lookup(DEFAULT)
    mean_col, std_col = value_columns(metric)
    if metric.is_default:
        rule = "lowest mean test loss" if select == "test" else "the search's validation rank 1"
        what, label = "test MSE", "test MSE (mean ± std)"
    else:
        rule = f"best mean test {metric.name}" if select == "test" else f"best validation {metric.name}"
        what, label = f"test {metric.name}", f"test {metric.name} (mean ± std)"
    lines = [f"### Best configuration of each family per budget ({rule}); {what} over confirmation seeds\n",
             f"Metric: {metric.name} ({table['metric'].iloc[0]} of confirmed_runs.csv); {metric.direction}.\n",
             "Difference = family minus the budget's best family; 95% CI and p from Welch's t-test "
             "(unequal variances) over seeds.\n"]
    for setting, at in groups(table):
        shown = pd.DataFrame({
            "family": at["family"] + np.where(at["is_best"], " (best)", ""),
            "params": at["params"].map(fmt_params),
            "loss": [fmt_pm(m, s) for m, s in zip(at[mean_col], at[std_col])],
            "n": at["n"].astype(int).astype(str), "spe": at["seconds_per_epoch"].map(fmt_seconds),
            "diff": [("–" if b else fmt_loss(d)) for b, d in zip(at["is_best"], at["diff_vs_best"])],
            "ci": [("–" if b or not np.isfinite(lo) else f"[{fmt_loss(lo)}, {fmt_loss(hi)}]")
                   for b, lo, hi in zip(at["is_best"], at["ci_low"], at["ci_high"])],
            "p": [("–" if b else fmt_p(p)) for b, p in zip(at["is_best"], at["p_value"])]})
        lines.append(f"#### {at['budget_label'].iloc[0]} = {setting}\n")
        lines.append(markdown_table(shown, {"family": "family", "params": "params", "loss": label,
                                            "n": "seeds", "spe": "s/epoch", "diff": "difference vs best",
                                            "ci": "95% CI", "p": "p (Welch)"}))
        lines.append(budget_sentence(at, metric) + "\n")
    lines.append(significance_summary(table, alpha) + "\n")
    return "\n".join(lines)


def run(res: Results, out, select: str = "val", alpha: float = 0.05, metric: Metric | None = None) -> dict:
    """metric: rank and test on it instead of the loss; writes compare_NAME.md / .csv."""
    from .table import val_selection_note
    metric = metric or lookup(DEFAULT)
    table = compare_table(res, select, alpha, metric)
    if not len(table):
        from ..errors import UserError
        what = "a test loss" if metric.is_default else f"a finite {metric.name}"
        raise UserError(f"confirmed_runs.csv in {res.path} holds no successful run with {what}; "
                        f"re-run `python -m tunekae confirm {shlex.quote(str(res.path))}`")
    table.to_csv(out / f"compare{metric.tag}.csv", index=False)
    md = to_markdown(table, select, alpha, metric)
    (out / f"compare{metric.tag}.md").write_text(md)
    notes = val_selection_note(res, metric, select)
    if not metric.known:
        notes.append(f"{metric.name} is not in the metric registry: lower is taken as better")
    return {"table": table, "markdown": md, "notes": notes,
            "files": [f"compare{metric.tag}.md", f"compare{metric.tag}.csv"]}
