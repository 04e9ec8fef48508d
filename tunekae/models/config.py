"""ModelConfig: everything that defines an autoencoder's architecture and its loss terms.

One dataclass for every family and variant, so that the CLI, the budget solver, the search
trainable and saved results all speak the same vocabulary (its fields are the JSON keys).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..layers import check_init
from ..layers.kan import KAN_REGS

ACTIVATIONS = ("relu", "relu6", "leaky_relu", "silu", "gelu", "tanh", "sigmoid", "none")
VARIANTS = ("ae", "vae", "beta_vae", "derp_vae", "wae_mmd", "regressor")
NOISE_KINDS = ("none", "gaussian", "salt_pepper")

# The activation between hidden layers that each family's reference architecture has. The KAE
# paper's autoencoder puts a ReLU after every KAE layer but the last (encoder KAE-ReLU-KAE-ReLU,
# decoder KAE-ReLU-KAE-Sigmoid: the authors' StandardAE); efficient-kan's KAN, ChebyKAN and
# FastKAN stack their layers directly, each layer being its own non-linearity.
REFERENCE_HIDDEN_ACTIVATION = {"linear": "relu", "kae": "relu", "kan": "none", "cheby": "none", "rbf": "none"}


@dataclass
class ModelConfig:
    family: str = "linear"              # layer family: linear (MLP), kae, kan, cheby, rbf
    input_dim: int = 784
    latent_dim: int = 16
    hidden: tuple[int, ...] = ()        # encoder hidden widths; the decoder mirrors them
    output_dim: int = 1                 # regressor only: input -> hidden -> output_dim (no latent)
    # Layer shape options (each family reads its own; see tunekae.layers.LAYER_OPTIONS).
    order: int | None = None            # kae: polynomial order p; kan: spline order k; cheby: degree D
    grid: int | None = None             # kan: grid intervals G; rbf: number of centres
    grid_range: tuple[float, float] | None = None  # kan / rbf knot range
    init: str = "reference"             # reference (the family's own) | fan_in (tunekae.layers)
    # Activations.
    hidden_activation: str | None = None  # None: the family's reference (REFERENCE_HIDDEN_ACTIVATION)
    latent_activation: str = "relu"       # the KAE paper's choice
    output_activation: str = "sigmoid"
    # Variant (VAE family) and its loss weights.
    variant: str = "ae"
    beta: float = 1.0                   # KL weight (vae: 1; beta_vae: searched)
    derp_lambda: float = 1.0            # weight of the DERP Kolmogorov-Smirnov term
    derp_probes: int = 16               # K random unit projections, drawn once per run from the seed
    mmd_lambda: float = 10.0            # WAE-MMD weight
    # Regularizers usable with any family.
    dropout: float = 0.0                # between hidden layers
    latent_l1: float = 0.0              # sparse AE: weight of mean |z|
    noise: str = "none"                 # input corruption during training: none, gaussian, salt_pepper
    noise_level: float = 0.0            # gaussian sigma or salt-and-pepper rate
    # kan only, pykan's meaning: loss + lamb * (l1 + lamb_entropy * entropy) (layers/kan.py)
    lamb: float = 0.0
    lamb_entropy: float = 2.0           # pykan's fit() default; relative to lamb
    kan_reg: str = "activation"         # activation (pykan's) | weights (efficient-kan's stand-in)
    seed: int = 0                       # fixes the DERP probes (weights are seeded by the caller)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.grid_range is not None:
            self.grid_range = tuple(float(v) for v in self.grid_range)
        for name in ("hidden_activation", "latent_activation", "output_activation"):
            value = getattr(self, name)
            if value is not None and value not in ACTIVATIONS:
                raise ValueError(f"{name} must be one of {', '.join(ACTIVATIONS)}; got {value!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {self.variant!r}")
        check_init(self.init)
        if self.kan_reg not in KAN_REGS:
            raise ValueError(f"kan_reg must be one of {', '.join(KAN_REGS)}; got {self.kan_reg!r}")
        if self.lamb < 0 or self.lamb_entropy < 0:
            raise ValueError("lamb and lamb_entropy must be >= 0")
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {', '.join(NOISE_KINDS)}; got {self.noise!r}")
        if any(h < 1 for h in self.hidden) or self.latent_dim < 1 or self.input_dim < 1 or self.output_dim < 1:
            raise ValueError("input_dim, latent_dim, output_dim and every hidden width must be >= 1")

    @property
    def resolved_hidden_activation(self) -> str:
        if self.hidden_activation is not None:
            return self.hidden_activation
        return REFERENCE_HIDDEN_ACTIVATION.get(self.family, "relu")

    def layer_options(self) -> dict:
        return {"order": self.order, "grid": self.grid, "grid_range": self.grid_range, "init": self.init}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def replace(self, **changes) -> "ModelConfig":
        return ModelConfig.from_dict({**self.to_dict(), **changes})
