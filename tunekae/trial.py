"""One trial, without Ray: sampled parameters -> solved widths -> train -> per-epoch reports ->
final validation metrics. A search trains every trial through run_trial in Tune's trial
processes; `confirm` and `tunekae train` use the same engine (train.fit) on the configuration
that run_trial records as config_json. ArmSpec and RunSpec are what a trial process is told
about its arm and its search.
"""
from __future__ import annotations

import json
import queue
import threading
import traceback
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Iterator

from .budget import InfeasibleBudget, Match, config_params, count_flops, solve_widths
from .models import ModelConfig, build_model
from .status import FINISHED

# Options the search sets for every arm alike, or solves: a space that sampled one would either
# be overridden without a word or make its arm unlike the others.
RESERVED = {"family": "the arm's layer family", "variant": "the arm's variant", "input_dim": "the dataset's",
            "output_dim": "the dataset's (a regressor's targets)",
            "latent_dim": "the space's latent_dim", "hidden": "solved from the budget (sample the depth and shape)",
            "seed": "the search's --seed", "epochs": "the search's --epochs, the same for every arm",
            "device": "the search's", "threads": "the trial's CPU share (--cpus-per-trial)", "extra": "internal"}


@dataclass(frozen=True)
class ArmSpec:
    """One arm (a family at a budget) as its trials see it."""
    key: str                    # mlp_b2128: the arm's name in tables, studies and logs
    family: str                 # the arm's label: mlp, kae, vae, ...
    layer: str                  # its layer family: linear, kae, kan, cheby, rbf
    variant: str                # ae or a VAE-family variant
    budget: int
    fixed: dict = field(default_factory=dict)   # model options the arm holds fixed
    hidden: tuple[int, ...] | None = None       # fixed widths: no budget to solve for
    latent_dim: int | None = None               # None: the search's (RunSpec.latent_dim)
    train_size: int | None = None               # training images its trials train on (None: all)


@dataclass(frozen=True)
class RunSpec:
    """What every trial of a search shares."""
    input_dim: int
    latent_dim: int
    epochs: int
    tolerance: float = 0.02
    output_dim: int = 1         # a regressor's outputs
    seed: int = 0
    threads: int | None = None  # torch threads: the trial's CPU share
    device: str = "auto"


def tunable_names() -> set[str]:
    """What a search space may sample: ModelConfig and TrainConfig fields, less RESERVED."""
    from .train import TrainConfig
    return ({f.name for f in fields(ModelConfig)} | {f.name for f in fields(TrainConfig)}) - set(RESERVED)


def misnamed_params(names) -> list[str]:
    """Why sampled names cannot be used, one line each: a reserved option, or no option at all
    (a typo such as `learning_rate` would be sampled, recorded and never used). `depth` and the
    `shape_d<depth>` labels of spaces.suggest_architecture are the search's own."""
    tunable = tunable_names()
    problems = []
    for name in sorted(names):
        if name == "depth" or name.startswith("shape_d") or name in tunable:
            continue
        problems.append(f"{name!r}, which is {RESERVED[name]}, not for a space to sample" if name in RESERVED else
                        f"{name!r}, which is no model or training option (they are: {', '.join(sorted(tunable))})")
    return problems


def split_params(params: dict) -> tuple[dict, dict]:
    """Sampled parameters -> (ModelConfig fields, TrainConfig fields). ValueError for a name
    that is neither or that the search reserves (misnamed_params)."""
    from .train import TrainConfig
    problems = misnamed_params(params)
    if problems:
        raise ValueError("the space sampled " + "; ".join(problems))
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)}
    model = {k: v for k, v in params.items() if k in model_keys}
    train = {k: v for k, v in params.items() if k in train_keys}
    return model, train


def unsolved_configs(params: dict, arm: ArmSpec, run: RunSpec, seed: int):
    """(ModelConfig without hidden widths, TrainConfig); ValueError or TypeError for a value
    either refuses (space_checks uses this to check what a define samples, without solving)."""
    from .train import TrainConfig
    model_fields, train_fields = split_params(params)
    base = ModelConfig(family=arm.layer, variant=arm.variant, input_dim=run.input_dim,
                       latent_dim=arm.latent_dim or run.latent_dim,
                       output_dim=run.output_dim, seed=seed, **{**arm.fixed, **model_fields})
    train = TrainConfig(**{**train_fields, "epochs": run.epochs, "seed": seed, "threads": run.threads,
                           "device": run.device})
    return base, train


