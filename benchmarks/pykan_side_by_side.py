"""pykan's hyperparameter demo, side by side: pykan 0.2.8 itself and tunekae's B-spline KAN on the
same data, width and recipe. Prints figures, asserts nothing.

    ./venv-run python benchmarks/pykan_side_by_side.py [--seeds 0 1 2] [--lambs 0 0.1] [--steps 20]

The demo: f(x, y) = exp(sin(pi x) + y^2), 1,000 training and 1,000 test points uniform on
[-1, 1]^2 (pykan's create_dataset, seed 0: tunekae's `function:exp_sin` draws the same points),
KAN [2, 5, 1] with grid 5 and spline order 3, LBFGS for 20 steps on the full batch (lr 1, strong
Wolfe line search, history 10), the grid refitted to the data every 5 steps, lamb 0 and 0.1 with
lamb_entropy 2 (pykan's defaults). pykan: `KAN(width=[2,5,1], grid=5, k=3, seed=s).fit(dataset,
opt="LBFGS", steps=20, lamb=lamb)`; tunekae: `train --dataset function:exp_sin --family kan
--hidden 5 --grid 5 --order 3 --optimizer lbfgs --lr 1 --batch-size 0 --epochs 20 --weight-decay
0 --grid-update-epochs 50 --grid-update-every 5 --lamb L` (efficient-kan's layer with pykan's
regularizer). Both report RMSE, pykan's way (the root of the mean squared error over the split).
Target (issue 26): tunekae within a factor of 2 of pykan at each setting.
"""
from __future__ import annotations

import argparse
import io
import math
import statistics
import sys
import time
from contextlib import redirect_stderr

import torch


def pykan_run(data, lamb: float, seed: int, steps: int) -> tuple[float, float, int, float]:
    """(train RMSE, test RMSE, parameters, seconds) of pykan's own fit."""
    from kan import KAN
    dataset = {"train_input": data.train_x, "train_label": data.train_t, "test_input": data.test_x,
               "test_label": data.test_t}
    model = KAN(width=[2, 5, 1], grid=5, k=3, seed=seed, auto_save=False)
    start = time.perf_counter()
    with redirect_stderr(io.StringIO()):   # its tqdm bar
        model.fit(dataset, opt="LBFGS", steps=steps, lamb=lamb)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        train = math.sqrt(float(((model(data.train_x) - data.train_t) ** 2).mean()))
        test = math.sqrt(float(((model(data.test_x) - data.test_t) ** 2).mean()))
    return train, test, sum(p.numel() for p in model.parameters() if p.requires_grad), seconds


def tunekae_run(data, lamb: float, seed: int, steps: int) -> tuple[float, float, int, float]:
    from tunekae.budget import count_params
    from tunekae.models import ModelConfig
    from tunekae.train import TrainConfig, reconstruction_loss, train_model
    cfg = ModelConfig(family="kan", variant="regressor", input_dim=2, output_dim=1, hidden=(5,), grid=5, order=3,
                      output_activation="none", lamb=lamb, lamb_entropy=2.0, seed=seed)
    train = TrainConfig(optimizer="lbfgs", lr=1.0, batch_size=0, epochs=steps, weight_decay=0.0, seed=seed,
                        grid_update_epochs=50, grid_update_every=5, device="cpu")
    result = train_model(cfg, data, train)
    model = result.model
    return (math.sqrt(reconstruction_loss(model, data.train_x, data.train_t)),
            math.sqrt(reconstruction_loss(model, data.test_x, data.test_t)), count_params(model), result.train_seconds)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="model seeds (default 0 1 2)")
    ap.add_argument("--lambs", type=float, nargs="+", default=[0.0, 0.1], help="default 0 0.1")
    ap.add_argument("--steps", type=int, default=20, help="LBFGS steps (default 20)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from tunekae.data import load_dataset
    data = load_dataset("function:exp_sin")   # pykan's create_dataset(f, n_var=2, seed=0), to the bit
    print(f"pykan's demo: exp(sin(pi x) + y^2), {len(data.train_x)} train / {len(data.test_x)} test points; "
          f"KAN [2,5,1], grid 5, k 3, LBFGS {args.steps} steps; seeds {', '.join(map(str, args.seeds))}", flush=True)
    print("| lamb | tool | params | train RMSE (mean of seeds) | test RMSE | per seed (test) | seconds | "
          "tunekae / pykan (test) |\n|---|---|---|---|---|---|---|---|")
    for lamb in args.lambs:
        runs = {tool: [fn(data, lamb, s, args.steps) for s in args.seeds]
                for tool, fn in (("pykan 0.2.8", pykan_run), ("tunekae", tunekae_run))}
        means = {tool: [statistics.mean(r[i] for r in rs) for i in range(4)] for tool, rs in runs.items()}
        ratio = means["tunekae"][1] / means["pykan 0.2.8"][1]
        for tool, rs in runs.items():
            m = means[tool]
            print(f"| {lamb:g} | {tool} | {rs[0][2]:,} | {m[0]:.3g} | {m[1]:.3g} | "
                  f"{', '.join(f'{r[1]:.3g}' for r in rs)} | {m[3]:.2f} | "
                  f"{f'{ratio:.2f}' if tool == 'tunekae' else ''} |", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
