"""The KAE paper's question at matched budgets: does a polynomial KAE beat an MLP autoencoder
when both get the same parameters and the same tuning effort? Both arms start from the paper's
recipe (Adam 1e-4, weight decay 1e-4, batch 256, relu latent, sigmoid output)."""
from tunekae.spaces import Space

from ._arms import KAE, MLP

SPACE = Space(
    name="kae_vs_mlp",
    description="KAE (polynomial KAN layers) vs MLP autoencoders at equal parameters and tuning effort",
    arms=[MLP, KAE],
    budgets=["1x", "4x", "16x"],   # on 784-16 data: 25,888 / 103,552 / 414,208 (the paper's 25,888 / ~101k / ~410k)
    samples_per_arm=12,   # 72 trials: README's main command prints a line per trial, under 100 in all
)
