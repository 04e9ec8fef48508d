"""Training throughput: tunekae's engine vs a loop written like the KAE paper's code. Prints
figures, asserts nothing.

    ./venv-run python benchmarks/train_throughput.py [--threads 2] [--epochs 1] [--repeats 3] [--device cpu]

On Fashion-MNIST (54,000 training images after the 10% validation carve-out, batch 256, Adam
lr 1e-4 wd 1e-4: the paper's recipe), for the MLP 784-16-784 and the KAE p=3 784-16-784:
  engine     tunekae.train.fit: data on the device as one tensor, batches gathered from a seeded
             permutation, fused Adam, one host sync per epoch, the one-matmul KAE layer.
  reference  a torchvision-style Dataset over the same uint8 images (PIL image + ToTensor per
             sample), DataLoader(batch 256, shuffle=True), loss.item() every batch, and the
             authors' KAE layer (tunekae/reference_kae.py) evaluated order by order on an
             expanded (batch, out, in) tensor, with the authors' own initialization.
Both start from the same initial weights (each family's init is its reference's, seeded alike). Reported: seconds per epoch (training only, best of
--repeats), samples/s, the speed-up, and the test MSE after the last epoch. Then the floor: the
bare GEMMs of one MLP epoch (forward and backward products only, same batch size and threads)
and the engine's MLP epoch as a multiple of it. Targets: >= 5x the reference for the MLP,
>= 15x for KAE p=3 at equal loss within noise; stretch: MLP epoch within 3x of the floor.
--ablations times variants of the MLP step (gather vs permuted copy, fused vs foreach Adam,
a fused sigmoid+MSE, torch.compile of the forward + loss); --profile prints the engine's top ops.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tunekae.data import load_dataset
from tunekae.models import ModelConfig, build_model
from tunekae.train import TrainConfig, fit, reconstruction_loss, resolve_device, resolve_threads, seed_everything

BATCH, LR, WD = 256, 1e-4, 1e-4
MODELS = {"mlp": ModelConfig(family="linear", input_dim=784, latent_dim=16),
          "kae_p3": ModelConfig(family="kae", order=3, input_dim=784, latent_dim=16)}


# ----------------------------------------------------------------------------- the reference loop
def reference_model(name: str) -> nn.Module:
    """The authors' network (tunekae/reference_kae.py: their KAELayer and StandardAE), built with
    their own initialization after seeding as run_engine seeds tunekae's: the same starting
    weights, so the test MSEs compare the two loops, not two inits."""
    from tunekae.reference_kae import authors_autoencoder, set_seed
    set_seed(0)
    return authors_autoencoder(784, (), 16, "linear" if name == "mlp" else "kae", order=3)


class FashionMNISTLike(torch.utils.data.Dataset):
    """torchvision.datasets.FashionMNIST's __getitem__: uint8 array -> PIL image -> transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        from torchvision import transforms
        self.data, self.targets, self.transform = images, labels, transforms.ToTensor()

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.data[i], mode="L")), int(self.targets[i])


