"""Confirmation: retrain each arm's top full-budget configurations with fresh seeds (in parallel
through Ray tasks), evaluate them on the TEST split with every metric, and write
confirmed_runs.csv (a row per configuration and seed) and confirmed.csv (mean, std, n)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from .generation import METRICS as GENERATION_METRICS
from .results import write_atomic
from .status import FINISHED

PARTIAL_MODELS = "models.partial"   # an unfinished confirm's models
CONFIRM_SEED_BASE = 10_000   # fresh seeds, disjoint from the search's trial seeds
SUMMARY = ["test_loss", "rmse", "pruned_params", "pruned_test_loss", "mean_image_mse", "psnr", "knn_acc", "linear_acc", "recall_at_5", "denoise_sp_mse", "denoise_gauss_mse",
           "label_agreement", "class_sep", "silhouette", "kl", "active_units", "ks_distance", "train_objective",
           "val_objective", "train_seconds",
           "seconds_per_epoch", "val_loss", *GENERATION_METRICS]


def pick_top(results: pd.DataFrame, top: int, selection=None) -> pd.DataFrame:
    """Each arm's `top` best configurations among trials that ran the full epoch budget, by what
    the search selected on (selection.rank: collapsed ones too, ranked last, so that an arm whose
    every trial collapsed is confirmed as such; with two objectives, the Pareto set first)."""
    from .selection import Selection, rank
    full = results[results["status"].isin(FINISHED) & (results["epochs_completed"] >= results["epochs_budget"])]
    ranked = rank(full, selection or Selection())
    picks = ranked.groupby("arm", sort=False).head(top).sort_values("arm", kind="stable").copy()
    picks["rank"] = picks.groupby("arm").cumcount() + 1
    return picks


def confirm_one(config_json: str, seed: int, splits, threads: int, device: str = "cpu", train_size: int | None = None,
                search_seed: int = 0) -> dict:
    """Retrain one configuration with one seed on `device` (what this run was given, not what
    the search's trial had), on the training images its arm had (train_size of the search's
    seeded subset); test metrics + the state dict."""
    import torch

    from .data import subset_train
    from .generation import generation_scores
    from .metrics import evaluate, run_status
    from .models import ModelConfig, build_model
    from .train import TrainConfig, fit, seed_everything
    from .trial import term_metrics
    torch.set_num_threads(max(1, threads))
    splits = subset_train(splits, train_size, search_seed)
    cfg = json.loads(config_json)
    model_cfg = ModelConfig.from_dict({**cfg["model"], "seed": seed})
    train_cfg = TrainConfig(**{**cfg["train"], "seed": seed, "threads": threads, "device": device})
    seed_everything(seed)
    model = build_model(model_cfg)
    result = fit(model, splits, train_cfg)
    row = {"seed": seed, "status": result.status, "train_seconds": result.train_seconds,
           "seconds_per_epoch": result.seconds_per_epoch, "val_loss": result.val_loss}
    if result.history:   # the last epoch's loss terms (train_kl, val_objective, ...), as the search records them
        row.update(term_metrics(result.history[-1]))
    if result.status == "ok":
        row.update(evaluate(model, splits, split="test", seed=seed))
        row.update(generation_scores(model, splits, seed=seed))
        row["status"], row["mean_image_mse"] = run_status("ok", row["test_loss"], splits, "test")
        if train_cfg.prune:
            from .pruning import pruned_metrics
            row.update(pruned_metrics(model, splits, "test"))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"row": row, "model": {"model_config": model_cfg.to_dict(), "state_dict": state}}


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    keys = ["arm", "family", "budget", "budget_label", "trial_id", "rank"]
    hp = [c for c in runs if c.startswith("hp_")] + [c for c in ("params", "flops", "hidden", "depth", "latent_dim",
                                                                 "train_size") if c in runs]
    out = []
    for key, group in runs.groupby(keys, sort=False):
        # a collapsed seed is that configuration's real outcome: in the mean, and counted
        ok = group[group["status"].isin(FINISHED)]
        row = dict(zip(keys, key))
        row.update({c: group[c].iloc[0] for c in hp})
        row["n"] = len(ok)
        row["n_collapsed"] = int((group["status"] == "collapsed").sum())
        row["n_failed"] = len(group) - len(ok)
        for m in SUMMARY:
            if m in ok and ok[m].notna().any():
                row[f"{m}_mean"] = ok[m].mean()
                row[f"{m}_std"] = ok[m].std(ddof=1) if len(ok) > 1 else 0.0
        out.append(row)
    return pd.DataFrame(out)


def searched_on_gpu(picks: pd.DataFrame) -> bool:
    """Whether the search's trials of these configurations trained on a GPU."""
    return any(str(json.loads(c)["train"].get("device", "cpu")).startswith("cuda") for c in picks["config_json"])


