"""The KAE authors' autoencoder and training loop, written the way their code does it
(github.com/SciYu/KAE: DenseLayerPack/KAE.py, ExpToolKit/models.py StandardAE,
ExpToolKit/utils_train.py train/test), as the slow reference tunekae is measured against by
`python -m tunekae reproduce --reference-loop` and benchmarks/train_throughput.py. Not used to
train anything tunekae reports.

Their loop, kept here: the whole training split in order (DataLoader(batch_size), shuffle False),
the global RNG reset to the seed before every epoch, Adam(lr, weight_decay), loss.item() every
batch, and a test loss that is the mean of the per-batch MSEs. One difference: the model is
built after seeding, so a seed fixes the initial weights (their experiment.py builds the model
first, from whatever state the global RNG is in).
"""
from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class AuthorsKAELayer(nn.Module):
    """KAELayer: coefficients (out, in, p+1) ~ randn * 0.01, bias (1, out) = 0; the forward
    adds, for every order k = 0..p, (x expanded to (batch, out, in))^k * coeffs[:, :, k] summed
    over the inputs."""

    def __init__(self, input_dim: int, out_dim: int, order: int):
        super().__init__()
        self.order = order + 1
        self.coeffs = nn.Parameter(torch.randn(out_dim, input_dim, order + 1) * 0.01)
        self.bias = nn.Parameter(torch.zeros(1, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_expanded = x.unsqueeze(1).expand(-1, self.coeffs.shape[0], -1)
        y = torch.zeros((x.shape[0], self.coeffs.shape[0]), device=x.device)
        for k in range(self.order):
            y = y + ((x_expanded ** k) * self.coeffs[:, :, k]).sum(dim=-1)
        return y + self.bias


def authors_autoencoder(input_dim: int, hidden: tuple[int, ...], latent_dim: int, layer: str,
                        order: int = 3) -> nn.Module:
    """StandardAE: every layer but the decoder's last is followed by a ReLU (the latent's too),
    the decoder's last by a Sigmoid. layer: "linear" (nn.Linear) or "kae"."""
    def dense(i: int, o: int) -> nn.Module:
        return nn.Linear(i, o) if layer == "linear" else AuthorsKAELayer(i, o, order)

    widths = [input_dim, *hidden, latent_dim]
    encoder = [m for i, o in zip(widths, widths[1:]) for m in (dense(i, o), nn.ReLU(True))]
    back = widths[::-1]
    decoder = [m for i, o in zip(back, back[1:]) for m in (dense(i, o), nn.ReLU(True))][:-1] + [nn.Sigmoid()]
    return nn.Sequential(nn.Sequential(*encoder), nn.Sequential(*decoder))


def set_seed(seed: int) -> None:
    """Their set_seed: torch, CUDA, numpy and random."""
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    np.random.seed(seed)
    random.seed(seed)


def authors_train_and_test(model: nn.Module, train_x: torch.Tensor, test_x: torch.Tensor, epochs: int,
                           lr: float, weight_decay: float, batch_size: int, seed: int) -> list[float]:
    """Their train_and_test: per epoch, set_seed(seed), one pass over train_x in order, then the
    test loss (mean of per-batch MSEs). Returns the test loss after each epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    test_losses = []
    for _ in range(epochs):
        set_seed(seed)
        model.train()
        for i in range(0, len(train_x), batch_size):
            x = train_x[i:i + batch_size]
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), x)
            loss.backward()
            optimizer.step()
            loss.item()                       # their loop syncs every batch to log the loss
        model.eval()
        with torch.no_grad():
            batches = [F.mse_loss(model(test_x[i:i + batch_size]), test_x[i:i + batch_size]).item()
                       for i in range(0, len(test_x), batch_size)]
        test_losses.append(sum(batches) / len(batches))
    return test_losses
