"""`table`: one row per arm (family x budget), its best configuration, in the style of a review
blog's results table: family, key hyperparameters, params, test loss mean ± std over the
confirmation seeds, time per epoch, latent and denoising metrics. Without confirmed.csv it falls
back to each arm's best full-budget search trial on VALIDATION metrics and says so."""
from __future__ import annotations

import math
import shlex

import numpy as np
import pandas as pd

from ..errors import UserError
from .load import Results
from .metric_names import DEFAULT, Metric, column, confirmed_values, lookup, not_in
from .style import fmt_loss, fmt_metric, fmt_params, fmt_pm, fmt_seconds, markdown_table, sort_families

AE_METRICS = ["knn_acc", "recall_at_5", "denoise_sp_mse", "denoise_gauss_mse", "psnr"]
REGRESSION_METRICS = ["rmse", "pruned_params"]   # pykan reports RMSE; pruned size where a space prunes


def metrics_for(res: Results) -> list[str]:
    """The metrics a table shows beside the loss: what the task records."""
    if not res.regression:
        return AE_METRICS
    return REGRESSION_METRICS if res.pruned else REGRESSION_METRICS[:1]


HP_ORDER = ["order", "grid", "hidden_activation", "latent_activation", "output_activation", "optimizer", "lr",
            "batch_size", "weight_decay", "beta", "derp_lambda", "derp_probes", "mmd_lambda", "lamb",
            "lamb_entropy", "kan_reg", "init", "dropout", "latent_l1", "noise", "noise_level"]


def best_confirmed(res: Results, select: str = "val", metric: Metric | None = None) -> pd.DataFrame:
    """Each arm's best row of confirmed.csv (test: lowest test_loss_mean; val: lowest rank).
    With a metric other than the loss, rows carry its metric_mean / metric_std / metric_n over
    the seeds; test: the best mean of it; val: the best validation value of it in the search
    (the search's rank where the search did not record it, see val_selection_note)."""
    if metric is None or metric.is_default:
        c = res.confirmed.copy()
        c["test_loss_mean"] = pd.to_numeric(c["test_loss_mean"], errors="coerce")
        c = c[np.isfinite(c["test_loss_mean"])]
        key = ["rank", "test_loss_mean"] if select == "val" and "rank" in c else ["test_loss_mean"]
        return c.sort_values(key).groupby("arm", sort=False).head(1)
    values = confirmed_values(res, metric)
    if values is None:
        raise not_in(metric, res, "confirmed_runs.csv / confirmed.csv")
    c = res.confirmed.assign(arm=res.confirmed["arm"].astype(str), trial_id=res.confirmed["trial_id"].astype(str))
    c = c.merge(values.rename(columns={"mean": "metric_mean", "std": "metric_std", "n": "metric_n",
                                       "column": "metric_column"}), on=["arm", "trial_id"], how="inner")
    c = c[np.isfinite(c["metric_mean"])]
    c["_key"] = metric.sign * c["metric_mean"]
    key = ["_key"]
    val = column(metric, res.results, "search")
    if select == "val" and val is not None:
        by_trial = res.results.assign(trial_id=res.results["trial_id"].astype(str)).drop_duplicates("trial_id")
        c["_val"] = metric.sign * c["trial_id"].map(by_trial.set_index("trial_id")[val].pipe(pd.to_numeric,
                                                                                             errors="coerce"))
        key = ["_val", "rank", "_key"] if "rank" in c else ["_val", "_key"]
    elif select == "val" and "rank" in c:
        key = ["rank", "_key"]
    return c.sort_values(key, na_position="last").groupby("arm", sort=False).head(1).drop(
        columns=[k for k in ("_key", "_val") if k in c])


def val_selection_note(res: Results, metric: Metric, select: str) -> list[str]:
    """Why --select val falls back to the search's rank: the search did not record the metric."""
    if metric.is_default or select != "val" or column(metric, res.results, "search") is not None:
        return []
    return [f"the search recorded no validation {metric.name}: each arm's configuration is the search's "
            f"validation rank 1 (by its loss); the families are then compared on {metric.name}"]


