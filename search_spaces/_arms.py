"""Arms shared by several comparisons. Define-by-run functions are module-level (OptunaSearch
pickles them with its state).

Every arm searches the same training ranges and the same latent/output activations
(tunekae.spaces.suggest_training, suggest_activations); each family's own options come on top.
Each arm's default model is its family's reference (tunekae.layers); where an arm samples a
departure from it (no activation between KAE layers), the reference value is one of the choices
and the arm's starting point."""
from tunekae.spaces import PAPER_RECIPE, Arm, suggest_activations, suggest_architecture, suggest_training

MLP_ACTIVATIONS = ["relu", "relu6", "leaky_relu", "silu"]
# Between KAN-like layers: the reference architecture's choice first (relu for the KAE paper's
# autoencoder, none for efficient-kan, ChebyKAN and FastKAN), the other as a named departure.
KAE_BETWEEN = ["relu", "none"]
KAN_BETWEEN = ["none", "relu"]
# pykan's hyperparameter demo sweeps lamb 0-1 and lamb_entropy 0-100; 0 must be reachable, which
# a log-scale float cannot, so both are categorical over the demo's values (and pykan's default 2).
PYKAN_LAMBS = [0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
PYKAN_LAMB_ENTROPIES = [0.0, 2.0, 10.0, 100.0]


def define_mlp(trial, ctx):
    arch = suggest_architecture(trial, ctx)
    if arch["depth"] > 0:   # no hidden layer, no activation to tune
        trial.suggest_categorical("hidden_activation", MLP_ACTIVATIONS)
    suggest_activations(trial)
    suggest_training(trial)
    return arch


def define_kae(trial, ctx):
    """KAE: the polynomial order (1-6) is the shape option the solver fits; between hidden
    layers the paper's relu, or none (a departure)."""
    arch = suggest_architecture(trial, ctx)
    if arch["depth"] > 0:
        trial.suggest_categorical("hidden_activation", KAE_BETWEEN)
    suggest_activations(trial)
    suggest_training(trial)
    return arch


def define_kan(trial, ctx):
    """B-spline KAN: grid G and spline order k are fitted by the solver; pykan's regularizer
    weights lamb and lamb_entropy are searched over pykan's demo ranges."""
    arch = suggest_architecture(trial, ctx)
    if arch["depth"] > 0:
        trial.suggest_categorical("hidden_activation", KAN_BETWEEN)
    suggest_activations(trial)
    lamb = trial.suggest_categorical("lamb", PYKAN_LAMBS)
    if lamb > 0:
        trial.suggest_categorical("lamb_entropy", PYKAN_LAMB_ENTROPIES)
    suggest_training(trial)
    return arch


def define_basis(trial, ctx):
    """cheby / rbf: the basis size is the shape option; the rest as for KAE."""
    arch = suggest_architecture(trial, ctx)
    if arch["depth"] > 0:
        trial.suggest_categorical("hidden_activation", KAN_BETWEEN)
    suggest_activations(trial)
    suggest_training(trial)
    return arch


def define_vae(trial, ctx):
    """vae and beta_vae (beta searched for beta_vae), derp_vae (KS weight and probes),
    wae_mmd (MMD weight), all on MLP layers. The code is a posterior mean (or matches a
    Gaussian prior): no latent activation."""
    arch = suggest_architecture(trial, ctx)
    if arch["depth"] > 0:
        trial.suggest_categorical("hidden_activation", MLP_ACTIVATIONS)
    variant = ctx.arm.variant
    if variant == "beta_vae":
        trial.suggest_float("beta", 0.1, 10.0, log=True)
    elif variant == "derp_vae":
        trial.suggest_float("derp_lambda", 0.01, 10.0, log=True)
        trial.suggest_categorical("derp_probes", [3, 5, 8, 16, 32])   # the DERP seed experiments used 3 and 5
    elif variant == "wae_mmd":
        trial.suggest_float("mmd_lambda", 0.1, 100.0, log=True)
    suggest_activations(trial, latent=())
    suggest_training(trial)
    return arch


PAPER_KAE_START = {**PAPER_RECIPE, "order": 3}                 # the paper's recipe, relu between layers
KAN_START = {**PAPER_RECIPE, "hidden_activation": "none", "lamb": 0.0}   # the references stack layers directly

MLP = Arm("mlp", "linear", define_mlp, depths=(0, 1, 2), start=PAPER_RECIPE)
KAE = Arm("kae", "kae", define_kae, shapes=[{"order": p} for p in range(1, 7)], depths=(0, 1, 2),
          start=PAPER_KAE_START)
KAN = Arm("kan", "kan", define_kan, depths=(0, 1, 2),
          shapes=[{"grid": g, "order": k} for g in (3, 5, 8, 10) for k in (1, 2, 3)],
          start={**KAN_START, "order": 3, "grid": 5})
CHEBY = Arm("cheby", "cheby", define_basis, shapes=[{"order": d} for d in range(2, 9)], depths=(0, 1, 2),
            start={**KAN_START, "order": 4})
RBF = Arm("rbf", "rbf", define_basis, shapes=[{"grid": g} for g in (4, 6, 8, 10, 12)], depths=(0, 1, 2),
          start={**KAN_START, "grid": 8})
VAE_START = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6, "batch_size": 128}
VAES = [Arm(v, "linear", define_vae, variant=v, depths=(1, 2),
            fixed={"latent_activation": "none"} if v == "wae_mmd" else {}, start=VAE_START)
        for v in ("vae", "beta_vae", "derp_vae", "wae_mmd")]
