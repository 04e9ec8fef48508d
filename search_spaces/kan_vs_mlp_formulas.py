"""KAN, Chebyshev, RBF and KAE regressors against the MLP on formulas, at matched parameters and
equal tuning effort: the "fairer comparison" of KAN and MLP on symbolic formulas. Run it on any
formula of the registry: --dataset function:xy, function:bessel_j0, function:feynman_i_12_11, ...
(`python -m tunekae spaces --datasets` lists them)."""
from tunekae.spaces import Space

from ._regressors import CHEBY, KAE, KAN, MLP, RBF

SPACE = Space(
    name="kan_vs_mlp_formulas",
    description="KAN, Chebyshev, RBF and KAE regressors vs MLP on a formula at equal parameters and tuning effort",
    arms=[MLP, KAN, CHEBY, RBF, KAE],
    dataset="function:exp_sin",
    budgets=[150, 600],            # 150: pykan's KAN [2,5,1] at grid 5, order 3
    samples_per_arm=12,
    epochs=30,
)
