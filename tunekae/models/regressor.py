"""The regressor: input -> hidden widths -> output_dim, from any layer family (variant
'regressor'): function fitting, the task KANs were introduced on (a KAN [2,5,1] is
ModelConfig(family="kan", variant="regressor", input_dim=2, hidden=(5,), output_dim=1)).

It speaks the autoencoders' interface, so the engine, the budget solver and the search treat it
alike: `model(x).recon` is the prediction, `loss_terms(target, out)` its mean squared error (plus
the KAN regularizer), `reconstruct(x)` the prediction in evaluation.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .autoencoder import AEOutput, add_regularizers, kan_layers, stack, track_kan_inputs
from .config import ModelConfig


class Regressor(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.net = stack(cfg, [cfg.input_dim, *cfg.hidden, cfg.output_dim], cfg.output_activation)
        track_kan_inputs(self)

    def forward(self, x: torch.Tensor) -> AEOutput:
        return AEOutput(recon=self.net(x), z=x)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x   # no code: the input is what a regressor has

    def loss_terms(self, target: torch.Tensor, out: AEOutput) -> dict[str, torch.Tensor]:
        recon = F.mse_loss(out.recon, target)
        return add_regularizers({"recon": recon, "loss": recon}, self, out)

    def kan_layers(self):
        return kan_layers(self)
