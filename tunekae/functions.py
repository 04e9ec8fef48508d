"""Function-fitting datasets, `function:NAME`: the regression task on which KANs were introduced.

Points are drawn as pykan's `create_dataset` draws them (seeded torch and numpy, then for each
input variable `train_num` uniform values and `test_num` uniform values on its range, in that
order), so `function:exp_sin` with seed 0 is pykan's demo dataset to the last bit; validation
points (`val_num`, tunekae tunes on them, never on test) are drawn after those, from the same
ranges. Options after the name: `function:exp_sin,train_num=1000,test_num=1000,val_num=200,seed=0`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .errors import UserError


@dataclass(frozen=True)
class Formula:
    description: str
    n_var: int
    fn: Callable[[torch.Tensor], torch.Tensor]     # (N, n_var) -> (N,)
    ranges: tuple[tuple[float, float], ...] | None = None   # per variable; None: [-1, 1] each


def _bessel_j0(x: torch.Tensor) -> torch.Tensor:
    from scipy.special import j0
    return torch.from_numpy(j0(x.double().numpy())).to(x.dtype)


def _col(x: torch.Tensor, i: int) -> torch.Tensor:
    return x[:, i]


FORMULAS: dict[str, Formula] = {
    # pykan's hyperparameter demo (hyperparameters.ipynb) and the KAN paper's toy examples
    "exp_sin": Formula("exp(sin(pi x) + y^2), pykan's hyperparameter demo", 2,
                       lambda x: torch.exp(torch.sin(math.pi * _col(x, 0)) + _col(x, 1) ** 2)),
    "xy": Formula("x * y (multiplication)", 2, lambda x: _col(x, 0) * _col(x, 1)),
    "sin_cos": Formula("sin(pi x) + cos(pi y)", 2,
                       lambda x: torch.sin(math.pi * _col(x, 0)) + torch.cos(math.pi * _col(x, 1))),
    # a special function from the KAN paper's table: the Bessel function J0(20 x)
    "bessel_j0": Formula("J0(20 x), a Bessel function of the first kind", 1, lambda x: _bessel_j0(20 * _col(x, 0))),
    # Feynman equations (the KAN paper's Feynman dataset; AI Feynman's variable ranges [1, 5])
    "feynman_i_6_2": Formula("exp(-(theta/sigma)^2 / 2) / (sqrt(2 pi) sigma), Feynman I.6.2", 2,
                             lambda x: torch.exp(-((_col(x, 0) / _col(x, 1)) ** 2) / 2)
                             / (math.sqrt(2 * math.pi) * _col(x, 1)), ((1.0, 3.0), (1.0, 3.0))),
    "feynman_i_12_11": Formula("q (E + B v sin theta), Feynman I.12.11", 5,
                               lambda x: _col(x, 0) * (_col(x, 1) + _col(x, 2) * _col(x, 3) * torch.sin(_col(x, 4))),
                               ((1.0, 5.0),) * 5),
    "feynman_i_14_3": Formula("m g z, Feynman I.14.3", 3, lambda x: _col(x, 0) * _col(x, 1) * _col(x, 2),
                              ((1.0, 5.0),) * 3),
    "feynman_ii_38_14": Formula("Y / (2 (1 + sigma)), Feynman II.38.14", 2,
                                lambda x: _col(x, 0) / (2 * (1 + _col(x, 1))), ((1.0, 5.0),) * 2),
}
OPTIONS = {"train_num": 1000, "test_num": 1000, "val_num": 200, "seed": 0}


def describe_formulas() -> str:
    return "\n".join(f"  function:{name:<18} {f.description}; {f.n_var} input(s)" for name, f in FORMULAS.items())


def parse(spec: str) -> tuple[str, dict]:
    """'exp_sin,train_num=500' -> ('exp_sin', {'train_num': 500, ...defaults})."""
    name, *items = [s.strip() for s in spec.split(",")]
    if name not in FORMULAS:
        raise UserError(f"unknown function {name!r}; choose one of {', '.join(FORMULAS)} (function:NAME)")
    opts = dict(OPTIONS)
    for item in filter(None, items):
        key, eq, value = item.partition("=")
        if not eq or key.strip() not in OPTIONS:
            raise UserError(f"function:{name}: option {item!r} must be one of {', '.join(f'{k}=N' for k in OPTIONS)}")
        try:
            opts[key.strip()] = int(value)
        except ValueError:
            raise UserError(f"function:{name}: {key.strip()} must be a whole number; got {value!r}") from None
    if min(opts["train_num"], opts["test_num"], opts["val_num"]) < 1 or opts["seed"] < 0:
        raise UserError(f"function:{name}: train_num, test_num and val_num must be >= 1 and seed >= 0")
    return name, opts


def draw(name: str, train_num: int, test_num: int, val_num: int, seed: int):
    """(train_x, train_t, test_x, test_t, val_x, val_t): pykan's create_dataset draws for train
    and test (same seed, same values), then the validation points."""
    f = FORMULAS[name]
    ranges = np.array(f.ranges if f.ranges is not None else [(-1.0, 1.0)] * f.n_var)
    # pykan seeds torch's global generator and draws from it; a generator of our own seeded alike
    # draws the same values without touching the caller's random state
    g = torch.Generator().manual_seed(seed)
    train_x, test_x = torch.zeros(train_num, f.n_var), torch.zeros(test_num, f.n_var)
    for i in range(f.n_var):
        train_x[:, i] = torch.rand(train_num, generator=g) * (ranges[i, 1] - ranges[i, 0]) + ranges[i, 0]
        test_x[:, i] = torch.rand(test_num, generator=g) * (ranges[i, 1] - ranges[i, 0]) + ranges[i, 0]
    val_x = torch.zeros(val_num, f.n_var)
    for i in range(f.n_var):
        val_x[:, i] = torch.rand(val_num, generator=g) * (ranges[i, 1] - ranges[i, 0]) + ranges[i, 0]
    return tuple(t for x in (train_x, test_x, val_x) for t in (x, f.fn(x).unsqueeze(1).to(torch.float32)))


def load_function(spec: str):
    """The Splits of `function:spec` (tunekae.data.Splits, with targets)."""
    from .data import Splits
    name, opts = parse(spec)
    train_x, train_t, test_x, test_t, val_x, val_t = draw(name, **opts)
    labels = lambda n: torch.zeros(n, dtype=torch.int64)   # noqa: E731 - regression has no classes
    return Splits(f"function:{name}", train_x, labels(len(train_x)), val_x, labels(len(val_x)), test_x,
                  labels(len(test_x)), image_shape=None, n_classes=0, train_t=train_t, val_t=val_t, test_t=test_t)
