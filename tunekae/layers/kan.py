"""`kan`: B-spline KAN layer in the efficient-kan formulation.

    y = W_base @ silu(x)  +  (W_spline * scaler) @ B(x)

B(x) holds the G+k B-spline basis functions (order k, Cox-de Boor) of every input on a grid of
G intervals over `grid_range` (extended by k knots on each side); it is computed once per input,
shape (batch, in, G+k), and the spline branch is ONE matmul over the flattened basis, so no
(batch, out, in) tensor is ever built. Parameters (G+k+2)*in*out, no bias:
base weight (out, in), spline weight (out, in, G+k), per-edge spline scaler (out, in).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register


@register("kan", options=("grid", "order", "grid_range"))
class BSplineKANLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, grid: int = 5, order: int = 3,
                 grid_range: tuple[float, float] = (-1.0, 1.0), grid_eps: float = 0.02):
        super().__init__()
        if grid < 1 or order < 0:
            raise ValueError(f"kan needs grid >= 1 and spline order >= 0, got grid={grid} order={order}")
        self.in_features, self.out_features = in_features, out_features
        self.grid_size, self.spline_order, self.grid_eps = grid, order, grid_eps
        lo, hi = grid_range
        step = (hi - lo) / grid
        knots = torch.arange(-order, grid + order + 1, dtype=torch.float32) * step + lo
        self.register_buffer("grid", knots.expand(in_features, -1).contiguous())  # (in, G+2k+1)
        self.base_weight = nn.Parameter(torch.empty(out_features, in_features))
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features, grid + order))
        self.spline_scaler = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.spline_scaler, a=math.sqrt(5))
        # Small noisy splines, as efficient-kan: the layer starts close to its SiLU base branch.
        nn.init.normal_(self.spline_weight, std=0.1 / (self.grid_size + self.spline_order))

    def b_splines(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, in) -> bases (batch, in, G+k) by the Cox-de Boor recursion."""
        g = self.grid
        x = x.unsqueeze(-1)
        bases = ((x >= g[:, :-1]) & (x < g[:, 1:])).to(x.dtype)
        for k in range(1, self.spline_order + 1):
            bases = ((x - g[:, : -(k + 1)]) / (g[:, k:-1] - g[:, : -(k + 1)]) * bases[:, :, :-1]
                     + (g[:, k + 1:] - x) / (g[:, k + 1:] - g[:, 1:(-k)]) * bases[:, :, 1:])
        return bases

    @property
    def scaled_spline_weight(self) -> torch.Tensor:           # (out, in, G+k)
        return self.spline_weight * self.spline_scaler.unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:       # x: (batch, in)
        base = F.linear(F.silu(x), self.base_weight)
        spline = F.linear(self.b_splines(x).flatten(1), self.scaled_spline_weight.flatten(1))
        return base + spline

    @torch.no_grad()
    def update_grid(self, x: torch.Tensor, margin: float = 0.01):
        """Move the knots to the data's quantiles (blended with a uniform grid by grid_eps) and
        refit the spline weights by least squares so the layer's function is kept."""
        batch = x.shape[0]
        old = torch.einsum("bik,oik->bio", self.b_splines(x), self.scaled_spline_weight)  # (batch, in, out)
        x_sorted = torch.sort(x, dim=0).values
        idx = torch.linspace(0, batch - 1, self.grid_size + 1, device=x.device).long()
        adaptive = x_sorted[idx]                                                    # (G+1, in)
        step = (x_sorted[-1] - x_sorted[0] + 2 * margin) / self.grid_size           # (in,)
        uniform = torch.arange(self.grid_size + 1, device=x.device, dtype=x.dtype).unsqueeze(1) * step + x_sorted[0] - margin
        knots = self.grid_eps * uniform + (1 - self.grid_eps) * adaptive
        k = self.spline_order
        ext = torch.arange(1, k + 1, device=x.device, dtype=x.dtype).unsqueeze(1) * step
        knots = torch.cat([knots[:1] - ext.flip(0), knots, knots[-1:] + ext], dim=0)  # (G+2k+1, in)
        self.grid.copy_(knots.T)
        A = self.b_splines(x).transpose(0, 1)                                       # (in, batch, G+k)
        solution = torch.linalg.lstsq(A, old.transpose(0, 1)).solution              # (in, G+k, out)
        scaler = self.spline_scaler.unsqueeze(-1)
        safe = torch.where(scaler.abs() < 1e-8, torch.full_like(scaler, 1e-8), scaler)
        self.spline_weight.copy_(solution.permute(2, 0, 1) / safe)

    def regularization_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """pykan's L1 (lamb) and entropy (lamb_entropy) terms on the spline weights, in
        efficient-kan's cheap form: mean |spline weight| per edge stands in for |phi|."""
        l1_per_edge = self.spline_weight.abs().mean(-1)
        l1 = l1_per_edge.sum()
        p = l1_per_edge / (l1 + 1e-12)
        entropy = -(p * torch.log(p + 1e-12)).sum()
        return l1, entropy

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"grid={self.grid_size}, order={self.spline_order}")
