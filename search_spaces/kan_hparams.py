"""pykan's hyperparameter demo as a search: KAN [2,5,1] on exp(sin(pi x) + y^2) with pykan's fit
(LBFGS, 20 full-batch steps, the grid refitted every 5 steps), over the demo's values of lamb,
lamb_entropy, grid and spline order k; each trial has its own seed. Every trial also records
what pykan's prune() keeps (pruned_params, pruned_val_loss). The width is fixed, so the parameter
count follows grid and k, as in the demo; every trial runs its 20 steps (no early stopping)."""
from tunekae.spaces import Arm, Space, suggest_architecture

from ._regressors import PYKAN_GRID_UPDATES, PYKAN_RECIPE

LAMBS, LAMB_ENTROPIES = [0.0, 0.01, 0.1, 1.0], [0.0, 10.0, 100.0]


def define_pykan_demo(trial, ctx):
    arch = suggest_architecture(trial, ctx)          # grid and k: the arm's shapes
    trial.suggest_categorical("lamb", LAMBS)
    trial.suggest_categorical("lamb_entropy", LAMB_ENTROPIES)
    return {**arch, **PYKAN_RECIPE, **PYKAN_GRID_UPDATES, "prune": True}


SPACE = Space(
    name="kan_hparams",
    description="pykan's hyperparameter demo: KAN [2,5,1] over lamb, lamb_entropy, grid and k",
    arms=[Arm("kan", "kan", define_pykan_demo, variant="regressor", hidden=(5,),
              shapes=[{"grid": g, "order": k} for g in (1, 3, 5, 10, 20) for k in (1, 2, 3)],
              fixed={"output_activation": "none"},
              start={"grid": 5, "order": 3, "lamb": 0.0, "lamb_entropy": 0.0})],
    dataset="function:exp_sin",
    samples_per_arm=24,
    epochs=20,
    asha=False,
)
