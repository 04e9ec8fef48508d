"""Regressor arms (function:NAME datasets): every layer family as input -> hidden -> output, with
the same training ranges for every arm. Full-batch LBFGS (pykan's optimizer) or Adam is a
choice every arm has; KAN arms refit their grids to the data as pykan's fit does."""
from tunekae.spaces import Arm, suggest_architecture

MLP_ACTIVATIONS = ["relu", "silu", "tanh"]
PYKAN_RECIPE = {"optimizer": "lbfgs", "lr": 1.0, "batch_size": 0, "weight_decay": 0.0}
# pykan's fit refits the grids every 5 steps until step 50 (grid_update_num=10, stop_grid_update_step=50)
PYKAN_GRID_UPDATES = {"grid_update_epochs": 50, "grid_update_every": 5}


def suggest_regression_training(trial) -> dict:
    """Full-batch LBFGS (pykan's: lr about 1) or Adam on mini-batches; returns the constants."""
    if trial.suggest_categorical("optimizer", ["lbfgs", "adam"]) == "lbfgs":
        trial.suggest_float("lr", 0.1, 1.0, log=True)
        constants = {"batch_size": 0}
    else:
        trial.suggest_float("lr", 1e-4, 3e-2, log=True)
        trial.suggest_categorical("batch_size", [32, 128, 0])
        constants = {}
    trial.suggest_categorical("weight_decay", [0.0, 1e-6, 1e-4])
    return constants


def define_regressor(trial, ctx):
    """Any family: depth and shape fitted to the budget, the training recipe; MLPs also choose
    their activation, KANs pykan's regularizer weight, and refit their grids as pykan does."""
    arch = suggest_architecture(trial, ctx)
    if ctx.arm.family == "linear" and arch["depth"] > 0:
        trial.suggest_categorical("hidden_activation", MLP_ACTIVATIONS)
    if ctx.arm.family == "kan":
        trial.suggest_categorical("lamb", [0.0, 1e-4, 1e-3, 1e-2])
        arch.update(PYKAN_GRID_UPDATES)
    return {**arch, **suggest_regression_training(trial)}


def regressor(name: str, family: str, **kw) -> Arm:
    return Arm(name, family, define_regressor, variant="regressor", fixed={"output_activation": "none"},
               start={**PYKAN_RECIPE, **kw.pop("start", {})}, **kw)


MLP = regressor("mlp", "linear", depths=(1, 2))
KAN = regressor("kan", "kan", depths=(1, 2), shapes=[{"grid": g, "order": k} for g in (3, 5, 10) for k in (2, 3)],
                start={"grid": 5, "order": 3, "lamb": 0.0})
CHEBY = regressor("cheby", "cheby", depths=(1, 2), shapes=[{"order": d} for d in (3, 4, 6)], start={"order": 4})
RBF = regressor("rbf", "rbf", depths=(1, 2), shapes=[{"grid": g} for g in (4, 8, 12)], start={"grid": 8})
KAE = regressor("kae", "kae", depths=(1, 2), shapes=[{"order": p} for p in (2, 3, 4)], start={"order": 3})
