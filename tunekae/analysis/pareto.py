"""`pareto`: non-dominated sets over (loss, params, train_seconds), overall and per family,
figures of every trial, and each family's hypervolume in (log10 params, loss).

Two sources of points, never mixed in one front (the validation loss of the trials a search
picked is optimistically biased; the confirmed test loss is not):
- "search": every trial of results.csv, loss = val_loss; trials stopped early by ASHA (or
  otherwise short of the epoch budget) are drawn hollow and never define a front;
- "confirmed": every configuration of confirmed.csv, loss = test_loss_mean (mean over seeds),
  time = train_seconds_mean. When it exists it is the headline source.

With params="pruned" (spaces that prune, e.g. kan_hparams) a point is the pruned model: its
parameters after pykan-style pruning and its loss after pruning (pruned_val_loss, or
pruned_test_loss_mean when confirmed), written beside the trained fronts as *_pruned files.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError
from ..status import FINISHED
from .fronts import front_mask, hypervolume_2d, staircase
from .load import Results, confirm_hint
from .style import family_color, plt, save, sort_families

OBJECTIVES = {"3d": ["loss", "params", "train_seconds"], "params": ["loss", "params"],
              "time": ["loss", "train_seconds"]}
LOSS_LABEL = {"search": "validation MSE per pixel", "confirmed": "test MSE per pixel (mean ± std over seeds)"}
KEEP = ["source", "loss_metric", "arm", "family", "budget", "budget_label", "trial_id", "rank", "status",
        "stopped_early", "epochs_completed", "epochs_budget", "full_budget", "params", "loss", "loss_std",
        "train_seconds", "seconds_per_epoch", "hidden", "n_seeds"]


PRUNED = {"search": ("pruned_params", "pruned_val_loss"), "confirmed": ("pruned_params_mean", "pruned_test_loss_mean")}


def _pruned(df: pd.DataFrame, source: str, res: Results) -> pd.DataFrame:
    """Rows of `df` with the pruned model's parameters and loss in place of the trained ones."""
    params, loss = PRUNED[source]
    if params not in df or loss not in df or not df[params].notna().any():
        raise UserError(f"{res.path}: no {'trial' if source == 'search' else 'confirmed configuration'} recorded "
                        f"{params}; models are pruned only where a space sets prune=True (e.g. kan_hparams)")
    df = df[df[params].notna()].copy()
    df["params"], df["val_loss" if source == "search" else "test_loss_mean"] = df[params], df[loss]
    return df


def search_points(res: Results, params: str = "trained") -> pd.DataFrame:
    df = res.results
    if params == "pruned":
        df = _pruned(df, "search", res)
    df = df[df["status"].isin(FINISHED) & np.isfinite(df["val_loss"]) & np.isfinite(df["params"])].copy()
    df["source"], df["loss_metric"], df["loss"], df["loss_std"] = "search", "val_loss", df["val_loss"], np.nan
    df["n_seeds"], df["rank"] = 1, np.nan
    return df.reindex(columns=KEEP)


def confirmed_points(res: Results, params: str = "trained") -> pd.DataFrame:
    c = res.confirmed.copy()
    if params == "pruned":
        c = _pruned(c, "confirmed", res)
    if "test_loss_mean" not in c:
        raise UserError(f"{res.path / 'confirmed.csv'} has no test_loss_mean column; "
                        + confirm_hint(res.path))
    out = pd.DataFrame({"source": "confirmed", "loss_metric": "test_loss_mean", "loss": c["test_loss_mean"],
                        "loss_std": c.get("test_loss_std", np.nan),
                        "train_seconds": c.get("train_seconds_mean", np.nan),
                        "seconds_per_epoch": c.get("seconds_per_epoch_mean", np.nan),
                        "n_seeds": c.get("n", np.nan), "status": "ok", "stopped_early": False})
    for col in ("arm", "family", "budget", "budget_label", "trial_id", "rank", "params", "hidden"):
        out[col] = c[col] if col in c else np.nan
    epochs = res.run.get("epochs")
    out["epochs_completed"] = out["epochs_budget"] = epochs
    out["full_budget"] = np.isfinite(pd.to_numeric(out["loss"], errors="coerce")) & (out["n_seeds"].fillna(1) > 0)
    return out.reindex(columns=KEEP)


