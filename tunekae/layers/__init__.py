"""Layer families, registered by name (timm-style): adding a family = one file + one entry.

Every family maps (batch, in_features) -> (batch, out_features) and takes its own shape options
(`order`, `grid`, ...) as keyword arguments; options a family does not use are ignored, so a
model builder can pass one option dict to any family.
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

LAYERS: dict[str, Callable[..., nn.Module]] = {}
# Which shape options each family reads (for CLIs, search spaces and error messages).
LAYER_OPTIONS: dict[str, tuple[str, ...]] = {}


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


# Imported for their registration side effect.
from . import linear, kae, kan, cheby, rbf  # noqa: E402,F401

FAMILIES = tuple(LAYERS)
