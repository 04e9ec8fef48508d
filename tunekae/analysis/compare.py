"""`compare`: at each budget, every family's best confirmed configuration side by side, and the
test-loss difference of each family to the best one (other minus best, so >= 0) with its 95%
Welch confidence interval and Welch t-test p-value over the confirmation seeds."""
from __future__ import annotations

import shlex
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..status import FINISHED
from .load import Results
from .style import fmt_loss, fmt_p, fmt_params, fmt_pm, fmt_seconds, markdown_table, sort_families
from .table import best_confirmed


def welch(a, b) -> dict:
    """Difference mean(a) - mean(b): 95% Welch CI, t, df and two-sided p (NaN with < 2 seeds each)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = a.mean() - b.mean() if len(a) and len(b) else np.nan
    out = {"diff": diff, "ci_low": np.nan, "ci_high": np.nan, "t": np.nan, "df": np.nan, "p_value": np.nan}
    if len(a) < 2 or len(b) < 2:
        return out
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    if se == 0:
        return out
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * se
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test = stats.ttest_ind(a, b, equal_var=False)
    return {**out, "ci_low": diff - half, "ci_high": diff + half, "t": float(test.statistic), "df": float(df),
            "p_value": float(test.pvalue)}


def _ok(runs: pd.DataFrame) -> pd.Series:
    # a collapsed seed is the configuration's real outcome: it counts
    return runs["status"].astype(str).isin(FINISHED) if "status" in runs else pd.Series(True, index=runs.index)


def _configs(res: Results, select: str) -> pd.DataFrame:
    runs = res.require_confirmed_runs()
    if res.confirmed is None:       # derive the per-configuration means from the runs
        ok = runs[_ok(runs)]
        keys = [k for k in ("arm", "family", "budget", "budget_label", "trial_id", "rank", "params") if k in ok]
        res.confirmed = ok.groupby(keys, dropna=False).agg(test_loss_mean=("test_loss", "mean"),
                                                           test_loss_std=("test_loss", "std"),
                                                           n=("test_loss", "size")).reset_index()
    return best_confirmed(res, select)


def compare_table(res: Results, select: str = "val", alpha: float = 0.05) -> pd.DataFrame:
    runs = res.require_confirmed_runs().copy()
    runs["test_loss"] = pd.to_numeric(runs["test_loss"], errors="coerce")
    ok = runs[_ok(runs) & np.isfinite(runs["test_loss"])]
    best = _configs(res, select)
    rows = []
    for budget in sorted(pd.to_numeric(best["budget"]).dropna().unique()):
        at = best[pd.to_numeric(best["budget"]) == budget]
        by_family = {}
        for _, r in at.iterrows():
            sel = ok[(ok["arm"].astype(str) == str(r["arm"])) & (ok["trial_id"].astype(str) == str(r["trial_id"]))]
            losses = sel["test_loss"].to_numpy(dtype=float)
            if len(losses):
                by_family.setdefault(str(r["family"]), (r, losses, sel))
        if not by_family:
            continue
        winner = min(by_family, key=lambda f: by_family[f][1].mean())
        for fam in sort_families(by_family):
            r, losses, sel = by_family[fam]
            w = welch(losses, by_family[winner][1]) if fam != winner else \
                {"diff": 0.0, "ci_low": np.nan, "ci_high": np.nan, "t": np.nan, "df": np.nan, "p_value": np.nan}
            spe = pd.to_numeric(sel.get("seconds_per_epoch", pd.Series(dtype=float)), errors="coerce")
            rows.append({"budget": int(budget), "budget_label": r.get("budget_label", res.budget_label(budget)),
                         "family": fam, "arm": r["arm"], "trial_id": r["trial_id"], "rank": r.get("rank"),
                         "params": r.get("params"), "n": len(losses), "test_loss_mean": losses.mean(),
                         "test_loss_std": losses.std(ddof=1) if len(losses) > 1 else np.nan,
                         "seconds_per_epoch": spe.mean(), "best_family": winner, "is_best": fam == winner,
                         "diff_vs_best": w["diff"], "ci_low": w["ci_low"], "ci_high": w["ci_high"],
                         "welch_t": w["t"], "welch_df": w["df"], "p_value": w["p_value"],
                         "significant": bool(np.isfinite(w["p_value"]) and w["p_value"] < alpha)})
    return pd.DataFrame(rows)


def budget_sentence(at: pd.DataFrame) -> str:
    """One plain sentence per budget, numbers formatted from the compare table itself."""
    win = at[at["is_best"]].iloc[0]
    head = (f"At {win['budget_label']} ({fmt_params(win['budget'])} parameters) the best family is "
            f"{win['family']} with test MSE {fmt_pm(win['test_loss_mean'], win['test_loss_std'])} (n={int(win['n'])})")
    others = []
    for _, r in at[~at["is_best"]].iterrows():
        if np.isfinite(r["p_value"]):
            verdict = "significant" if r["significant"] else "not significant"
            others.append(f"{r['family']} is worse by {fmt_loss(r['diff_vs_best'])} (95% CI {fmt_loss(r['ci_low'])} "
                          f"to {fmt_loss(r['ci_high'])}, p={fmt_p(r['p_value'])}, {verdict})")
        else:
            others.append(f"{r['family']} is worse by {fmt_loss(r['diff_vs_best'])} (no test: fewer than 2 seeds "
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


def to_markdown(table: pd.DataFrame, select: str, alpha: float) -> str:
    rule = "lowest mean test loss" if select == "test" else "the search's validation rank 1"
    lines = [f"### Best configuration of each family per budget ({rule}); test MSE over confirmation seeds\n",
             "Difference = family minus the budget's best family; 95% CI and p from Welch's t-test "
             "(unequal variances) over seeds.\n"]
    for budget, at in table.groupby("budget", sort=True):
        shown = pd.DataFrame({
            "family": at["family"] + np.where(at["is_best"], " (best)", ""),
            "params": at["params"].map(fmt_params),
            "loss": [fmt_pm(m, s) for m, s in zip(at["test_loss_mean"], at["test_loss_std"])],
            "n": at["n"].astype(int).astype(str), "spe": at["seconds_per_epoch"].map(fmt_seconds),
            "diff": [("–" if b else fmt_loss(d)) for b, d in zip(at["is_best"], at["diff_vs_best"])],
            "ci": [("–" if b or not np.isfinite(lo) else f"[{fmt_loss(lo)}, {fmt_loss(hi)}]")
                   for b, lo, hi in zip(at["is_best"], at["ci_low"], at["ci_high"])],
            "p": [("–" if b else fmt_p(p)) for b, p in zip(at["is_best"], at["p_value"])]})
        lines.append(f"#### {at['budget_label'].iloc[0]} = {fmt_params(budget)} parameters\n")
        lines.append(markdown_table(shown, {"family": "family", "params": "params", "loss": "test MSE (mean ± std)",
                                            "n": "seeds", "spe": "s/epoch", "diff": "difference vs best",
                                            "ci": "95% CI", "p": "p (Welch)"}))
        lines.append(budget_sentence(at) + "\n")
    lines.append(significance_summary(table, alpha) + "\n")
    return "\n".join(lines)


def run(res: Results, out, select: str = "val", alpha: float = 0.05) -> dict:
    table = compare_table(res, select, alpha)
    if not len(table):
        from ..errors import UserError
        raise UserError(f"confirmed_runs.csv in {res.path} holds no successful run with a test loss; "
                        f"re-run `python -m tunekae confirm {shlex.quote(str(res.path))}`")
    table.to_csv(out / "compare.csv", index=False)
    md = to_markdown(table, select, alpha)
    (out / "compare.md").write_text(md)
    return {"table": table, "markdown": md, "files": ["compare.md", "compare.csv"]}
