"""The VAE family on the shared encoder/decoder builder (any layer family).

Scale convention: every variant's training loss is per pixel, like the deterministic AE's:
    loss = recon_mse + beta * KL / input_dim  (+ variant terms)
which is the usual ELBO (sum-over-pixels squared error + beta * KL) divided by input_dim, so
the same learning rates mean the same thing across families. `recon` is always the mean
per-pixel MSE of the evaluation reconstruction, comparable with every other family; `kl` is
reported in nats per sample.
"""
from __future__ import annotations

import math

import torch

from .autoencoder import AEOutput, Autoencoder
from .config import ModelConfig


class VAE(Autoencoder):
    """vae (beta = 1), beta_vae (beta searched) and the base of derp_vae."""

    def encoder_out_dim(self) -> int:
        return 2 * self.cfg.latent_dim          # mu and log-variance

    def encoder_activation(self) -> str:
        return "none"                           # mu and logvar are unbounded

    def posterior(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-20.0, 10.0)

    def encode(self, x):
        return self.posterior(x)[0]

    def forward(self, x) -> AEOutput:
        mu, logvar = self.posterior(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return AEOutput(recon=self.decoder(z), z=z, mu=mu, logvar=logvar)

    def extra_terms(self, out):
        kl = -0.5 * torch.sum(1 + out.logvar - out.mu.pow(2) - out.logvar.exp(), dim=1).mean()
        return {"kl": kl}

    def weighted_terms(self):
        return {"kl": self.cfg.beta / self.cfg.input_dim}


def ks_statistic_normal(samples: torch.Tensor) -> torch.Tensor:
    """Kolmogorov-Smirnov distance of each column of `samples` (n, K) against N(0, 1), from the
    sorted values so that it is differentiable (sub-gradient of the max). Returns (K,)."""
    n = samples.shape[0]
    s, _ = torch.sort(samples, dim=0)
    cdf = 0.5 * (1 + torch.erf(s / math.sqrt(2.0)))
    i = torch.arange(1, n + 1, device=samples.device, dtype=samples.dtype).unsqueeze(1)
    above = (i / n - cdf).amax(dim=0)
    below = (cdf - (i - 1) / n).amax(dim=0)
    return torch.maximum(above, below)


class DERPVAE(VAE):
    """derp_vae: VAE + lambda * mean over K fixed random unit probes of the KS statistic of the
    projected latent samples against N(0,1) (distributional enforcement via random probes)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        g = torch.Generator().manual_seed(cfg.seed)
        probes = torch.randn(cfg.latent_dim, cfg.derp_probes, generator=g)
        self.register_buffer("probes", probes / probes.norm(dim=0, keepdim=True))

    def extra_terms(self, out):
        terms = super().extra_terms(out)
        terms["ks"] = ks_statistic_normal(out.z @ self.probes).mean()
        return terms

    def weighted_terms(self):
        return {**super().weighted_terms(), "ks": self.cfg.derp_lambda}


def imq_mmd(z: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 with the inverse multiquadric kernel k(a,b) = C / (C + |a-b|^2), summed
    over the usual scales (WAE paper: C = 2 * d * s for s in 0.1 .. 10)."""
    n, d = z.shape
    total = z.new_zeros(())
    dzz, dpp, dzp = torch.cdist(z, z) ** 2, torch.cdist(prior, prior) ** 2, torch.cdist(z, prior) ** 2
    off = 1 - torch.eye(n, device=z.device, dtype=z.dtype)
    for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0):
        c = 2.0 * d * s
        kzz, kpp, kzp = c / (c + dzz), c / (c + dpp), c / (c + dzp)
        total = total + ((kzz * off).sum() + (kpp * off).sum()) / (n * (n - 1)) - 2 * kzp.mean()
    return total


class WAEMMD(Autoencoder):
    """wae_mmd: deterministic encoder, MMD between the batch of codes and samples of N(0, I)."""

    def encoder_activation(self) -> str:
        return "none"                           # codes must be able to match a Gaussian prior

    def extra_terms(self, out):
        if out.z.shape[0] < 2:
            return {"mmd": out.z.new_zeros(())}
        return {"mmd": imq_mmd(out.z, torch.randn_like(out.z))}

    def weighted_terms(self):
        return {"mmd": self.cfg.mmd_lambda}
