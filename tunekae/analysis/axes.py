"""`axes`: loss against the search's other axes, per family: latent size (the course project's
15/30/50/100 sweep) and training-set size (data-efficiency curves), when a search crossed
budgets with more than one of either (`search --latents ... --train-sizes ...`).

Each point is an arm's best configuration: its confirmed test loss (mean over seeds, with the
spread as an error bar) when the dir is confirmed, else its best full-budget validation loss.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .load import Results
from .style import family_color, plt, save, sort_families

AXES = {"latent_dim": ("latent size", "loss_vs_latent", True),   # sweeps double the latent: 8, 16, 32
        "train_size": ("training images", "loss_vs_train_size", True)}


def best_per_arm(res: Results) -> pd.DataFrame:
    """arm, family, budget_label, latent_dim, train_size, loss, loss_std, source."""
    if res.confirmed is not None and "test_loss_mean" in res.confirmed:
        c = res.confirmed.copy()
        c["test_loss_mean"] = pd.to_numeric(c["test_loss_mean"], errors="coerce")
        # the search's validation rank 1 where confirm recorded ranks: test numbers report, never select
        best = c.sort_values(["rank", "test_loss_mean"] if "rank" in c else ["test_loss_mean"]).drop_duplicates("arm")
        out = best.assign(loss=best["test_loss_mean"], loss_std=best.get("test_loss_std", np.nan), source="test")
    else:
        full = res.full.sort_values("val_loss").drop_duplicates("arm")
        out = full.assign(loss=full["val_loss"], loss_std=np.nan, source="validation")
    arms = res.results.drop_duplicates("arm").set_index("arm")
    for col in ("latent_dim", "train_size", "budget_label"):
        if col in arms:
            out[col] = out["arm"].map(arms[col])
    return out


def run(res: Results, out) -> dict:
    files = []
    best = best_per_arm(res)
    for axis, (label, name, log_x) in AXES.items():
        if axis not in best or best[axis].nunique() < 2:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        families = sort_families(best["family"])
        for (family, budget), g in best.groupby(["family", "budget_label"]):
            g = g.sort_values(axis)
            ax.errorbar(g[axis], g["loss"], yerr=g["loss_std"].fillna(0), marker="o", capsize=3,
                        color=family_color(family, families), label=f"{family} at {budget}",
                        linestyle="-" if budget == best["budget_label"].iloc[0] else "--")
        if log_x:
            ax.set_xscale("log")
            ticks = sorted(best[axis].dropna().unique())
            ax.set_xticks(ticks, [f"{int(t):,}" for t in ticks])
            ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(f"{best['source'].iloc[0]} loss (each arm's best configuration)")
        ax.set_title(f"{res.run.get('space', '')}: loss against {label}")
        ax.legend(fontsize=8)
        files.append(save(fig, out / f"{name}.png").name)
    columns = [c for c in ("arm", "family", "budget_label", "latent_dim", "train_size", "loss", "loss_std", "source")
               if c in best]
    if files:
        best[columns].to_csv(out / "axes.csv", index=False)
        files.append("axes.csv")
    return {"files": files, "table": best[columns]}
