"""The training engine (no Ray): one readable loop from a model and tensors to per-epoch reports.

    result = train_model(ModelConfig(...), splits, TrainConfig(epochs=10), on_epoch=print)

Why it is fast: the data stay on the device as one tensor; a batch is an index_select of a
slice of a seeded permutation (no DataLoader, no per-sample transforms); batch losses
accumulate in a tensor and the host syncs once per epoch (no .item() per batch), which is also
when non-finite losses are caught; Adam/AdamW/SGD use torch's fused kernels. Why it is
reproducible: one seeded torch.Generator draws the order and the input corruption, the global
RNG (dropout, VAE samples) is reseeded from the same seed, and the thread count is fixed.
benchmarks/train_throughput.py measures it against the KAE paper's loop and a bare-GEMM floor.
"""
from __future__ import annotations

import copy
import math
import os
import random
import resource
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from .models import ModelConfig, build_model, corrupt
from .status import DIVERGED_LOSS

OPTIMIZERS = ("adam", "adamw", "sgd", "lbfgs")
GRID_SAMPLE = 2048           # training inputs a KAN grid update sees
_RNG_OFFSET = 0x5EED         # the global RNG (dropout, VAE noise) draws from seed + this
_VAL_NOISE_SEED = 0xDE405E   # a denoiser's validation corruption: the same for every trial and seed


