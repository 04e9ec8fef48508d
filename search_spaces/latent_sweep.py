"""Loss against latent size per family (the course project's sweep): MLP, KAE and B-spline KAN
autoencoders at one absolute parameter budget and latent sizes 8, 16, 32 and 64, each latent an
arm of its own with the same tuning effort. The budget is absolute, not '4x': a multiple of the
single-layer MLP would grow with the latent and confound the two axes."""
from tunekae.spaces import Space

from ._arms import KAE, KAN, MLP

SPACE = Space(
    name="latent_sweep",
    description="MLP, KAE and KAN autoencoders at one budget across latent sizes 8/16/32/64",
    arms=[MLP, KAE, KAN],
    latents=[8, 16, 32, 64],
    # on digits' 64 pixels the smallest latent-64 MLP has 8,320; on Fashion-MNIST pass --budgets 200k
    # (its smallest latent-64 MLP has 101,200, and a one-layer KAN needs 150k at latent 16)
    budgets=["20k"],
    samples_per_arm=8,
)