def reference_epoch(model, optimizer, loader, device) -> float:
    total = 0.0
    for x, _ in loader:
        x = x.view(-1, 784).to(device)
        loss = F.mse_loss(model(x), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def test_mse(model, x, device) -> float:
    model.eval()
    with torch.no_grad():
        err = sum(float(((model(c.to(device)) - c.to(device)) ** 2).sum()) for c in x.split(4096))
    model.train()
    return err / x.numel()


# ----------------------------------------------------------------------------- measurements
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_engine(cfg, splits, args, device):
    seed_everything(0)
    model = build_model(cfg)
    init = copy.deepcopy(model.state_dict())
    times, losses = [], []
    for _ in range(args.repeats):
        model.load_state_dict(init)
        r = fit(model, splits, TrainConfig(epochs=args.epochs, threads=args.threads, device=str(device),
                                           batch_size=BATCH, lr=LR, weight_decay=WD, seed=0))
        times.append(r.seconds_per_epoch)
        losses.append(reconstruction_loss(model, splits.test_x))
    return min(times), statistics.median(losses), init


def run_reference(name, splits, args, device):
    ref = reference_model(name).to(device)
    start = copy.deepcopy(ref.state_dict())
    images = np.rint(splits.train_x.cpu().numpy() * 255).astype(np.uint8).reshape(-1, 28, 28)
    dataset = FashionMNISTLike(images, splits.train_y.cpu().numpy())
    times, losses = [], []
    for rep in range(args.repeats):
        ref.load_state_dict(start)
        torch.manual_seed(rep)
        loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True)
        optimizer = torch.optim.Adam(ref.parameters(), lr=LR, weight_decay=WD)
        per_epoch = []
        for _ in range(args.epochs):
            t = time.perf_counter()
            reference_epoch(ref, optimizer, loader, device)
            sync(device)
            per_epoch.append(time.perf_counter() - t)
        times.append(statistics.mean(per_epoch))
        losses.append(test_mse(ref, splits.test_x, device))
    return min(times), statistics.median(losses)


