"""`rbf`: FastKAN-style layer. LayerNorm, then G Gaussian radial basis functions per input on a
fixed grid over [-2, 2], mixed by one bias-free matmul, plus a SiLU base branch with bias.
Parameters (G+1)*in*out + out + 2*in (LayerNorm's affine weight and bias)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register


@register("rbf", options=("grid", "grid_range"))
class RadialBasisLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, grid: int = 8,
                 grid_range: tuple[float, float] = (-2.0, 2.0)):
        super().__init__()
        if grid < 2:
            raise ValueError(f"rbf grid must be >= 2 centres, got {grid}")
        self.in_features, self.out_features, self.grid = in_features, out_features, grid
        self.norm = nn.LayerNorm(in_features)
        lo, hi = grid_range
        self.register_buffer("centres", torch.linspace(lo, hi, grid))
        self.inv_width = (grid - 1) / (hi - lo)
        self.spline = nn.Linear(in_features * grid, out_features, bias=False)
        nn.init.trunc_normal_(self.spline.weight, std=0.1)
        self.base = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:     # x: (batch, in)
        h = self.norm(x)
        basis = torch.exp(-((h.unsqueeze(-1) - self.centres) * self.inv_width) ** 2)  # (batch, in, G)
        return self.spline(basis.flatten(1)) + self.base(F.silu(x))

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, grid={self.grid}"