@dataclass
class TrainConfig:
    optimizer: str = "adam"      # adam | adamw | sgd (momentum) | lbfgs (strong-Wolfe line search)
    lr: float = 1e-4
    weight_decay: float = 1e-4   # L2 (adam, sgd, lbfgs) or decoupled (adamw)
    momentum: float = 0.9        # sgd only
    batch_size: int = 256        # 0: the whole training split as one batch (typical for lbfgs)
    epochs: int = 10
    cosine: bool = False         # cosine-anneal the lr to 0 over all steps of the run
    grad_clip: float = 0.0       # max global gradient norm; 0 disables
    seed: int = 0
    device: str = "auto"         # auto: cuda when available, else cpu
    threads: int | None = None   # torch CPU threads; None: every CPU available to the process
    compile: bool = False        # torch.compile the forward + loss (falls back to eager on failure)
    grid_update_epochs: int = 0  # kan: update grids from data at the start of the first N epochs ...
    grid_update_every: int = 1   # ... every this many epochs (pykan's fit: 50 and 5, i.e. 10 updates)
    prune: bool = False          # after training, also score a pruned copy (pykan's prune; tunekae.pruning)

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        for name in ("lr", "weight_decay", "momentum", "grad_clip"):   # a space may sample anything
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), (int, float)):
                raise ValueError(f"{name} must be a number; got {getattr(self, name)!r}")
        for name in ("batch_size", "epochs", "grid_update_epochs", "grid_update_every"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int):
                raise ValueError(f"{name} must be a whole number; got {getattr(self, name)!r}")
        checks = [(self.lr > 0, "lr must be > 0"), (self.weight_decay >= 0, "weight_decay must be >= 0"),
                  (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
                  (self.batch_size >= 0, "batch_size must be >= 0 (0: full batch)"),
                  (self.epochs >= 1, "epochs must be >= 1"), (self.grad_clip >= 0, "grad_clip must be >= 0"),
                  (self.threads is None or self.threads >= 1, "threads must be >= 1"),
                  (self.grid_update_epochs >= 0, "grid_update_epochs must be >= 0"),
                  (self.grid_update_every >= 1, "grid_update_every must be >= 1")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EpochReport:
    epoch: int                   # 1-based
    train_loss: float            # mean per-pixel MSE of the training reconstructions this epoch
    val_loss: float              # mean per-pixel MSE of model.reconstruct on val (DIVERGED_LOSS if diverged)
    epoch_seconds: float         # training only, validation excluded
    train_seconds: float         # cumulative
    status: str = "ok"           # ok | diverged
    terms: dict = field(default_factory=dict)   # epoch means of every loss term ("loss": the objective)
    peak_mem_mb: float = math.nan   # peak memory of this fit so far (see peak_memory_mb)
    val_terms: dict = field(default_factory=dict)   # the weighted terms and the objective on val (validation_terms)


@dataclass
class FitResult:
    model: torch.nn.Module
    status: str                  # ok | diverged | stopped (on_epoch returned False, or should_stop())
    epochs_completed: int
    history: list[EpochReport]
    train_seconds: float
    seconds_per_epoch: float
    val_loss: float
    train_loss: float
    peak_mem_mb: float
    device: str


# ----------------------------------------------------------------------------- environment
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)              # also seeds every CUDA device
    torch.cuda.manual_seed_all(seed)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:               # not Linux
        return os.cpu_count() or 1


def resolve_threads(requested: int | None) -> int:
    """requested threads, or every available CPU; never more than the CPUs available (an
    oversubscribed 2-core machine made a 1 s epoch take 35 s)."""
    cores = available_cpus()
    return max(1, min(requested or cores, cores))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
    return device


def reset_peak_memory(device: torch.device) -> None:
    """Start a fit's peak-memory count afresh. A process trains many trials (Tune reuses its
    trial processes for trial after trial, arm after arm), so without this a trial's peak would
    be the largest of every trial before it. On the CPU, Linux resets the process's RSS
    high-water mark on writing 5 to /proc/self/clear_refs; where that is refused the peak stays
    the process's."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated, or the process's peak resident memory, since reset_peak_memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: KiB


# ----------------------------------------------------------------------------- pieces of the loop
def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel for the whole update (CPU and CUDA); measured faster than foreach here.
    fast = {"fused": True} if device.type in ("cpu", "cuda") else {"foreach": True}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fast)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fast)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **fast)
    # pykan's optimizer; its weight decay is an L2 term added in fit's closure.
    return torch.optim.LBFGS(params, lr=cfg.lr, history_size=10, line_search_fn="strong_wolfe",
                             tolerance_grad=1e-32, tolerance_change=1e-32)


def make_objective(model: torch.nn.Module, cfg: TrainConfig) -> Callable:
    """(x_in, x_clean) -> the model's loss terms; torch.compile'd on request (forward + loss in
    one graph: the output activation fuses with the loss), falling back to eager on failure."""
    def objective(x_in, x_clean):
        return model.loss_terms(x_clean, model(x_in))

    if not cfg.compile:
        return objective
    # Every fit compiles afresh (a new model means new guards anyway); without the reset a
    # long-lived Ray worker would hit dynamo's recompile limit and silently run eagerly.
    torch._dynamo.reset()
    state = {"fn": torch.compile(objective)}

    def guarded(x_in, x_clean):        # compile errors surface at the first call: fall back then
        try:
            return state["fn"](x_in, x_clean)
        except Exception as e:
            if state["fn"] is objective:
                raise
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                          f"training eagerly", RuntimeWarning, stacklevel=2)
            state["fn"] = objective
            return objective(x_in, x_clean)
    return guarded


def update_kan_grids(model: torch.nn.Module, x: torch.Tensor) -> bool:
    """Refit every KAN layer's grid to the activations that feed it, in forward order: a
    pre-hook updates a layer's grid just before that layer runs on the sample, so each later
    layer sees the output of the already-updated earlier ones. False when the activations are
    not finite (a diverged model)."""
    finite = [True]

    def hook(layer, inputs):
        if not bool(torch.isfinite(inputs[0]).all()):
            finite[0] = False
        elif finite[0]:
            layer.update_grid(inputs[0])

    handles = [layer.register_forward_pre_hook(hook) for layer in model.kan_layers()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model.reconstruct(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return finite[0]


@torch.no_grad()
def _squared_error_sum(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor | None,
                       batch_size: int) -> torch.Tensor:
    """Sum of squared errors of model.reconstruct over x against target (x itself when None), as
    a float64 tensor on the model's device (no sync)."""
    device = next(model.parameters()).device
    total = torch.zeros((), dtype=torch.float64, device=device)
    for i in range(0, len(x), batch_size):
        chunk = x[i:i + batch_size].to(device, non_blocking=True)
        want = chunk if target is None else target[i:i + batch_size].to(device, non_blocking=True)
        total += (model.reconstruct(chunk) - want).pow(2).sum(dtype=torch.float64)
    return total


def reconstruction_loss(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor | None = None,
                        batch_size: int = 4096) -> float:
    """Mean per-value MSE of model.reconstruct(x) vs target (the input itself for an autoencoder:
    per pixel), in eval mode, chunked."""
    was_training = model.training
    model.eval()
    try:
        want = x if target is None else target
        return float(_squared_error_sum(model, x, target, batch_size)) / max(want.numel(), 1)
    finally:
        model.train(was_training)


_VAL_TERMS_SEED = 0x7E5A     # a WAE's prior samples on val: the same draw every epoch


@torch.no_grad()
def validation_terms(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor,
                     batch_size: int = 4096) -> dict[str, float]:
    """The model's weighted loss terms (kl, ks, mmd) and its objective ("loss") on x in eval mode,
    chunk means weighted by chunk size. Eval mode means the code is the posterior mean (no
    sampling noise in the reconstruction term) and the KAN regularizers, measured on a training
    batch's activations, are left out: this is the variant's own loss as a validation number.
    A model without weighted terms ({} from weighted_terms) returns {}: its objective on val is
    its reconstruction loss, val_loss."""
    weighted = getattr(model, "weighted_terms", dict)()
    if not weighted:
        return {}
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(_VAL_TERMS_SEED)
            for i in range(0, len(x), batch_size):
                chunk = x[i:i + batch_size].to(device)
                want = target[i:i + batch_size].to(device)
                terms = model.loss_terms(want, model(chunk))
                for name in (*weighted, "loss"):
                    sums[name] = sums.get(name, 0.0) + float(terms[name]) * len(chunk)
    finally:
        model.train(was_training)
    return {name: total / max(len(x), 1) for name, total in sums.items()}


def warm_up_device(model: torch.nn.Module, cfg: TrainConfig, device: torch.device, x: torch.Tensor,
                   target: torch.Tensor) -> None:
    """One untimed training step and validation pass of a throwaway copy of the model on a batch
    `x`, before the first epoch's clock starts. A process's first step on a device pays one-off
    costs: on CUDA the cuBLAS handle and workspace and the lazily loaded kernels (0.44 s against
    0.01 s for a later epoch of a digits MLP on an H200, benchmarks/cuda_check.py), on the CPU
    the optimizer's first-step imports. Without this they would land in the training seconds of
    whichever trial a process happened to run first, and move it along the time axis of the
    Pareto fronts. The copy, its own optimizer and the forked RNG leave the real run exactly as
    it would have been; a failure here is left for the real step to meet and report."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            twin = copy.deepcopy(model)
            terms = twin.loss_terms(target, twin(x))
            terms["loss"].backward()
            if cfg.optimizer != "lbfgs":           # a line search's steps are the same kernels
                make_optimizer(twin, cfg, device).step()
            torch.randperm(len(x), generator=torch.Generator(device=device), device=device)
            reconstruction_loss(twin, x, target)
        except RuntimeError:
            pass
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- the loop
def fit(model: torch.nn.Module, splits, cfg: TrainConfig,
        on_epoch: Callable[[EpochReport], bool | None] | None = None,
        should_stop: Callable[[], bool] | None = None) -> FitResult:
    """Train `model` on splits.train_x, validating on splits.val_x after every epoch.
    on_epoch(report) returning False stops the run (status 'stopped'); so does should_stop()
    returning True, checked before every batch, which abandons the epoch under way (a search
    trial that a scheduler stopped while the next epoch had begun). A non-finite loss ends
    it as 'diverged' with val_loss DIVERGED_LOSS; it never raises for that."""
    device = resolve_device(cfg.device)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(resolve_threads(cfg.threads))
    try:
        return _fit(model, splits, cfg, on_epoch, device, should_stop or _never)
    finally:
        torch.set_num_threads(previous_threads)


def _never() -> bool:
    return False


def _fit(model, splits, cfg: TrainConfig, on_epoch, device: torch.device, should_stop) -> FitResult:
    model.to(device)
    model.train()
    train_x = splits.train_x.to(device=device, dtype=torch.float32).contiguous()
    val_x = splits.val_x.to(device=device, dtype=torch.float32)
    # regression (function fitting): targets beside the inputs; an autoencoder's target is its input
    regression = getattr(splits, "train_t", None) is not None
    train_t = splits.train_t.to(device=device, dtype=torch.float32).contiguous() if regression else None
    val_t = splits.val_t.to(device=device, dtype=torch.float32) if regression else None
    n = len(train_x)
    batch_size = n if cfg.batch_size <= 0 else min(cfg.batch_size, n)
    first = slice(0, min(batch_size, 256))
    warm_up_device(model, cfg, device, train_x[first], train_t[first] if regression else train_x[first])
    reset_peak_memory(device)      # after the warm-up's copy is gone; the model and data still count
    steps_per_epoch = math.ceil(n / batch_size)

    generator = torch.Generator(device=device).manual_seed(cfg.seed)   # data order + corruption
    torch.manual_seed(cfg.seed + _RNG_OFFSET)                           # dropout, VAE sampling
    mcfg: ModelConfig | None = getattr(model, "cfg", None)
    noise, noise_level = (mcfg.noise, mcfg.noise_level) if mcfg is not None else ("none", 0.0)
    denoising = noise != "none" and noise_level > 0
    # a denoiser is validated as it is trained, on corrupted inputs against the clean ones; the
    # corruption is drawn once (its own seed), so that every epoch's val_loss meets the same noise
    val_in = val_x if not denoising else corrupt(val_x, noise, noise_level,
                                                 torch.Generator(device=device).manual_seed(_VAL_NOISE_SEED))

    optimizer = make_optimizer(model, cfg, device)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * steps_per_epoch)
                 if cfg.cosine else None)
    objective = make_objective(model, cfg)
    names: list[str] = []            # the loss terms' names, from the first batch
    params = [p for p in model.parameters() if p.requires_grad]
    lbfgs = cfg.optimizer == "lbfgs"
    kan_layers = getattr(model, "kan_layers", list)()

    def detached(terms: dict) -> torch.Tensor:
        """The terms as one detached vector (summed per epoch on the device: no sync per batch)."""
        if not names:
            names.extend(terms)
        return torch.stack([torch.as_tensor(terms[k], device=device).detach() for k in names])

    def step(x_in: torch.Tensor, x_clean: torch.Tensor) -> torch.Tensor:   # x_clean: what to output
        """One optimizer step; returns the detached terms (before the update)."""
        if not lbfgs:
            terms = objective(x_in, x_clean)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
            optimizer.step()
            return detached(terms)
        first: list[torch.Tensor] = []

        def closure():
            optimizer.zero_grad(set_to_none=True)
            terms = objective(x_in, x_clean)
            loss = terms["loss"]
            if cfg.weight_decay > 0:   # L2, as Adam's weight_decay: gradient + wd * p
                loss = loss + 0.5 * cfg.weight_decay * sum(p.pow(2).sum() for p in params)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
            if not first:
                first.append(detached(terms))
            return loss
        optimizer.step(closure)
        return first[0]

    history: list[EpochReport] = []
    train_seconds, status = 0.0, "ok"
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        diverged = False
        if epoch <= cfg.grid_update_epochs and (epoch - 1) % cfg.grid_update_every == 0 and kan_layers:
            sample = train_x[torch.randperm(n, generator=generator, device=device)[:GRID_SAMPLE]]
            diverged = not update_kan_grids(model, sample)
        sums = None
        if not diverged:
            try:
                order = torch.randperm(n, generator=generator, device=device)
                for i in range(0, n, batch_size):
                    if should_stop():
                        break
                    # index_select per batch: the gathered rows are still in cache for the first
                    # matmul; measured faster than x[idx] and than a permuted copy per epoch
                    # (benchmarks/train_throughput.py --ablations)
                    x = train_x.index_select(0, order[i:i + batch_size])
                    target = train_t.index_select(0, order[i:i + batch_size]) if regression else x
                    x_in = corrupt(x, noise, noise_level, generator) if denoising else x
                    stacked = step(x_in, target)
                    sums = torch.zeros_like(stacked, dtype=torch.float64) if sums is None else sums
                    sums.add_(stacked, alpha=len(x))   # on the device: no sync per batch
                    if scheduler is not None:
                        scheduler.step()
            except RuntimeError:
                # A numerical failure (e.g. a linear solve on NaN) is divergence when the weights
                # are no longer finite; anything else is a real error.
                if all(bool(torch.isfinite(p).all()) for p in params):
                    raise
                diverged = True
        if should_stop():     # abandoned mid-epoch: not an epoch, not reported
            status = "stopped"
            break
        means = (sums / n).tolist() if sums is not None else []   # the one host sync of the epoch
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_seconds = time.perf_counter() - start
        train_seconds += epoch_seconds

        terms = dict(zip(names, means))
        diverged = diverged or not means or not all(math.isfinite(v) for v in means)
        val_loss = DIVERGED_LOSS if diverged else reconstruction_loss(model, val_in, val_x if val_t is None else val_t)
        diverged = diverged or not math.isfinite(val_loss)
        val_terms = {} if diverged else validation_terms(model, val_in, val_x if val_t is None else val_t)
        diverged = diverged or not all(math.isfinite(v) for v in val_terms.values())
        if diverged:   # large finite numbers, never NaN: schedulers and samplers can rank them
            status, val_loss = "diverged", DIVERGED_LOSS
            terms = {k: (v if math.isfinite(v) else DIVERGED_LOSS) for k, v in terms.items()}
            val_terms = {k: DIVERGED_LOSS for k in val_terms}
        train_loss = DIVERGED_LOSS if diverged else terms.get("recon", terms.get("loss"))
        report = EpochReport(epoch, train_loss, val_loss, epoch_seconds, train_seconds,
                             "diverged" if diverged else "ok", terms, peak_memory_mb(device), val_terms)
        history.append(report)
        keep_going = on_epoch(report) if on_epoch is not None else None
        if diverged:
            break
        if keep_going is False:
            status = "stopped"
            break

    last = history[-1] if history else EpochReport(0, math.nan, math.nan, 0.0, 0.0, status, {})
    return FitResult(model=model, status=status, epochs_completed=len(history), history=history,
                     train_seconds=train_seconds, seconds_per_epoch=train_seconds / max(len(history), 1),
                     val_loss=last.val_loss, train_loss=last.train_loss,
                     peak_mem_mb=peak_memory_mb(device), device=str(device))


def train_model(model_cfg: ModelConfig, splits, train_cfg: TrainConfig,
                on_epoch: Callable[[EpochReport], bool | None] | None = None) -> FitResult:
    """Seed everything, THEN build (so the seed fixes the initial weights), then fit."""
    seed_everything(train_cfg.seed)
    model = build_model(model_cfg)
    return fit(model, splits, train_cfg, on_epoch)
