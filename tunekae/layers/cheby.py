"""`cheby`: Chebyshev KAN layer (reference: ChebyKAN, github.com/SynodicMonth/ChebyKAN,
ChebyKANLayer.py).

    y_j = sum_i sum_{n=0..D} C[i, j, n] * T_n(tanh(x_i))        parameters (D+1)*in*out, no bias

Initialization (init="reference", ChebyKAN's): C ~ N(0, (1 / (in*(D+1)))^2), drawn in ChebyKAN's
(in, out, D+1) layout so that a seed gives its values. init="fan_in" (a named departure):
C ~ U(+-1/sqrt(in*(D+1))).

ChebyKAN evaluates T_n(t) = cos(n * acos(t)); here the recurrence T_{n+1} = 2t T_n - T_{n-1}
gives the same polynomials without acos, whose derivative is infinite where tanh saturates to
exactly +-1 in float32 (NaN gradients). Bases are stacked per input, (batch, in, D+1), and the
layer is one matmul over them.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import check_init, register


@register("cheby", options=("order", "init"))
class ChebyshevLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, order: int = 4, init: str = "reference"):
        super().__init__()
        if order < 1:
            raise ValueError(f"cheby degree must be >= 1, got {order}")
        check_init(init)
        self.in_features, self.out_features, self.degree, self.init = in_features, out_features, order, init
        # (out, in, D+1): reshapes to the (out, in*(D+1)) matmul weight without a copy
        self.coefficients = nn.Parameter(torch.empty(out_features, in_features, order + 1))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        n_basis = self.degree + 1
        if self.init == "reference":
            draw = torch.empty(self.in_features, self.out_features, n_basis, device=self.coefficients.device)
            nn.init.normal_(draw, mean=0.0, std=1.0 / (self.in_features * n_basis))
            self.coefficients.copy_(draw.permute(1, 0, 2))
        else:
            bound = 1.0 / math.sqrt(self.in_features * n_basis)
            nn.init.uniform_(self.coefficients, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:     # x: (batch, in)
        t = torch.tanh(x)
        basis = [torch.ones_like(t), t]
        for _ in range(2, self.degree + 1):
            basis.append(2 * t * basis[-1] - basis[-2])
        features = torch.stack(basis[: self.degree + 1], dim=-1)    # (batch, in, D+1)
        return F.linear(features.flatten(1), self.coefficients.flatten(1))   # (batch, out)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, degree={self.degree}, "
                f"init={self.init}")
