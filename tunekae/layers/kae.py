"""`kae`: the KAE paper's polynomial layer (arXiv 2501.00420).

    y_j = b_j + sum_i sum_{k=0..p} C[j, i, k] * x_i^k        parameters (p+1)*in*out + out

The k=0 terms do not depend on x, so they fold into the bias at call time; the powers 1..p are
computed once per input and concatenated, and the whole layer is ONE matmul of
(batch, in*p) x (in*p, out). The reference code instead evaluates order by order on an expanded
(batch, out, in) tensor, which is what makes it ~30x slower.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register


@register("kae", options=("order",))
class PolynomialLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, order: int = 3):
        super().__init__()
        if order < 1:
            raise ValueError(f"kae order must be >= 1, got {order}")
        self.in_features, self.out_features, self.order = in_features, out_features, order
        # C[j, i, k]: coefficient of x_i^k in output j (k = 0..p), stored (out, p+1, in) so
        # that the k >= 1 slice reshapes to the (out, p*in) matmul weight without a copy.
        self.coefficients = nn.Parameter(torch.empty(out_features, order + 1, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.reset_parameters()

    def reset_parameters(self):
        # Same scale as nn.Linear's default over the p*in non-constant inputs.
        bound = 1.0 / math.sqrt(self.in_features * self.order)
        nn.init.uniform_(self.coefficients, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, in)
        powers = [x]
        for _ in range(self.order - 1):
            powers.append(powers[-1] * x)
        features = torch.cat(powers, dim=1)                     # (batch, p*in): x^1 | x^2 | ...
        weight = self.coefficients[:, 1:, :].reshape(self.out_features, -1)  # (out, p*in)
        bias = self.bias + self.coefficients[:, 0, :].sum(dim=1)            # k=0 terms
        return F.linear(features, weight, bias)                 # (batch, out)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, order={self.order}"
