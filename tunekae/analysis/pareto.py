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

With metric=NAME (`--metric`) the `loss` column holds that metric instead (val_NAME of the
trials, NAME's mean over the confirmed seeds; `loss_metric` names the column) and the files are
pareto_NAME*; a metric where higher is better is maximised, every other objective minimised.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError
from ..status import FINISHED
from .fronts import front_mask, hypervolume_2d, staircase
from .load import Results, confirm_hint
from .metric_names import DEFAULT, Metric, column, confirmed_values, lookup, not_in
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


def search_points(res: Results, params: str = "trained", metric: Metric | None = None) -> pd.DataFrame:
    df = res.results
    if params == "pruned":
        df = _pruned(df, "search", res)
    col = "val_loss" if metric is None or metric.is_default else column(metric, df, "search")
    if col is None:
        raise not_in(metric, res, "results.csv")
    df = df.assign(_v=pd.to_numeric(df[col], errors="coerce"))
    df = df[df["status"].isin(FINISHED) & np.isfinite(df["_v"]) & np.isfinite(df["params"])].copy()
    # a trial is full-budget by its loss; a metric it lacks keeps it off the fronts, as a NaN loss does
    df["full_budget"] &= np.isfinite(df["_v"])
    df["source"], df["loss_metric"], df["loss"], df["loss_std"] = "search", col, df["_v"], np.nan
    df["n_seeds"], df["rank"] = 1, np.nan
    return df.reindex(columns=KEEP)


def confirmed_points(res: Results, params: str = "trained", metric: Metric | None = None) -> pd.DataFrame:
    c = res.confirmed.copy()
    if params == "pruned":
        c = _pruned(c, "confirmed", res)
    if "test_loss_mean" not in c:
        raise UserError(f"{res.path / 'confirmed.csv'} has no test_loss_mean column; "
                        + confirm_hint(res.path))
    name = "test_loss_mean"
    if metric is not None and not metric.is_default:
        values = confirmed_values(res, metric)
        if values is None:
            raise not_in(metric, res, "confirmed_runs.csv / confirmed.csv")
        c = c.assign(arm=c["arm"].astype(str), trial_id=c["trial_id"].astype(str)).merge(
            values, on=["arm", "trial_id"], how="inner")
        c["test_loss_mean"], c["test_loss_std"] = c["mean"], c["std"]
        name = str(values["column"].iloc[0]) if len(values) else metric.name
        if name == metric.name:             # a per-seed column: the points are its mean over the seeds
            name = f"{name}_mean"
    out = pd.DataFrame({"source": "confirmed", "loss_metric": name, "loss": c["test_loss_mean"],
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


def pareto_table(res: Results, loss: str = "auto", params: str = "trained",
                 metric: Metric | None = None) -> pd.DataFrame:
    """Every point with membership columns on_front_{3d,params,time} and on_family_front_*.
    metric: its values in `loss` (maximised where higher is better); with loss="auto" a source
    that does not record it is left out (say, generation scores that only confirm computes)."""
    metric = metric or lookup(DEFAULT)
    if params == "pruned" and not metric.is_default:
        raise UserError(f"--params pruned draws the pruned models' loss; it takes no --metric ({metric.name})")
    if loss == "test" and res.confirmed is None:
        raise UserError(f"--loss test needs confirmed.csv in {res.path}; " + confirm_hint(res.path))
    in_search = metric.is_default or column(metric, res.results, "search") is not None
    in_confirmed = res.confirmed is not None and (metric.is_default or confirmed_values(res, metric) is not None)
    if not metric.is_default and loss == "auto" and not (in_search or in_confirmed):
        raise not_in(metric, res, "neither results.csv nor confirmed.csv")
    parts = []
    if loss == "val" or (loss == "auto" and in_search):
        res.require_full()
        parts.append(search_points(res, params, metric))
    if loss == "test" or (loss == "auto" and in_confirmed):
        parts.append(confirmed_points(res, params, metric))
    points = pd.concat(parts, ignore_index=True)
    for col in ("loss", "params", "train_seconds", "loss_std", "seconds_per_epoch"):
        points[col] = pd.to_numeric(points[col], errors="coerce")
    points["full_budget"] = points["full_budget"].astype(bool)
    points["higher_is_better"] = metric.higher
    points["_objective"] = metric.sign * points["loss"]          # minimised, like every other objective
    for name, cols in OBJECTIVES.items():
        points[f"on_front_{name}"] = False
        points[f"on_family_front_{name}"] = False
    for source in points["source"].unique():
        in_src = (points["source"] == source).to_numpy() & points["full_budget"].to_numpy()
        for name, cols in OBJECTIVES.items():
            cols = ["_objective" if c == "loss" else c for c in cols]
            points.loc[front_mask(points, cols, where=in_src), f"on_front_{name}"] = True
            points.loc[front_mask(points, cols, by="family", where=in_src), f"on_family_front_{name}"] = True
    return points.drop(columns="_objective")


def hypervolumes(points: pd.DataFrame, metric: Metric | None = None) -> pd.DataFrame:
    """Per source and family: area dominated in (log10 params, loss) up to ONE reference point per
    source, ref = (log10(1.1 x max params), 1.1 x max loss) over all full-budget points of that
    source, so families are comparable (bigger is better). `hypervolume_normalised` divides by the
    box from the smallest log10 params (over all families) and loss 0 to ref, so it lies in [0, 1].
    Another metric (any sign, either direction) is measured as m = sign x value, minimised, from
    its best full-budget value to ref = worst + 10% of the range; ref_loss is ref in its own units."""
    metric = metric or lookup(DEFAULT)
    rows = []
    for source in points["source"].unique():
        full = points[(points["source"] == source) & points["full_budget"]]
        if not len(full):
            continue
        logp = np.log10(full["params"].to_numpy(dtype=float))
        m = metric.sign * full["loss"].to_numpy(dtype=float)
        if metric.is_default:
            ref = (float(np.log10(1.1 * full["params"].max())), float(1.1 * full["loss"].max()))
            floor = 0.0
        else:
            span = float(m.max() - m.min()) or abs(float(m.max())) or 1.0
            ref, floor = (float(np.log10(1.1 * full["params"].max())), float(m.max() + 0.1 * span)), float(m.min())
        box = (ref[0] - logp.min()) * (ref[1] - floor)
        for family in ["all"] + sort_families(full["family"]):
            sel = full if family == "all" else full[full["family"] == family]
            pts = np.column_stack([np.log10(sel["params"].to_numpy(dtype=float)),
                                   metric.sign * sel["loss"].to_numpy(dtype=float)])
            hv = hypervolume_2d(pts, ref)
            col = "on_front_params" if family == "all" else "on_family_front_params"
            rows.append({"source": source, "loss_metric": sel["loss_metric"].iloc[0], "family": family,
                         "n_points": len(sel), "n_front": int(sel[col].sum()), "hypervolume": hv,
                         "hypervolume_normalised": hv / box if box > 0 else np.nan,
                         "ref_log10_params": ref[0], "ref_loss": metric.sign * ref[1]})
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


def _front_line(x, y, sign: float):
    """staircase() minimises y; a maximised metric is drawn through its negation."""
    fx, fy = staircase(x, sign * np.asarray(y, dtype=float))
    return fx, sign * fy


def _draw_panel(ax, pts: pd.DataFrame, xcol: str, budgets: list[dict], families: list[str],
                sign: float = 1.0) -> int:
    front_col = "on_front_params" if xcol == "params" else "on_front_time"
    fam_col = front_col.replace("on_front", "on_family_front")
    raw = pts
    # blown-up trials overflow a loss upwards; a maximised metric is not clipped
    pts, top, n_above = _clip_outliers(pts) if sign > 0 else (pts, None, 0)
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
        fx, fy = _front_line(*full[full[fam_col]][[xcol, "loss"]].to_numpy(dtype=float).T, sign) if len(full) \
            else ([], [])
        if len(fx) > 1:
            ax.step(fx, fy, where="post", color=color, ls="--", lw=1, alpha=0.9)
    front = pts[pts[front_col]]
    fx, fy = _front_line(front[xcol], front["loss"], sign)
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
    if len(losses) == pts["loss"].notna().sum() and len(losses) and losses.max() / losses.min() > 20:
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


def plot(points: pd.DataFrame, res: Results, out, xcol: str, params: str = "trained",
         metric: Metric | None = None) -> str:
    metric = metric or lookup(DEFAULT)
    sources = [s for s in ("search", "confirmed") if s in set(points["source"])]
    families = sort_families(points["family"])
    fig, axes = plt.subplots(1, len(sources), figsize=(6.5 * len(sources) + 1.5, 4.8), squeeze=False)
    for ax, source in zip(axes[0], sources):
        pts = points[points["source"] == source]
        n_above = _draw_panel(ax, pts, xcol, res.budgets(), families, metric.sign)
        short = int((~pts["full_budget"]).sum())
        what = (f"search trials: {int(pts['full_budget'].sum())} full budget, {short} stopped early (hollow)"
                if source == "search" else f"confirmed configurations: {len(pts)}")
        if n_above:
            what += f"; {n_above} off scale above (triangles)"
        ax.set_title(what, fontsize=9)
        if metric.is_default:
            ax.set_ylabel(LOSS_LABEL[source].replace("per pixel", "of f(x)") if res.regression else LOSS_LABEL[source])
        else:
            ax.set_ylabel(f"{'validation' if source == 'search' else 'test'} {metric.name}"
                          + ("" if source == "search" else " (mean ± std over seeds)"))
    name = "parameters" if xcol == "params" else "training time"
    if params == "pruned":
        name += " (pruned models)"
    what = "loss" if metric.is_default else metric.name
    corner = "upper left" if metric.higher else "lower left"
    assumed = "" if metric.known else f"; {metric.name}: lower assumed better"
    fig.suptitle(f"{res.run.get('space', res.path.name)} on {res.run.get('dataset', '?')}: {what} vs {name} "
                 f"({corner} is better{assumed})")
    fig.legend(handles=_legend_handles(families, bool((~points["full_budget"]).any())), loc="center left",
               bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    tag = "_pruned" if params == "pruned" else metric.tag
    path = out / f"pareto{tag}_{'params' if xcol == 'params' else 'time'}.png"
    save(fig, path)
    return path.name


def run(res: Results, out, loss: str = "auto", params: str = "trained", metric: Metric | None = None) -> dict:
    """params "pruned": the fronts of the pruned models, in pareto_pruned.csv etc.; metric: fronts
    over it instead of the loss, in pareto_NAME.csv, hypervolume_NAME.csv, pareto_NAME_*.png."""
    metric = metric or lookup(DEFAULT)
    tag = "_pruned" if params == "pruned" else metric.tag
    points = pareto_table(res, loss, params, metric)
    points.to_csv(out / f"pareto{tag}.csv", index=False)
    hv = hypervolumes(points, metric)
    hv.to_csv(out / f"hypervolume{tag}.csv", index=False)
    figures = [plot(points, res, out, "params", params, metric), plot(points, res, out, "train_seconds", params, metric)]
    notes = [] if metric.is_default else [f"fronts over {metric.name}: {metric.direction}"]
    if not metric.is_default and loss == "auto" and set(points["source"]) != {"search", "confirmed"} \
            and res.confirmed is not None:
        notes.append(f"only the {points['source'].iloc[0]} points record {metric.name}")
    return {"points": points, "hypervolume": hv, "notes": notes,
            "files": [f"pareto{tag}.csv", f"hypervolume{tag}.csv", *figures]}
