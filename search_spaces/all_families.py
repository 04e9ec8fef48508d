"""Every family at the same budgets: MLP, KAE, B-spline KAN, Chebyshev, RBF and the VAE family."""
from tunekae.spaces import Space

from ._arms import CHEBY, KAE, KAN, MLP, RBF, VAES

SPACE = Space(
    name="all_families",
    description="Every autoencoder family (MLP, KAE, KAN, Chebyshev, RBF, VAE family) at equal budgets",
    arms=[MLP, KAE, KAN, CHEBY, RBF, *VAES],
)