def pareto_table(res: Results, loss: str = "auto", params: str = "trained") -> pd.DataFrame:
    """Every point with membership columns on_front_{3d,params,time} and on_family_front_*."""
    if loss == "test" and res.confirmed is None:
        raise UserError(f"--loss test needs confirmed.csv in {res.path}; " + confirm_hint(res.path))
    parts = []
    if loss in ("auto", "val"):
        res.require_full()
        parts.append(search_points(res, params))
    if loss == "test" or (loss == "auto" and res.confirmed is not None):
        parts.append(confirmed_points(res, params))
    points = pd.concat(parts, ignore_index=True)
    for col in ("loss", "params", "train_seconds", "loss_std", "seconds_per_epoch"):
        points[col] = pd.to_numeric(points[col], errors="coerce")
    points["full_budget"] = points["full_budget"].astype(bool)
    for name, cols in OBJECTIVES.items():
        points[f"on_front_{name}"] = False
        points[f"on_family_front_{name}"] = False
    for source in points["source"].unique():
        in_src = (points["source"] == source).to_numpy() & points["full_budget"].to_numpy()
        for name, cols in OBJECTIVES.items():
            points.loc[front_mask(points, cols, where=in_src), f"on_front_{name}"] = True
            points.loc[front_mask(points, cols, by="family", where=in_src), f"on_family_front_{name}"] = True
    return points


def hypervolumes(points: pd.DataFrame) -> pd.DataFrame:
    """Per source and family: area dominated in (log10 params, loss) up to ONE reference point per
    source, ref = (log10(1.1 x max params), 1.1 x max loss) over all full-budget points of that
    source, so families are comparable (bigger is better). `hypervolume_normalised` divides by the
    box from the smallest log10 params (over all families) and loss 0 to ref, so it lies in [0, 1]."""
    rows = []
    for source in points["source"].unique():
        full = points[(points["source"] == source) & points["full_budget"]]
        if not len(full):
            continue
        logp = np.log10(full["params"].to_numpy(dtype=float))
        ref = (float(np.log10(1.1 * full["params"].max())), float(1.1 * full["loss"].max()))
        box = (ref[0] - logp.min()) * ref[1]
        for family in ["all"] + sort_families(full["family"]):
            sel = full if family == "all" else full[full["family"] == family]
            pts = np.column_stack([np.log10(sel["params"].to_numpy(dtype=float)), sel["loss"].to_numpy(dtype=float)])
            hv = hypervolume_2d(pts, ref)
            col = "on_front_params" if family == "all" else "on_family_front_params"
            rows.append({"source": source, "loss_metric": sel["loss_metric"].iloc[0], "family": family,
                         "n_points": len(sel), "n_front": int(sel[col].sum()), "hypervolume": hv,
                         "hypervolume_normalised": hv / box if box > 0 else np.nan,
                         "ref_log10_params": ref[0], "ref_loss": ref[1]})
    return pd.DataFrame(rows)


def _clip_outliers(pts: pd.DataFrame) -> tuple[pd.DataFrame, float | None, int]:
    """A blown-up trial (a KAE's powers overflow to a finite 1e22, say) would stretch the loss
    axis until every real difference vanishes. The axis spans the full-budget points (x3); losses
    above are drawn on the top edge as triangles and counted in the panel title."""
    full = pts.loc[pts["full_budget"], "loss"]
    top = 3 * float(full.max()) if len(full) else float(pts["loss"].quantile(0.9))
    above = pts["loss"] > top
    if not above.any():
        return pts, None, 0
    clipped = pts.copy()
    clipped.loc[above, "loss"] = top
    clipped.loc[above, "loss_std"] = float("nan")
    return clipped, top, int(above.sum())