def gpus_per_run(requested: float | None, on_gpu: bool, cluster_gpus: float,
                 share: float) -> tuple[float, str | None]:
    """(GPU share of each run, a warning or None). Default: where the search trained, the
    search's default `share` of a GPU per run when it trained on GPUs, so that the confirmed
    seconds per epoch compare with the search's; CPU runs when it trained on CPUs."""
    if requested is not None:
        return requested, None
    if not on_gpu:
        return 0.0, None
    if cluster_gpus:
        return share, None
    return 0.0, ("the search trained on GPUs but this Ray cluster has none: the runs train on CPUs, so their "
                 "seconds per epoch do not compare with the search's")


def run_confirm(output: Path, top: int, seeds: int, cpus_per_trial: int, address: str | None,
                data_dir: str | None = None, gpus_per_trial: float | None = None) -> pd.DataFrame:
    import ray

    from .data import load_dataset
    from .search import GPU_SHARE, check_trial_fits, connect
    from .results import read_results, read_run_json
    from .selection import Selection
    from .search_trial import trial_train_size
    meta = read_run_json(output)
    results = read_results(output, meta)
    picks = pick_top(results, top, Selection.from_dict(meta.get("selection")))
    splits = load_dataset(meta["dataset"], data_dir=data_dir, seed=meta.get("seed", 0))
    connect(address)
    gpus, warning = gpus_per_run(gpus_per_trial, searched_on_gpu(picks), ray.cluster_resources().get("GPU", 0),
                                 GPU_SHARE)
    if warning:
        print(f"tunekae: warning: {warning}", file=sys.stderr)
    check_trial_fits(cpus_per_trial, gpus, address, what="a run")
    splits_ref = ray.put(splits)
    # A run trains on the device Ray gave it: a task with no GPU share may still see the GPU
    # (Ray 2.60 leaves CUDA_VISIBLE_DEVICES alone then), and on another node may have none.
    device = "cuda" if gpus else "cpu"
    task = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus)(confirm_one)
    jobs = []
    for _, pick in picks.iterrows():
        for s in range(seeds):
            jobs.append((pick, CONFIRM_SEED_BASE + s,
                         task.remote(pick["config_json"], CONFIRM_SEED_BASE + s, splits_ref, cpus_per_trial, device,
                                     trial_train_size(pick), int(meta.get("seed", 0)))))
    rows = []
    # The models land in models.partial/ and replace models/ only once every run is in, with the
    # tables: an interrupted confirm leaves the last finished one whole (and says so, see
    # analysis.load), never a mix of two.
    partial = output / PARTIAL_MODELS
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    import torch
    for pick, seed, ref in jobs:
        done = ray.get(ref)
        base = {k: pick[k] for k in ("arm", "family", "budget", "budget_label", "latent_dim", "train_size", "trial_id",
                                     "rank", "params", "flops", "hidden", "depth") if k in pick}
        base.update({k: pick[k] for k in pick.index if k.startswith("hp_")})
        rows.append({**base, **done["row"]})
        if seed == CONFIRM_SEED_BASE:   # one model per configuration, for reconstructions
            torch.save(done["model"], partial / f"{pick['arm']}__{pick['trial_id']}.pt")
    runs = pd.DataFrame(rows)
    confirmed = aggregate(runs)
    shutil.rmtree(output / "models", ignore_errors=True)
    partial.rename(output / "models")
    write_atomic(output / "confirmed_runs.csv", lambda tmp: runs.to_csv(tmp, index=False))
    write_atomic(output / "confirmed.csv", lambda tmp: confirmed.to_csv(tmp, index=False))
    # the default robustness sweep of the saved models (`python -m tunekae evaluate DIR` for others)
    from .robustness import parse_noise, sweep_dir
    robust = sweep_dir(output, parse_noise(None), data_dir)
    write_atomic(output / "robustness.csv", lambda tmp: robust.to_csv(tmp, index=False))
    return confirmed
