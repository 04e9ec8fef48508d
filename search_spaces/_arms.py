"""Arms shared by several comparisons. Define-by-run functions are module-level (OptunaSearch
pickles them with its state)."""
from tunekae.spaces import PAPER_RECIPE, Arm, suggest_architecture, suggest_training

MLP_ACTIVATIONS = ["relu", "relu6", "leaky_relu", "silu"]


def define_mlp(trial, ctx):
    arch = suggest_architecture(trial, ctx)
    if arch["depth"] > 0:   # no hidden layer, no activation to tune
        trial.suggest_categorical("hidden_activation", MLP_ACTIVATIONS)
    trial.suggest_categorical("output_activation", ["sigmoid", "none"])
    suggest_training(trial)
    return arch


def define_kae(trial, ctx):
    """KAE: the polynomial order (1-6) is the shape option the solver fits; KAE layers are their
    own non-linearity (no activation between them, as in the paper)."""
    arch = suggest_architecture(trial, ctx)
    trial.suggest_categorical("output_activation", ["sigmoid", "none"])
    suggest_training(trial)
    return arch


def define_kan(trial, ctx):
    """B-spline KAN: grid G and spline order k are fitted by the solver; pykan's L1 and entropy
    regularization weights are searched (0 allowed via a tiny lower bound on a log scale)."""
    arch = suggest_architecture(trial, ctx)
    trial.suggest_categorical("output_activation", ["sigmoid", "none"])
    trial.suggest_float("kan_l1", 1e-8, 1e-3, log=True)
    trial.suggest_float("kan_entropy", 1e-8, 1e-3, log=True)
    suggest_training(trial, optimizers=("adam", "adamw"), lr=(1e-4, 3e-2))
    return arch


def define_basis(trial, ctx):
    """cheby / rbf: the basis size is the shape option; the rest as for KAE."""
    arch = suggest_architecture(trial, ctx)
    trial.suggest_categorical("output_activation", ["sigmoid", "none"])
    suggest_training(trial, lr=(1e-4, 3e-2))
    return arch


def define_vae(trial, ctx):
    """vae and beta_vae (beta searched for beta_vae), derp_vae (KS weight and probes),
    wae_mmd (MMD weight), all on MLP layers."""
    arch = suggest_architecture(trial, ctx)
    if arch["depth"] > 0:
        trial.suggest_categorical("hidden_activation", MLP_ACTIVATIONS)
    variant = ctx.arm.variant
    if variant == "beta_vae":
        trial.suggest_float("beta", 0.1, 10.0, log=True)
    elif variant == "derp_vae":
        trial.suggest_float("derp_lambda", 0.01, 10.0, log=True)
        trial.suggest_categorical("derp_probes", [8, 16, 32])
    elif variant == "wae_mmd":
        trial.suggest_float("mmd_lambda", 0.1, 100.0, log=True)
    suggest_training(trial)
    return arch


PAPER_KAE_START = {**{k: v for k, v in PAPER_RECIPE.items() if k != "hidden_activation"}, "order": 3}

MLP = Arm("mlp", "linear", define_mlp, depths=(0, 1, 2), start=PAPER_RECIPE)
KAE = Arm("kae", "kae", define_kae, shapes=[{"order": p} for p in range(1, 7)], depths=(0, 1, 2),
          start=PAPER_KAE_START)
KAN = Arm("kan", "kan", define_kan, depths=(0, 1, 2),
          shapes=[{"grid": g, "order": k} for g in (3, 5, 8, 10) for k in (1, 2, 3)],
          start={**PAPER_KAE_START, "order": 3, "grid": 5})
CHEBY = Arm("cheby", "cheby", define_basis, shapes=[{"order": d} for d in range(2, 9)], depths=(0, 1, 2),
            start={**PAPER_KAE_START, "order": 4})
RBF = Arm("rbf", "rbf", define_basis, shapes=[{"grid": g} for g in (4, 6, 8, 10, 12)], depths=(0, 1, 2),
          start={**PAPER_KAE_START, "grid": 8})
VAE_START = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6, "batch_size": 128}
VAES = [Arm(v, "linear", define_vae, variant=v, depths=(1, 2),
            fixed={"latent_activation": "none"} if v == "wae_mmd" else {}, start=VAE_START)
        for v in ("vae", "beta_vae", "derp_vae", "wae_mmd")]
