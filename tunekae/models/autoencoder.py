"""The autoencoder: input -> hidden widths -> latent -> mirrored hidden widths -> output, built
from any registered layer family; the VAE family shares the same builder (see vae.py).

Every model speaks one interface, used by the training engine and the metrics:
    out = model(x)                 # AEOutput(recon, z, mu, logvar)
    terms = model.loss_terms(x, out)   # {"loss": total to minimise, "recon": mean per-pixel MSE, ...}
    model.encode(x)                # deterministic code (posterior mean for the VAE family)
    model.reconstruct(x)           # evaluation reconstruction (decodes the posterior mean)
    model.decode(z)                # output of a code (the decoder and its output activation)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import create_layer
from .config import ModelConfig


def activation(name: str) -> nn.Module:
    return {
        "relu": nn.ReLU, "relu6": nn.ReLU6, "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU,
        "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "none": nn.Identity,
    }[name]()


def stack(cfg: ModelConfig, widths: list[int], final_activation: str) -> nn.Sequential:
    """Layers widths[0] -> widths[1] -> ... with the hidden activation (and dropout) between
    them and `final_activation` after the last."""
    layers: list[nn.Module] = []
    n = len(widths) - 1
    for i in range(n):
        layers.append(create_layer(cfg.family, widths[i], widths[i + 1], **cfg.layer_options()))
        if i < n - 1:
            if cfg.resolved_hidden_activation != "none":
                layers.append(activation(cfg.resolved_hidden_activation))
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
    if final_activation != "none":
        layers.append(activation(final_activation))
    return nn.Sequential(*layers)


@dataclass
class AEOutput:
    recon: torch.Tensor
    z: torch.Tensor                      # the code the decoder saw (a sample for the VAE family)
    mu: torch.Tensor | None = None
    logvar: torch.Tensor | None = None


class Autoencoder(nn.Module):
    """Deterministic autoencoder (variant 'ae'), also the base of WAE-MMD and the VAEs."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        enc_widths = [cfg.input_dim, *cfg.hidden, self.encoder_out_dim()]
        self.encoder = stack(cfg, enc_widths, self.encoder_activation())
        self.decoder = stack(cfg, [cfg.latent_dim, *reversed(cfg.hidden), cfg.input_dim],
                             cfg.output_activation)
        track_kan_inputs(self)

    # Hooks the VAE subclasses override.
    def encoder_out_dim(self) -> int:
        return self.cfg.latent_dim

    def encoder_activation(self) -> str:
        return self.cfg.latent_activation

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> AEOutput:
        z = self.encoder(x)
        return AEOutput(recon=self.decoder(z), z=z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss_terms(self, x: torch.Tensor, out: AEOutput) -> dict[str, torch.Tensor]:
        recon = F.mse_loss(out.recon, x)   # mean per-pixel MSE: the number every family reports
        terms = {"recon": recon}
        terms.update(self.extra_terms(out))
        loss = recon
        for name, weight in self.weighted_terms().items():   # no "+ 0" for the plain AE's backward
            loss = loss + weight * terms[name]
        terms["loss"] = loss
        return add_regularizers(terms, self, out)

    def extra_terms(self, out: AEOutput) -> dict[str, torch.Tensor]:
        return {}

    def weighted_terms(self) -> dict[str, float]:
        """Weights of the extra terms inside terms['loss'] (recon has weight 1)."""
        return {}

    def kan_layers(self):
        return kan_layers(self)


def kan_layers(model: nn.Module) -> list:
    from ..layers.kan import BSplineKANLayer
    return [m for m in model.modules() if isinstance(m, BSplineKANLayer)]


def track_kan_inputs(model: nn.Module) -> None:
    """pykan's regularizer is measured on the activations of the batch being trained: the KAN
    layers keep their input from the training forward pass for loss_terms."""
    needed = model.cfg.lamb > 0 and model.cfg.kan_reg == "activation"
    for layer in model.kan_layers():
        layer.track_input = needed


def add_regularizers(terms: dict, model: nn.Module, out: AEOutput) -> dict:
    """Sparse-code L1, and the KAN regularizer with pykan's weights:
    loss + lamb * sum over KAN layers of (l1 + lamb_entropy * entropy) (layers/kan.py)."""
    cfg = model.cfg
    if cfg.latent_l1 > 0:
        terms["latent_l1"] = out.z.abs().mean()
        terms["loss"] = terms["loss"] + cfg.latent_l1 * terms["latent_l1"]
    layers = model.kan_layers() if cfg.lamb > 0 else []
    if layers and (cfg.kan_reg == "weights" or model.training):
        l1 = entropy = 0.0
        for layer in layers:
            a, e = layer.regularization(cfg.kan_reg)
            layer.last_input = None
            l1, entropy = l1 + a, entropy + e
        terms["kan_l1"], terms["kan_entropy"] = l1, entropy
        terms["loss"] = terms["loss"] + cfg.lamb * (l1 + cfg.lamb_entropy * entropy)
    return terms