def best_search(res: Results, metric: Metric | None = None) -> pd.DataFrame:
    full = res.require_full()
    if metric is None or metric.is_default:
        return full.sort_values("val_loss").groupby("arm", sort=False).head(1)
    col = column(metric, full, "search")
    if col is None:
        raise not_in(metric, res, "no full-budget trial in results.csv")
    key = metric.sign * pd.to_numeric(full[col], errors="coerce")
    full = full.assign(_key=key.where(np.isfinite(key)), metric_mean=pd.to_numeric(full[col], errors="coerce"),
                       metric_column=col).dropna(subset=["_key"])
    return full.sort_values("_key").groupby("arm", sort=False).head(1).drop(columns="_key")


def _value(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(v)
    if isinstance(v, (float, np.floating)):
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e6 else f"{v:.2g}"
    return str(v)


def key_hyperparameters(row: pd.Series) -> str:
    """'hidden 64,32; order 3; optimizer adam; lr 0.0012; ...' from hidden and every hp_* set."""
    hidden = row.get("hidden")
    parts = [f"hidden {hidden if isinstance(hidden, str) and hidden.strip() else 'none'}"]
    names = [c[3:] for c in row.index if c.startswith("hp_")]
    for name in sorted(names, key=lambda n: (HP_ORDER.index(n) if n in HP_ORDER else len(HP_ORDER), n)):
        v = row.get(f"hp_{name}")
        if v is None or (isinstance(v, float) and math.isnan(v)) or name == "seed":
            continue
        parts.append(f"{name} {_value(v)}")
    return "; ".join(parts)


def results_table(res: Results, select: str = "val", metric: Metric | None = None) -> tuple[pd.DataFrame, str]:
    """(numeric table, heading). Rows sorted by budget, then the metric (the loss by default).
    With another metric, its values are in columns named after it (NAME, NAME_std)."""
    metric = metric or lookup(DEFAULT)
    name = metric.name
    metrics = [m for m in metrics_for(res) if m != name]
    confirmed = res.confirmed is not None and "test_loss_mean" in res.confirmed and \
        (metric.is_default or confirmed_values(res, metric) is not None)
    if confirmed:
        best = best_confirmed(res, select, metric)
        rows = [{"source": "confirmed test", "loss": r.get("test_loss_mean"), "loss_std": r.get("test_loss_std"),
                 "n": r.get("n"), "seconds_per_epoch": r.get("seconds_per_epoch_mean"),
                 "train_seconds": r.get("train_seconds_mean"),
                 **{m: r.get(f"{m}_mean") for m in metrics}, **_ids(r), **_metric_cells(r, metric)}
                for _, r in best.iterrows()]
        seeds = int(pd.to_numeric(best["n"], errors="coerce").max()) if "n" in best and len(best) else 0
        if metric.is_default:
            rule = "lowest test loss" if select == "test" else "best validation rank"
        else:
            rule = f"best test {name}" if select == "test" else f"best validation {name}"
        heading = (f"Confirmed test results: each arm's best configuration ({rule}), mean ± std over "
                   f"{seeds} seeds")
    else:
        best = best_search(res, metric)
        rows = [{"source": "search validation", "loss": r.get("val_loss"), "loss_std": np.nan, "n": 1,
                 "seconds_per_epoch": r.get("seconds_per_epoch"), "train_seconds": r.get("train_seconds"),
                 **{m: r.get(m if m == "pruned_params" else f"val_{m}") for m in metrics}, **_ids(r),
                 **_metric_cells(r, metric)} for _, r in best.iterrows()]
        why = ("no confirmed.csv" if res.confirmed is None else f"confirm recorded no {name}")
        heading = (f"VALIDATION results of each arm's best full-budget search trial (single runs; {why}, so no "
                   f"test results: run `python -m tunekae confirm {shlex.quote(str(res.path))}`)")
    if not metric.is_default:
        heading += f"; ranked by {name}: {metric.direction}"
    if not rows:
        raise UserError(f"{res.path / 'confirmed.csv'} holds no configuration with a finite test loss; "
                        f"re-run `python -m tunekae confirm {shlex.quote(str(res.path))}`")
    table = pd.DataFrame(rows)
    order = {f: i for i, f in enumerate(sort_families(table["family"]))}
    key = "loss" if metric.is_default else name
    table = table.assign(_f=table["family"].map(order), _k=metric.sign * pd.to_numeric(table[key], errors="coerce"))
    table = table.sort_values(["budget", "_k", "_f"]).drop(columns=["_f", "_k"])
    cols = ["budget", "budget_label", "family", "arm", "trial_id", "rank", "hyperparameters", "params", "loss",
            "loss_std", *([] if metric.is_default else [name, f"{name}_std", "metric_column"]), "n",
            "seconds_per_epoch", "train_seconds", *metrics, "source"]
    return table.reindex(columns=list(dict.fromkeys(cols))).reset_index(drop=True), heading


def _metric_cells(r: pd.Series, metric: Metric) -> dict:
    if metric.is_default:
        return {}
    return {metric.name: r.get("metric_mean"), f"{metric.name}_std": r.get("metric_std", np.nan),
            "metric_column": r.get("metric_column")}


def _ids(r: pd.Series) -> dict:
    return {"budget": r.get("budget"), "budget_label": r.get("budget_label"), "family": r.get("family"),
            "arm": r.get("arm"), "trial_id": r.get("trial_id"), "rank": r.get("rank", 1),
            "params": r.get("params"), "hyperparameters": key_hyperparameters(r)}


def to_markdown(table: pd.DataFrame, heading: str, confirmed: bool, metrics: list[str] = AE_METRICS,
                metric: Metric | None = None) -> str:
    loss_name = "test MSE (mean ± std)" if confirmed else "val MSE"
    pre = "" if confirmed else "val "
    chosen = {} if metric is None or metric.is_default else {
        "chosen": [fmt_pm(m, s) for m, s in zip(table[metric.name], table[f"{metric.name}_std"])]}
    metrics = [m for m in metrics if m in table and (metric is None or m != metric.name)]
    shown = pd.DataFrame({
        "budget": [f"{b} ({fmt_params(p)})" for b, p in zip(table["budget_label"], table["budget"])],
        "family": table["family"], "hyperparameters": table["hyperparameters"],
        "params": table["params"].map(fmt_params),
        "loss": [fmt_pm(m, s) for m, s in zip(table["loss"], table["loss_std"])], **chosen,
        "spe": table["seconds_per_epoch"].map(fmt_seconds),
        **{m: table[m].map(fmt_params if m == "pruned_params" else fmt_loss if "denoise" in m or m == "rmse"
                           else fmt_metric) for m in metrics}})
    columns = {"budget": "budget", "family": "family", "hyperparameters": "key hyperparameters",
               "params": "params", "loss": loss_name,
               "chosen": f"{pre}{metric.name if chosen else ''}" + (" (mean ± std)" if confirmed else ""),
               "spe": "train time (s/epoch)",
               "knn_acc": f"{pre}kNN acc", "recall_at_5": f"{pre}recall@5",
               "denoise_sp_mse": f"{pre}denoise s&p MSE", "denoise_gauss_mse": f"{pre}denoise gauss MSE",
               "psnr": f"{pre}PSNR (dB)", "rmse": f"{pre}RMSE", "pruned_params": "params after pruning"}
    return f"### {heading}\n\n" + markdown_table(shown, {k: v for k, v in columns.items() if k in shown})


def run(res: Results, out, select: str = "val", metric: Metric | None = None) -> dict:
    """metric: rank on it instead of the loss; writes table_NAME.md / .csv beside the default."""
    metric = metric or lookup(DEFAULT)
    table, heading = results_table(res, select, metric)
    confirmed = bool(len(table)) and table["source"].iloc[0] == "confirmed test"
    table.to_csv(out / f"table{metric.tag}.csv", index=False)
    md = to_markdown(table, heading, confirmed, metrics_for(res), metric)
    (out / f"table{metric.tag}.md").write_text(md)
    notes = val_selection_note(res, metric, select) if confirmed else []
    if not metric.known:
        notes.append(f"{metric.name} is not in the metric registry: lower is taken as better")
    return {"table": table, "heading": heading, "markdown": md, "confirmed": confirmed, "notes": notes,
            "files": [f"table{metric.tag}.md", f"table{metric.tag}.csv"]}
