"""Model options shared by `describe`, `match` and `train`: flags -> ModelConfig."""
from __future__ import annotations

import argparse

from ..errors import UserError
from ..layers import FAMILIES, INITS
from ..layers.kan import KAN_REGS
from ..models import ACTIVATIONS, NOISE_KINDS, VARIANTS, ModelConfig

FAMILY_ALIASES = {"mlp": "linear"}


def comma_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 64,32, got {text!r}")
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"widths must be >= 1, got {text!r}")
    return values


def float_pair(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH like -1,1, got {text!r}")
    if not lo < hi:
        raise argparse.ArgumentTypeError(f"grid range needs LOW < HIGH, got {text!r}")
    return lo, hi


def add_model_arguments(p: argparse.ArgumentParser, shape_only: bool = False) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--family", default="linear", choices=sorted({*FAMILIES, *FAMILY_ALIASES}),
                   help="layer family (mlp = linear); default linear")
    g.add_argument("--latent", type=int, default=16, help="latent dimension (default 16)")
    g.add_argument("--order", type=int, help="kae: polynomial order p; kan: spline order k; cheby: degree D")
    g.add_argument("--grid", type=int, help="kan: grid intervals G; rbf: number of centres")
    g.add_argument("--grid-range", type=float_pair, help="kan/rbf knot range LOW,HIGH (kan default -1,1)")
    g.add_argument("--variant", default="ae", choices=VARIANTS, help="ae or a VAE-family variant")
    g.add_argument("--init", default="reference", choices=INITS,
                   help="reference: each family's published initialization (default); fan_in: a departure, "
                        "nn.Linear's scale over the expanded basis")
    if shape_only:
        return
    g.add_argument("--hidden-activation", choices=ACTIVATIONS,
                   help="between hidden layers (default: the family's reference architecture: relu for mlp and "
                        "kae, none for kan, cheby and rbf)")
    g.add_argument("--latent-activation", default="relu", choices=ACTIVATIONS)
    g.add_argument("--output-activation", choices=ACTIVATIONS,
                   help="default sigmoid for autoencoders (pixels in [0, 1]), none for regressors")
    g.add_argument("--beta", type=float, default=1.0, help="KL weight (vae family)")
    g.add_argument("--derp-lambda", type=float, default=1.0, help="derp_vae KS-term weight")
    g.add_argument("--derp-probes", type=int, default=16, help="derp_vae random probes K")
    g.add_argument("--mmd-lambda", type=float, default=10.0, help="wae_mmd MMD weight")
    r = p.add_argument_group("regularizers")
    r.add_argument("--dropout", type=float, default=0.0, help="dropout between hidden layers")
    r.add_argument("--latent-l1", type=float, default=0.0, help="L1 weight on the latent code (sparse AE)")
    r.add_argument("--noise", default="none", choices=NOISE_KINDS, help="input corruption in training (denoising AE)")
    r.add_argument("--noise-level", type=float, default=0.0, help="gaussian sigma or salt-and-pepper rate")
    r.add_argument("--lamb", type=float, default=0.0,
                   help="kan: pykan's lamb, the weight of its regularizer (l1 + lamb_entropy * entropy)")
    r.add_argument("--lamb-entropy", type=float, default=2.0, help="kan: pykan's lamb_entropy (default 2.0)")
    r.add_argument("--kan-reg", default="activation", choices=KAN_REGS,
                   help="kan: activation (pykan's, default) or weights (efficient-kan's stand-in)")


def model_config_from_args(args, input_dim: int, hidden: tuple[int, ...] = (), output_dim: int | None = None
                           ) -> ModelConfig:
    """output_dim: a function dataset's targets, which make the model a regressor."""
    family = FAMILY_ALIASES.get(args.family, args.family)
    fields = dict(family=family, input_dim=input_dim, latent_dim=args.latent, hidden=hidden,
                  order=args.order, grid=args.grid, grid_range=args.grid_range, variant=args.variant,
                  init=args.init)
    if output_dim is not None:
        if args.variant not in ("ae", "regressor"):
            raise UserError(f"--variant {args.variant} reconstructs its input; a function dataset needs a regressor "
                            f"(leave --variant out)")
        fields.update(variant="regressor", output_dim=output_dim, output_activation="none")
    for name in ("hidden_activation", "latent_activation", "output_activation", "beta", "derp_lambda",
                 "derp_probes", "mmd_lambda", "dropout", "latent_l1", "noise", "noise_level",
                 "lamb", "lamb_entropy", "kan_reg"):
        if getattr(args, name, None) is not None:
            fields[name] = getattr(args, name)
    try:
        return ModelConfig(**fields)
    except ValueError as e:
        raise UserError(str(e)) from None


def input_dim_from_args(args) -> int:
    """--input-dim, or the dimension of --dataset, or 784 (28x28 images)."""
    if getattr(args, "dataset", None):
        if args.input_dim is not None:
            raise UserError("give --input-dim or --dataset, not both")
        from ..data import load_dataset
        return load_dataset(args.dataset, data_dir=getattr(args, "data_dir", None)).input_dim
    if args.input_dim is not None and args.input_dim < 1:
        raise UserError(f"--input-dim must be >= 1; got {args.input_dim}")
    return 784 if args.input_dim is None else args.input_dim


def build_on_meta(cfg: ModelConfig):
    """The model with no memory behind its parameters (counting 10^8 hidden units must not
    allocate them); a shape option the layer refuses (kae order 0, kan grid 0) is the user's."""
    import torch

    from ..models import build_model
    try:
        with torch.device("meta"):
            return build_model(cfg)
    except ValueError as e:
        raise UserError(str(e)) from None
