"""`rbf`: FastKAN's layer (reference: github.com/ZiyaoLi/fast-kan, fastkan/fastkan.py,
`FastKANLayer` with its defaults: LayerNorm, SiLU base update).

    y = W_spline @ vec(exp(-((LayerNorm(x)_i - c_g) / h)^2))  +  W_base @ silu(x) + b_base
    c_g: G centres evenly over [-2, 2]; h = (hi - lo) / (G - 1)
Parameters (G+1)*in*out + out + 2*in (LayerNorm's affine weight and bias).

Initialization (init="reference", FastKAN's): W_spline ~ N(0, 0.1^2) truncated at +-2 (absolute,
torch's trunc_normal_ default), then the base branch as nn.Linear's default; drawn in that
order, as FastKAN does. init="fan_in" (a named departure): W_spline ~ U(+-1/sqrt(in*G)).
FastKAN refuses a LayerNorm over one input (it would output its bias only) and asks for
use_layernorm=False there; this layer does that by itself when in_features is 1.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import check_init, register


@register("rbf", options=("grid", "grid_range", "init"))
class RadialBasisLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, grid: int = 8,
                 grid_range: tuple[float, float] = (-2.0, 2.0), init: str = "reference"):
        super().__init__()
        if grid < 2:
            raise ValueError(f"rbf grid must be >= 2 centres, got {grid}")
        check_init(init)
        self.in_features, self.out_features, self.grid, self.init = in_features, out_features, grid, init
        self.norm = nn.LayerNorm(in_features) if in_features > 1 else nn.Identity()
        lo, hi = grid_range
        self.register_buffer("centres", torch.linspace(lo, hi, grid))
        self.inv_width = (grid - 1) / (hi - lo)
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features * grid))
        with torch.no_grad():
            if init == "reference":
                nn.init.trunc_normal_(self.spline_weight, std=0.1)
            else:
                bound = 1.0 / math.sqrt(in_features * grid)
                nn.init.uniform_(self.spline_weight, -bound, bound)
        self.base = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:     # x: (batch, in)
        h = self.norm(x)
        basis = torch.exp(-((h.unsqueeze(-1) - self.centres) * self.inv_width) ** 2)  # (batch, in, G)
        return F.linear(basis.flatten(1), self.spline_weight) + self.base(F.silu(x))

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, grid={self.grid}, "
                f"init={self.init}")