def gemm_floor(n: int, device, repeats: int = 5) -> float:
    """The five GEMMs of one MLP 784-16-784 epoch: forward x@W1^T, h@W2^T; backward
    g^T@h (dW2), g@W2 (dh), dh^T@x (dW1); preallocated outputs, nothing else."""
    D, L = 784, 16
    steps = [BATCH] * (n // BATCH) + ([n % BATCH] if n % BATCH else [])
    r = lambda *s: torch.rand(*s, device=device)  # noqa: E731
    x, w1, w2, g = r(BATCH, D), r(L, D), r(D, L), r(BATCH, D)
    h, y, dw2, dh, dw1 = r(BATCH, L), r(BATCH, D), r(D, L), r(BATCH, L), r(L, D)

    def epoch():
        for b in steps:
            torch.mm(x[:b], w1.t(), out=h[:b])
            torch.mm(h[:b], w2.t(), out=y[:b])
            torch.mm(g[:b].t(), h[:b], out=dw2)
            torch.mm(g[:b], w2, out=dh[:b])
            torch.mm(dh[:b].t(), x[:b], out=dw1)
        sync(device)
    epoch()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        epoch()
        best = min(best, time.perf_counter() - t)
    return best


# ----------------------------------------------------------------------------- ablations
class SigmoidMSE(torch.autograd.Function):
    """mean((sigmoid(z) - x)^2) with a hand-fused backward: 2/N (y - x) y (1 - y)."""

    @staticmethod
    def forward(ctx, z, x):
        y = torch.sigmoid(z)
        d = y - x
        ctx.save_for_backward(y, d)
        return d.pow(2).mean()

    @staticmethod
    def backward(ctx, grad):
        y, d = ctx.saved_tensors
        return d.mul_(y).mul_(1 - y).mul_(grad * 2 / y.numel()), None


def ablation_epoch(model, optimizer, x_all, gen, variant, objective):
    n = len(x_all)
    order = torch.randperm(n, generator=gen, device=x_all.device)
    shuffled = x_all[order] if variant == "permuted copy" else None
    sums = None
    for i in range(0, n, BATCH):
        if shuffled is not None:
            x = shuffled[i:i + BATCH]
        elif variant == "advanced indexing":
            x = x_all[order[i:i + BATCH]]
        else:
            x = x_all.index_select(0, order[i:i + BATCH])
        loss = objective(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums = loss.detach() if sums is None else sums + loss.detach()
    return float(sums)


def ablations(splits, args, device):
    x_all = splits.train_x.to(device).contiguous()
    seed_everything(0)
    base = build_model(MODELS["mlp"]).to(device)
    init = copy.deepcopy(base.state_dict())
    logits = nn.Sequential(*list(base.decoder)[:-1])   # decoder without its sigmoid (shares weights)
    plain = lambda x: F.mse_loss(base(x).recon, x)  # noqa: E731
    variants = {
        "index_select per batch, fused Adam (engine)": ("gather", {"fused": True}, plain),
        "x[idx] per batch (advanced indexing)": ("advanced indexing", {"fused": True}, plain),
        "permuted copy per epoch, slices": ("permuted copy", {"fused": True}, plain),
        "foreach Adam": ("gather", {"foreach": True}, plain),
        "fused sigmoid+MSE": ("gather", {"fused": True}, lambda x: SigmoidMSE.apply(logits(base.encoder(x)), x)),
    }
    if not args.no_compile:
        variants["torch.compile(forward + loss)"] = ("gather", {"fused": True}, torch.compile(plain))
    print(f"\nablations (MLP, one epoch, best of {args.repeats} after a warm-up epoch):")
    for name, (variant, opt_kw, objective) in variants.items():
        base.load_state_dict(init)
        optimizer = torch.optim.Adam(base.parameters(), lr=LR, weight_decay=WD, **opt_kw)
        gen = torch.Generator(device=device).manual_seed(0)
        t = time.perf_counter()
        ablation_epoch(base, optimizer, x_all, gen, variant, objective)   # warm-up (compiles)
        warm = time.perf_counter() - t
        best = float("inf")
        for _ in range(args.repeats):
            t = time.perf_counter()
            ablation_epoch(base, optimizer, x_all, gen, variant, objective)
            sync(device)
            best = min(best, time.perf_counter() - t)
        print(f"  {name:45s} {best:7.3f} s/epoch   (first epoch {warm:.2f} s)")


def profile_engine(splits, args, device):
    from torch.profiler import ProfilerActivity, profile
    seed_everything(0)
    model = build_model(MODELS["mlp"])
    cfg = TrainConfig(epochs=1, threads=args.threads, device=str(device), batch_size=BATCH, lr=LR, weight_decay=WD)
    fit(model, splits, cfg)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fit(model, splits, cfg)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print("\nprofile of one engine MLP epoch (validation included):")
    print(prof.key_averages().table(sort_by=key, row_limit=20))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, help="torch threads (default: every available CPU)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs per run (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per measurement; the best is kept (default 3)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--ablations", action="store_true", help="time variants of the MLP step")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile ablation (slow to compile)")
    ap.add_argument("--profile", action="store_true", help="print the engine's top ops for one MLP epoch")
    args = ap.parse_args()
    args.threads = resolve_threads(args.threads)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    splits = load_dataset("fashion-mnist", seed=0)
    n = len(splits.train_x)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    import tunekae
    print(f"tunekae from {os.path.dirname(os.path.dirname(os.path.abspath(tunekae.__file__)))}")
    print(f"fashion-mnist: {n:,} training images, batch {BATCH}, adam lr {LR:g} wd {WD:g}, {args.epochs} epoch(s); "
          f"device {device}, {args.threads} threads, torch {torch.__version__}; load average {load:.2f} at start")
    print(f"{'model':8} {'engine s/ep':>11} {'samples/s':>10} {'ref s/ep':>9} {'samples/s':>10} {'speed-up':>8} "
          f"{'engine test MSE':>15} {'ref test MSE':>12}")
    engine_mlp = None
    for name in args.models:
        t_engine, mse_engine, _ = run_engine(MODELS[name], splits, args, device)
        t_ref, mse_ref = run_reference(name, splits, args, device)
        engine_mlp = t_engine if name == "mlp" else engine_mlp
        print(f"{name:8} {t_engine:11.3f} {n / t_engine:10,.0f} {t_ref:9.3f} {n / t_ref:10,.0f} "
              f"{t_ref / t_engine:7.1f}x {mse_engine:15.5f} {mse_ref:12.5f}", flush=True)
    floor = gemm_floor(n, device)
    print(f"floor: the bare GEMMs of one MLP epoch take {floor:.3f} s ({n / floor:,.0f} samples/s)"
          + (f"; the engine's MLP epoch is {engine_mlp / floor:.1f}x the floor" if engine_mlp else ""))
    if args.ablations:
        ablations(splits, args, device)
    if args.profile:
        profile_engine(splits, args, device)


if __name__ == "__main__":
    main()
