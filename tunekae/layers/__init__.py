"""Layer families, registered by name (timm-style): adding a family = one file + one entry.

Every family maps (batch, in_features) -> (batch, out_features) and takes its own shape options
(`order`, `grid`, ...) as keyword arguments; options a family does not use are ignored, so a
model builder can pass one option dict to any family.

Each family is, by default, the layer of its reference implementation (forward and
initialization; the file names the reference and writes the init formula). `init` names the one
deliberate departure every KAN-like family offers, so that a space can sample it with the same
effort for every arm:
    reference   the reference implementation's own initialization (the default)
    fan_in      every basis coefficient ~ U(+-1/sqrt(fan_in)), fan_in = in_features x (basis
                functions per input): nn.Linear's default over the expanded features
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

LAYERS: dict[str, Callable[..., nn.Module]] = {}
# Which shape options each family reads (for CLIs, search spaces and error messages).
LAYER_OPTIONS: dict[str, tuple[str, ...]] = {}
INITS = ("reference", "fan_in")


def register(name: str, options: tuple[str, ...] = ()):
    def wrap(cls):
        LAYERS[name] = cls
        LAYER_OPTIONS[name] = options
        return cls
    return wrap


def create_layer(family: str, in_features: int, out_features: int, **options) -> nn.Module:
    if family not in LAYERS:
        raise ValueError(f"unknown layer family {family!r}; choose from {', '.join(sorted(LAYERS))}")
    used = {k: v for k, v in options.items() if k in LAYER_OPTIONS[family] and v is not None}
    return LAYERS[family](in_features, out_features, **used)


def check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")


# Imported for their registration side effect.
from . import linear, kae, kan, cheby, rbf  # noqa: E402,F401

FAMILIES = tuple(LAYERS)
