"""`kan`: B-spline KAN layer (reference: efficient-kan, github.com/Blealtan/efficient-kan,
src/efficient_kan/kan.py, `KANLinear` with its defaults; the KAE paper's code carries the same
layer as its KAN).

    phi_ji(x_i) = W_base[j, i] * silu(x_i)  +  scaler[j, i] * sum_k W_spline[j, i, k] * B_k(x_i)
    y_j = sum_i phi_ji(x_i)

B(x) holds the G+k B-spline basis functions (order k, Cox-de Boor) of every input on a grid of
G intervals over `grid_range` (extended by k knots on each side); it is computed once per input,
shape (batch, in, G+k), and the spline branch is ONE matmul over the flattened basis, so no
(batch, out, in) tensor is built in the forward pass. Parameters (G+k+2)*in*out, no bias.

Initialization (init="reference", efficient-kan's, scale_noise 0.1, scale_base = scale_spline = 1),
drawn in efficient-kan's order so that a seed gives its values:
    W_base ~ kaiming_uniform(a=sqrt(5))                = U(+-1/sqrt(in))
    W_spline = the least-squares B-spline fit (curve2coeff) through the G+1 interior knots of
               noise ~ U(-0.05/G, +0.05/G), one curve per edge
    scaler ~ kaiming_uniform(a=sqrt(5))                = U(+-1/sqrt(in))
init="fan_in" (a named departure): W_spline ~ U(+-1/sqrt(in*(G+k))), the rest as above.

Regularization (model.loss_terms adds lamb * regularization(...)), pykan 0.2.8's semantics
(MultKAN.reg with reg_metric='edge_forward_spline_n', lamb_l1 = 1, lamb_coef = 0):
    s_ji  = std_batch(phi_ji(x_i)) / (std_batch(x_i) + 0.1)          one scale per edge
    l1    = sum_ji s_ji
    H_row = -mean_j sum_i p_ji log2(p_ji + 1e-4),  p_ji = s_ji / (sum_i s_ji + 1)
    H_col = -mean_i sum_j q_ji log2(q_ji + 1e-4),  q_ji = s_ji / (sum_j s_ji + 1)
    reg   = l1 + lamb_entropy * (H_row + H_col)
The std of phi_ji is taken from the per-input covariance of [silu(x_i), B(x_i)] over the batch
(phi is linear in those features), which gives pykan's number without its (batch, out, in)
tensor. kan_reg="weights" (a named departure) is efficient-kan's stand-in instead: mean
|W_spline| per edge for s_ji, entropy of s / sum(s) in nats, reg = l1 + lamb_entropy * H.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import check_init, register

SCALE_NOISE = 0.1         # efficient-kan's scale_noise
PYKAN_STD_FLOOR = 0.1     # pykan: input_range = std(preacts) + 0.1
KAN_REGS = ("activation", "weights")


@register("kan", options=("grid", "order", "grid_range", "init"))
class BSplineKANLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, grid: int = 5, order: int = 3,
                 grid_range: tuple[float, float] = (-1.0, 1.0), grid_eps: float = 0.02, init: str = "reference"):
        super().__init__()
        if grid < 1 or order < 0:
            raise ValueError(f"kan needs grid >= 1 and spline order >= 0, got grid={grid} order={order}")
        check_init(init)
        self.in_features, self.out_features = in_features, out_features
        self.grid_size, self.spline_order, self.grid_eps, self.init = grid, order, grid_eps, init
        lo, hi = grid_range
        step = (hi - lo) / grid
        knots = torch.arange(-order, grid + order + 1, dtype=torch.float32) * step + lo
        self.register_buffer("grid", knots.expand(in_features, -1).contiguous())  # (in, G+2k+1)
        self.base_weight = nn.Parameter(torch.empty(out_features, in_features))
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features, grid + order))
        self.spline_scaler = nn.Parameter(torch.empty(out_features, in_features))
        self.last_input: torch.Tensor | None = None   # kept by forward while track_input is on
        self.track_input = False
        self.register_buffer("mask", None)            # (out, in) live edges, once pruned (tunekae.pruning)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        G, k = self.grid_size, self.spline_order
        if self.init == "fan_in":
            bound = 1.0 / math.sqrt(self.in_features * (G + k))
            nn.init.uniform_(self.spline_weight, -bound, bound)
        else:
            noise = ((torch.rand(G + 1, self.in_features, self.out_features, device=self.grid.device) - 0.5)
                     * SCALE_NOISE / G)
            if not self.spline_weight.is_meta:   # counting parameters on the meta device: no values
                self.spline_weight.copy_(self.curve2coeff(self.grid.T[k:-k] if k else self.grid.T, noise))
        nn.init.kaiming_uniform_(self.spline_scaler, a=math.sqrt(5))

    def b_splines(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, in) -> bases (batch, in, G+k) by the Cox-de Boor recursion."""
        g = self.grid
        x = x.unsqueeze(-1)
        bases = ((x >= g[:, :-1]) & (x < g[:, 1:])).to(x.dtype)
        for k in range(1, self.spline_order + 1):
            bases = ((x - g[:, : -(k + 1)]) / (g[:, k:-1] - g[:, : -(k + 1)]) * bases[:, :, :-1]
                     + (g[:, k + 1:] - x) / (g[:, k + 1:] - g[:, 1:(-k)]) * bases[:, :, 1:])
        return bases

    def curve2coeff(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Spline coefficients (out, in, G+k) whose curves fit y (batch, in, out) at x (batch, in)
        by least squares, one curve per edge (minimum-norm where underdetermined)."""
        A = self.b_splines(x).transpose(0, 1)                          # (in, batch, G+k)
        solution = torch.linalg.lstsq(A, y.transpose(0, 1)).solution   # (in, G+k, out)
        return solution.permute(2, 0, 1).contiguous()

    @property
    def scaled_spline_weight(self) -> torch.Tensor:           # (out, in, G+k); a pruned edge's is 0
        scaler = self.spline_scaler if self.mask is None else self.spline_scaler * self.mask
        return self.spline_weight * scaler.unsqueeze(-1)

    @property
    def live_base_weight(self) -> torch.Tensor:               # (out, in); a pruned edge's is 0
        return self.base_weight if self.mask is None else self.base_weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:       # x: (batch, in)
        if self.track_input and self.training:
            self.last_input = x
        base = F.linear(F.silu(x), self.live_base_weight)
        spline = F.linear(self.b_splines(x).flatten(1), self.scaled_spline_weight.flatten(1))
        return base + spline

    def active_edges(self) -> torch.Tensor:
        """(out, in) booleans: the edges not pruned."""
        return self.mask.bool() if self.mask is not None else \
            torch.ones(self.out_features, self.in_features, dtype=torch.bool, device=self.base_weight.device)

    @torch.no_grad()
    def restrict(self, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None,
                 edges: torch.Tensor | None = None) -> None:
        """Prune: keep only the edges into outputs `rows`, out of inputs `cols`, and `edges`."""
        keep = self.active_edges().clone()
        if rows is not None:
            keep &= rows.to(keep.device).unsqueeze(1)
        if cols is not None:
            keep &= cols.to(keep.device).unsqueeze(0)
        if edges is not None:
            keep &= edges.to(keep.device)
        self.mask = keep.to(self.base_weight.dtype)

    @torch.no_grad()
    def update_grid(self, x: torch.Tensor, margin: float = 0.01):
        """Move the knots to the data's quantiles (blended with a uniform grid by grid_eps) and
        refit the spline weights by least squares so the layer's function is kept.
        efficient-kan's update_grid writes the refit of scaler * W_spline into W_spline, which
        changes the function wherever the scaler is not 1; here the refit is divided by it."""
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
        scaler = self.spline_scaler.unsqueeze(-1)
        safe = torch.where(scaler.abs() < 1e-8, torch.full_like(scaler, 1e-8), scaler)
        self.spline_weight.copy_(self.curve2coeff(x, old) / safe)

    def edge_stds(self, x: torch.Tensor) -> torch.Tensor:
        """std over the batch x of each edge's activation phi_ji(x_i), (out, in), from the per-input
        covariance of [silu(x_i), B(x_i)] (phi is linear in them): no (batch, out, in) tensor."""
        features = torch.cat([F.silu(x).unsqueeze(-1), self.b_splines(x)], dim=-1)   # (batch, in, 1+G+k)
        centred = features - features.mean(dim=0, keepdim=True)
        cov = torch.einsum("bik,bil->ikl", centred, centred) / max(x.shape[0] - 1, 1)  # (in, 1+G+k, 1+G+k)
        coef = torch.cat([self.live_base_weight.unsqueeze(-1), self.scaled_spline_weight], dim=-1)  # (out, in, 1+G+k)
        var = torch.einsum("oik,ikl,oil->oi", coef, cov, coef)
        # the floor keeps the square root's gradient finite for an edge that is constant on the batch
        return var.clamp_min(1e-12).sqrt()

    def edge_scales(self, x: torch.Tensor) -> torch.Tensor:
        """pykan's per-edge activation scale s_ji on the batch x (see the module docstring), (out, in)."""
        return self.edge_stds(x) / (x.std(dim=0) + PYKAN_STD_FLOOR)

    def regularization(self, kind: str = "activation") -> tuple[torch.Tensor, torch.Tensor]:
        """(l1, entropy) of this layer, for the batch its last training forward pass saw
        (track_input); the model adds lamb * (l1 + lamb_entropy * entropy)."""
        if kind == "weights":
            scale = self.spline_weight.abs().mean(-1)
            l1 = scale.sum()
            p = scale / l1
            return l1, -(p * p.log()).sum()
        if self.last_input is None:
            raise RuntimeError("kan regularization needs the layer's input: set track_input before the forward pass")
        scale = self.edge_scales(self.last_input)
        p_row = scale / (scale.sum(dim=1, keepdim=True) + 1)
        p_col = scale / (scale.sum(dim=0, keepdim=True) + 1)
        entropy_row = -(p_row * torch.log2(p_row + 1e-4)).sum(dim=1).mean()
        entropy_col = -(p_col * torch.log2(p_col + 1e-4)).sum(dim=0).mean()
        return scale.sum(), entropy_row + entropy_col

    def __getstate__(self):
        # the saved input belongs to one batch's graph: copies and pickles of the layer leave it
        # out (deepcopy refuses a non-leaf tensor)
        return {**self.__dict__, "last_input": None}

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"grid={self.grid_size}, order={self.spline_order}, init={self.init}")