def _draw_panel(ax, pts: pd.DataFrame, xcol: str, budgets: list[dict], families: list[str]) -> int:
    front_col = "on_front_params" if xcol == "params" else "on_front_time"
    fam_col = front_col.replace("on_front", "on_family_front")
    raw = pts
    pts, top, n_above = _clip_outliers(pts)
    if n_above:
        off = pts[raw["loss"] > top]
        ax.scatter(off[xcol], off["loss"], marker="^", s=40, color="dimgrey", zorder=5, clip_on=False)
    for fam in families:
        sel = pts[pts["family"] == fam]
        if not len(sel):
            continue
        color = family_color(fam, families)
        full, short = sel[sel["full_budget"]], sel[~sel["full_budget"]]
        if full["loss_std"].notna().any():
            ax.errorbar(full[xcol], full["loss"], yerr=full["loss_std"].fillna(0), fmt="none", ecolor=color,
                        alpha=0.6, lw=1)
        ax.scatter(full[xcol], full["loss"], s=28, color=color, alpha=0.8, zorder=3)
        ax.scatter(short[xcol], short["loss"], s=28, facecolors="none", edgecolors=color, alpha=0.8, zorder=3)
        on3 = full[full["on_front_3d"]]
        ax.scatter(on3[xcol], on3["loss"], s=90, facecolors="none", edgecolors="black", lw=0.8, zorder=4)
        fx, fy = staircase(*full[full[fam_col]][[xcol, "loss"]].to_numpy(dtype=float).T) if len(full) else ([], [])
        if len(fx) > 1:
            ax.step(fx, fy, where="post", color=color, ls="--", lw=1, alpha=0.9)
    front = pts[pts[front_col]]
    fx, fy = staircase(front[xcol], front["loss"])
    ax.step(fx, fy, where="post", color="black", lw=1.6, zorder=2)
    if xcol == "params":
        ax.set_xscale("log")
        for b in budgets:
            ax.axvline(b["params"], color="grey", ls=":", lw=1)
            ax.annotate(f"{b['label']} = {b['params']:,}", (b["params"], 1), xycoords=("data", "axes fraction"),
                        rotation=90, va="top", ha="right", fontsize=7, color="dimgrey")
        ax.set_xlabel("parameters (count, log scale)")
    else:
        ratio = pts[xcol].max() / max(pts[xcol].min(), 1e-12) if len(pts) else 1
        if ratio > 20:
            ax.set_xscale("log")
        ax.set_xlabel("training time (s" + (", log scale)" if ratio > 20 else ")"))
    losses = pts["loss"][pts["loss"] > 0]
    if len(losses) and losses.max() / losses.min() > 20:
        ax.set_yscale("log")
    if top is not None:
        ax.set_ylim(top=top)
    ax.grid(True, which="major", alpha=0.3)
    return n_above


def _legend_handles(families: list[str], has_short: bool):
    from matplotlib.lines import Line2D
    h = [Line2D([], [], marker="o", ls="", color=family_color(f, families), label=f) for f in families]
    h.append(Line2D([], [], color="black", lw=1.6, label="front (all families)"))
    h.append(Line2D([], [], color="grey", ls="--", lw=1, label="front of one family"))
    h.append(Line2D([], [], marker="o", ls="", mfc="none", mec="black", ms=10, label="on 3-objective front"))
    if has_short:
        h.append(Line2D([], [], marker="o", ls="", mfc="none", mec="grey", label="stopped early (ASHA)"))
    return h


def plot(points: pd.DataFrame, res: Results, out, xcol: str, params: str = "trained") -> str:
    sources = [s for s in ("search", "confirmed") if s in set(points["source"])]
    families = sort_families(points["family"])
    fig, axes = plt.subplots(1, len(sources), figsize=(6.5 * len(sources) + 1.5, 4.8), squeeze=False)
    for ax, source in zip(axes[0], sources):
        pts = points[points["source"] == source]
        n_above = _draw_panel(ax, pts, xcol, res.budgets(), families)
        short = int((~pts["full_budget"]).sum())
        what = (f"search trials: {int(pts['full_budget'].sum())} full budget, {short} stopped early (hollow)"
                if source == "search" else f"confirmed configurations: {len(pts)}")
        if n_above:
            what += f"; {n_above} off scale above (triangles)"
        ax.set_title(what, fontsize=9)
        ax.set_ylabel(LOSS_LABEL[source].replace("per pixel", "of f(x)") if res.regression else LOSS_LABEL[source])
    name = "parameters" if xcol == "params" else "training time"
    if params == "pruned":
        name += " (pruned models)"
    fig.suptitle(f"{res.run.get('space', res.path.name)} on {res.run.get('dataset', '?')}: loss vs {name} "
                 f"(lower left is better)")
    fig.legend(handles=_legend_handles(families, bool((~points["full_budget"]).any())), loc="center left",
               bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    tag = "_pruned" if params == "pruned" else ""
    path = out / f"pareto{tag}_{'params' if xcol == 'params' else 'time'}.png"
    save(fig, path)
    return path.name


def run(res: Results, out, loss: str = "auto", params: str = "trained") -> dict:
    """params "pruned": the fronts of the pruned models, in pareto_pruned.csv etc."""
    tag = "_pruned" if params == "pruned" else ""
    points = pareto_table(res, loss, params)
    points.to_csv(out / f"pareto{tag}.csv", index=False)
    hv = hypervolumes(points)
    hv.to_csv(out / f"hypervolume{tag}.csv", index=False)
    figures = [plot(points, res, out, "params", params), plot(points, res, out, "train_seconds", params)]
    return {"points": points, "hypervolume": hv, "files": [f"pareto{tag}.csv", f"hypervolume{tag}.csv", *figures]}
