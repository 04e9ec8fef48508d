"""What changed against an earlier run of the same study (`report DIR --previous OLD_DIR`): each
family's best confirmed test MSE at each budget then and now, and each budget's best family, so
that a study rerun after a change to the tool says what the change did to its answer."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..provenance import describe
from .compare import compare_table
from .load import Results, load
from .style import fmt_params, fmt_pm, markdown_table


def changes(res: Results, previous_dir, select: str = "val", alpha: float = 0.05, why: str | None = None) -> dict:
    """`why`: what changed in the tool between the two runs, in the words of whoever reran it."""
    old = load(previous_dir)
    now, then = compare_table(res, select, alpha), compare_table(old, select, alpha)
    keys = ["budget", "family"]
    both = pd.merge(then[keys + ["test_loss_mean", "test_loss_std", "n", "is_best"]],
                    now[keys + ["test_loss_mean", "test_loss_std", "n", "is_best"]],
                    on=keys, how="outer", suffixes=("_before", "_now")).sort_values(keys, ignore_index=True)
    both["ratio"] = both["test_loss_mean_now"] / both["test_loss_mean_before"]
    shown = pd.DataFrame({
        "budget": both["budget"].map(lambda b: fmt_params(int(b))),
        "family": both["family"],
        "before: test MSE": [_pm(m, s, n) for m, s, n in zip(both["test_loss_mean_before"],
                                                              both["test_loss_std_before"], both["n_before"])],
        "now: test MSE": [_pm(m, s, n) for m, s, n in zip(both["test_loss_mean_now"], both["test_loss_std_now"],
                                                           both["n_now"])],
        "now / before": both["ratio"].map(lambda r: f"{r:.2f}" if np.isfinite(r) else "–")})
    sentences = []
    for budget in sorted(set(both["budget"])):
        at = both[both["budget"] == budget]
        before = at.loc[at["is_best_before"] == True, "family"].tolist()   # noqa: E712 - NaN-safe
        after = at.loc[at["is_best_now"] == True, "family"].tolist()      # noqa: E712
        b, a = (before[0] if before else "none confirmed"), (after[0] if after else "none confirmed")
        sentences.append(f"at {fmt_params(int(budget))} parameters the best family was {b} and is {a}"
                         + (" (unchanged)" if a == b else " (changed)"))
    text = (f"Against the previous run of this study in `{previous_dir}` ({describe(old.run.get('tunekae'))}; this "
            f"run: {describe(res.run.get('tunekae'))}): " + "; ".join(sentences) + "."
            + (f" What changed in between: {why.rstrip('.')}." if why else ""))
    return {"table": both, "markdown": "\n".join(["### What changed since the previous run\n", text + "\n",
                                                   markdown_table(shown)])}


def _pm(mean, std, n) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{fmt_pm(mean, std)} (n={int(n)})"
