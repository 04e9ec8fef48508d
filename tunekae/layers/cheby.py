"""`cheby`: Chebyshev KAN layer. Inputs are squashed by tanh into [-1, 1], expanded into
T_0..T_D with the recurrence T_{n+1} = 2x T_n - T_{n-1}, and mixed by one matmul.
Parameters (D+1)*in*out, no bias (T_0 = 1 plays that role)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register


@register("cheby", options=("order",))
class ChebyshevLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, order: int = 4):
        super().__init__()
        if order < 1:
            raise ValueError(f"cheby degree must be >= 1, got {order}")
        self.in_features, self.out_features, self.degree = in_features, out_features, order
        self.coefficients = nn.Parameter(torch.empty(out_features, (order + 1) * in_features))
        nn.init.normal_(self.coefficients, std=1.0 / (in_features * (order + 1)) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:     # x: (batch, in)
        x = torch.tanh(x)
        basis = [torch.ones_like(x), x]
        for _ in range(2, self.degree + 1):
            basis.append(2 * x * basis[-1] - basis[-2])
        features = torch.cat(basis[: self.degree + 1], dim=1)  # (batch, (D+1)*in), k-major
        return F.linear(features, self.coefficients)         # (batch, out)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, degree={self.degree}"