def build_configs(params: dict, arm: ArmSpec, run: RunSpec, seed: int):
    """Returns (ModelConfig with solved widths, TrainConfig, Match). Raises InfeasibleBudget."""
    base, train = unsolved_configs(params, arm, run, seed)
    if arm.hidden is not None:
        model = base.replace(hidden=arm.hidden)
        return model, train, Match(arm.hidden, config_params(model), arm.budget)
    match = solve_widths(base, arm.budget, int(params.get("depth", 1)), run.tolerance)
    return base.replace(hidden=match.hidden), train, match


def run_trial(params: dict, arm: ArmSpec, run: RunSpec, splits, report: Callable[[dict], None],
              seed: int, split: str = "val",
              should_stop: Callable[[], bool] | None = None) -> dict:
    """Train one configuration, calling report(metrics) once per epoch; the last report carries
    the final metrics on `split` (validation in a search, test in confirmation).
    Never raises for bad configurations: infeasible, diverged and crashed trials end with a
    status and a large finite loss so that schedulers and samplers can rank them.
    should_stop() returning True ends training at the next batch (see train.fit)."""
    from .metrics import evaluate, run_status
    from .train import DIVERGED_LOSS, fit, seed_everything

    base = {"arm": arm.key, "family": arm.family, "budget": arm.budget}
    try:
        model_cfg, train_cfg, match = build_configs(params, arm, run, seed)
    except InfeasibleBudget as e:
        final = {**base, "status": "infeasible", "error": str(e), "val_loss": DIVERGED_LOSS,
                 "epochs_completed": 0}
        report(final)
        return final
    except (ValueError, TypeError) as e:   # a space sampled an invalid value (lr 0, a string): recorded
        final = {**base, "status": "error", "error": f"invalid configuration: {e}", "val_loss": DIVERGED_LOSS,
                 "epochs_completed": 0}
        report(final)
        return final
    seed_everything(seed)                     # before building: init, data order and probes
    model = build_model(model_cfg)
    static = {**base, "params": match.params, "flops": count_flops(model, model_cfg.input_dim),
              "hidden": ",".join(map(str, match.hidden)), "depth": len(match.hidden),
              "config_json": json.dumps({"model": model_cfg.to_dict(), "train": train_cfg.__dict__})}
    final: dict = {}

    def on_epoch(epoch_report) -> None:
        nonlocal final
        metrics = {**static, "epoch": epoch_report.epoch, "epochs_completed": epoch_report.epoch,
                   "train_loss": epoch_report.train_loss, "val_loss": epoch_report.val_loss,
                   "epoch_seconds": epoch_report.epoch_seconds, "train_seconds": epoch_report.train_seconds,
                   "seconds_per_epoch": epoch_report.train_seconds / max(epoch_report.epoch, 1),
                   "peak_mem_mb": epoch_report.peak_mem_mb, "status": epoch_report.status,
                   **term_metrics(epoch_report)}
        last = epoch_report.epoch >= train_cfg.epochs and epoch_report.status == "ok"
        if last:                              # final metrics ride on the last report
            try:
                for name, value in evaluate(model, splits, split=split, seed=seed).items():
                    if name == "val_loss":    # keep the epoch's, as ASHA and every other report had it
                        continue              # (evaluate's float64 sum differs in the 10th digit)
                    metrics[_metric_name(name, split)] = value
            except Exception as e:  # a metric failing must not lose the trained trial
                metrics["metrics_error"] = f"{type(e).__name__}: {e}"
            loss = metrics.get(f"{split}_loss", epoch_report.val_loss)
            metrics["status"], metrics[_metric_name("mean_image_mse", split)] = run_status("ok", loss, splits, split)
            if train_cfg.prune:
                from .pruning import pruned_metrics
                metrics.update(pruned_metrics(model, splits, split))
        final = metrics
        report(metrics)

    try:
        # every report carries its peak memory: a dict handed to report() must not change after
        # (Tune may already have sent it)
        result = fit(model, splits, train_cfg, on_epoch=on_epoch, should_stop=should_stop)
        if result.status == "diverged":
            final = {**final, "status": "diverged", "val_loss": DIVERGED_LOSS}
    except Exception as e:  # out of memory, bad config: recorded, the search goes on
        final = {**static, **final, "status": "error", "val_loss": DIVERGED_LOSS,
                 "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=5)}
        report(final)
    return final


def term_metrics(epoch_report) -> dict:
    """An epoch's loss terms as report keys: train_<term> for every training term beside the
    reconstruction (kl, ks, mmd, kan_l1, kan_entropy, latent_l1: epoch means), train_objective
    for what was minimised, and on validation val_<term> and val_objective (train.validation_terms;
    the reconstruction loss itself where the objective has no other term)."""
    out = {f"train_{k}": v for k, v in epoch_report.terms.items() if k not in ("recon", "loss")}
    out["train_objective"] = epoch_report.terms.get("loss", epoch_report.train_loss)
    out.update({f"val_{k}": v for k, v in epoch_report.val_terms.items() if k != "loss"})
    out["val_objective"] = epoch_report.val_terms.get("loss", epoch_report.val_loss)
    return out


def _metric_name(name: str, split: str) -> str:
    """Validation metrics carry the split in their name (val_knn_acc); test metrics do not."""
    return name if name == f"{split}_loss" or split == "test" else f"{split}_{name}"


_END = object()   # stream_trial's training thread: the last item


def stream_trial(params: dict, arm: ArmSpec, run: RunSpec, splits, seed: int,
                 stop: threading.Event | None = None) -> Iterator[dict]:
    """run_trial in a thread of its own, its per-epoch reports yielded as they come, so the
    consumer (tune.report, which blocks until the driver has taken the result: several ms on
    2 busy cores) never holds up training. Setting `stop` or closing the generator (a trial
    that Tune stopped) makes training abandon the epoch under way at its next batch."""
    stop = stop or threading.Event()
    reports: queue.SimpleQueue = queue.SimpleQueue()

    def train() -> None:
        try:
            run_trial(params, arm, run, splits, report=reports.put, seed=seed, should_stop=stop.is_set)
            reports.put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            reports.put(e)

    worker = threading.Thread(target=train, name=f"tunekae-trial-{arm.key}", daemon=True)
    worker.start()
    try:
        while (item := reports.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def warm_up(splits, latent_dim: int, threads: int = 1, device: str = "cpu") -> None:
    """Pay once, before any real trial, the costs that every fresh process meets at its first
    trial: the optimizer's first step imports torch._dynamo, the FLOP counter its dispatch
    machinery, the final metrics scikit-learn and SciPy, and label_agreement fits its pixel
    classifier on the training data (cached per process). Two one-epoch trials, an autoencoder
    and a VAE, on a slice of the data walk the same code as a real trial."""
    import torch
    from threadpoolctl import threadpool_limits

    from .budget import config_params
    from .metrics import pixel_classifier

    if not splits.regression:   # a function has no classes to classify
        with threadpool_limits(limits=max(1, torch.get_num_threads())):   # as metrics.evaluate fits it
            pixel_classifier(splits.train_x, splits.train_y)
    cut = {f"{s}_{k}": getattr(splits, f"{s}_{k}")[:n] for s, n in (("train", 256), ("val", 64))
           for k in ("x", "y", "t") if getattr(splits, f"{s}_{k}") is not None}
    small = replace(splits, **cut)
    run = RunSpec(input_dim=splits.input_dim, latent_dim=latent_dim, epochs=1, threads=threads, device=device,
                  output_dim=splits.output_dim)
    for variant in (("regressor",) if splits.regression else ("ae", "vae")):
        budget = config_params(ModelConfig(family="linear", variant=variant, input_dim=splits.input_dim,
                                           latent_dim=latent_dim, output_dim=splits.output_dim))
        arm = ArmSpec(f"warm_up_{variant}", "mlp", "linear", variant, budget)
        final = run_trial({"depth": 0, "batch_size": 64}, arm, run, small, report=lambda _: None, seed=0)
        if final.get("status") not in FINISHED or "metrics_error" in final:   # 1 epoch may well collapse
            raise RuntimeError(f"warm-up trial failed: {final.get('error') or final.get('metrics_error')}")
