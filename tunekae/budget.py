"""Exact parameter and FLOP counts, and the width solver that matches a parameter budget.

Counts are always measured on a real model (`sum(p.numel() for p in model.parameters() if
p.requires_grad)`), never from hand-written formulas, so a new layer family needs no solver
code. Candidate models are built on the `meta` device: no memory is allocated, so the solver's
binary search costs milliseconds.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .errors import UserError
from .models import ModelConfig, build_model


class InfeasibleBudget(UserError, ValueError):
    """No hidden widths bring the parameter count within tolerance of the budget. `nearest`:
    the reachable counts closest to it, below and above (one when nothing lies on a side)."""

    def __init__(self, message: str, nearest: tuple[int, ...]):
        super().__init__(message)
        self.nearest = nearest


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def config_params(cfg: ModelConfig) -> int:
    return _cached_params(json.dumps(cfg.to_dict(), sort_keys=True))


@functools.lru_cache(maxsize=65536)
def _cached_params(cfg_json: str) -> int:
    with torch.device("meta"):
        return count_params(build_model(ModelConfig.from_dict(json.loads(cfg_json))))


def count_flops(model: torch.nn.Module, input_dim: int) -> int:
    """Forward FLOPs per sample, measured by torch.utils.flop_counter on a batch of one
    (it counts matmuls as 2*m*n*k; element-wise work such as activations and the KAN basis
    recursion is not counted, so this is the multiply-accumulate cost)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, input_dim, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())


def reference_mlp_params(input_dim: int, latent_dim: int) -> int:
    """The single-layer MLP autoencoder (input -> latent -> input) that relative budgets scale."""
    return config_params(ModelConfig(family="linear", input_dim=input_dim, latent_dim=latent_dim))


def parse_budget(budget: str | int | float, input_dim: int, latent_dim: int) -> int:
    """100000, '100000', '100k', '1.5M', '1e6' (absolute) or '4x' (times the single-layer MLP)."""
    text = str(budget).strip().lower().replace("_", "").replace(",", "")
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(x|k|m)?", text)
    if not m:
        raise UserError(f"budget {budget!r} is not a number (100000, 100k, 1.5M, 1e6) or a multiple like 4x")
    value, unit = float(m.group(1)), m.group(2)
    if unit == "x":
        reference = reference_mlp_params(input_dim, latent_dim)
        n, said = value * reference, f"{value:g} x the single-layer MLP's {reference:,}"
    else:
        n, said = value * {"k": 1e3, "m": 1e6}.get(unit or "", 1), None
    if round(n) < 1:
        raise UserError(f"budget {budget!r} is {n:.3g} parameters" + (f" ({said})" if said else "")
                        + "; a budget is at least one parameter")
    return int(round(n))


@dataclass
class Match:
    hidden: tuple[int, ...]
    params: int
    budget: int

    @property
    def rel_error(self) -> float:
        return (self.params - self.budget) / self.budget

    def to_dict(self) -> dict:
        return {"hidden": list(self.hidden), "params": self.params, "budget": self.budget,
                "rel_error": self.rel_error}


MAX_WIDTH = 1 << 16


def _smallest_at_least(count, budget: int) -> int:
    """Smallest width w >= 1 with count(w) >= budget (count grows with w); MAX_WIDTH if none."""
    lo, hi = 1, 1
    while count(hi) < budget and hi < MAX_WIDTH:
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        if count(mid) >= budget:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _closest(count, budget: int, make_hidden) -> list[Match]:
    w = _smallest_at_least(count, budget)
    return [Match(make_hidden(v), count(v), budget) for v in {max(1, w - 1), w}]


def solve_widths(cfg: ModelConfig, budget: int, depth: int = 1, tolerance: float = 0.02) -> Match:
    """Hidden widths (depth of them) whose count is closest to `budget`, within `tolerance`
    (relative), else InfeasibleBudget naming the reachable range.

    Equal widths first (the default architecture). One hidden unit of a wide layer costs
    ~2*(input+latent)*(coefficients per edge) parameters, too coarse for small budgets, so when
    equal widths miss the tolerance at depth >= 2 the innermost width (next to the latent,
    cheap per unit) is solved separately around the equal solution. depth 0 has no freedom."""
    if budget <= 0:
        raise UserError(f"budget must be positive, got {budget}")

    def count_hidden(hidden: tuple[int, ...]) -> int:
        return config_params(cfg.replace(hidden=hidden))

    if depth == 0:
        candidates = [Match((), count_hidden(()), budget)]
    else:
        equal = lambda h: (h,) * depth  # noqa: E731
        candidates = _closest(lambda h: count_hidden(equal(h)), budget, equal)
        best = min(candidates, key=lambda m: abs(m.params - budget))
        if depth >= 2 and abs(best.rel_error) > tolerance:
            h = best.hidden[0]
            for outer in range(max(1, h - 2), h + 2):
                shape = lambda w, o=outer: (o,) * (depth - 1) + (w,)  # noqa: E731
                # Keep a funnel (latent <= inner <= outer): a bottleneck narrower than the code
                # is no architecture anyone would train; such a budget is reported infeasible.
                floor = min(outer, cfg.latent_dim)
                candidates += [m for m in _closest(lambda w, s=shape: count_hidden(s(w)), budget, shape)
                               if floor <= m.hidden[-1] <= outer]
    best = min(candidates, key=lambda m: (abs(m.params - budget), m.hidden))
    if abs(best.rel_error) <= tolerance:
        return best
    below = max((m for m in candidates if m.params <= budget), key=lambda m: m.params, default=None)
    above = min((m for m in candidates if m.params > budget), key=lambda m: m.params, default=None)
    off = lambda m: f"{m.rel_error:+.1%}" if abs(m.rel_error) < 1 else f"{m.params / budget:,.0f}x the budget"  # noqa: E731
    nearest = " and ".join(f"{m.params:,} ({off(m)})" for m in (below, above) if m)
    smallest = feasible_range(cfg, depth)[0]
    shape = f"{cfg.family} at depth {depth}" + "".join(
        f", {k} {v}" for k, v in (("order", cfg.order), ("grid", cfg.grid)) if v is not None)
    raise InfeasibleBudget(
        f"budget {budget:,} is infeasible for {shape}: the nearest widths give {nearest} parameters "
        f"(tolerance {tolerance:.0%}; the smallest such model has {smallest:,}); "
        f"change the budget, depth or order/grid, or widen --tolerance.",
        tuple(m.params for m in (below, above) if m))


def feasible_shapes(cfg: ModelConfig, budget: int, depth: int, choices: list[dict],
                    tolerance: float = 0.02) -> list[dict]:
    """The shape options (e.g. [{"order": 1}, {"order": 2}, ...]) from `choices` whose solved
    widths meet the budget: search spaces sample only these (feasibility by construction)."""
    ok = []
    for choice in choices:
        try:
            solve_widths(cfg.replace(**choice), budget, depth, tolerance)
            ok.append(choice)
        except InfeasibleBudget:
            pass
    return ok


def feasible_range(cfg: ModelConfig, depth: int) -> tuple[int, int | None]:
    """(smallest, largest) reachable count; largest is None when widths are unbounded."""
    if depth == 0:
        n = config_params(cfg.replace(hidden=()))
        return n, n
    return config_params(cfg.replace(hidden=(1,) * depth)), None
