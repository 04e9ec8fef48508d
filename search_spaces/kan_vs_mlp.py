"""B-spline KAN, Chebyshev-KAN and RBF-KAN (FastKAN) autoencoders against the MLP at matched
budgets; KAN arms also search pykan's spline regularization weights."""
from tunekae.spaces import Space

from ._arms import CHEBY, KAN, MLP, RBF

SPACE = Space(
    name="kan_vs_mlp",
    description="B-spline KAN, Chebyshev and RBF KAN autoencoders vs MLP at equal parameters and tuning effort",
    arms=[MLP, KAN, CHEBY, RBF],
)
