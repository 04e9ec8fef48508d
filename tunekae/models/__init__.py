"""Models: one builder for every family and variant. `build_model(ModelConfig(...))`."""
from .autoencoder import AEOutput, Autoencoder
from .config import ACTIVATIONS, NOISE_KINDS, VARIANTS, ModelConfig
from .corruption import corrupt
from .regressor import Regressor
from .vae import VAE, WAEMMD, DERPVAE

_VARIANT_CLASSES = {"ae": Autoencoder, "vae": VAE, "beta_vae": VAE, "derp_vae": DERPVAE, "wae_mmd": WAEMMD,
                    "regressor": Regressor}


def build_model(cfg: ModelConfig) -> Autoencoder | Regressor:
    return _VARIANT_CLASSES[cfg.variant](cfg)


__all__ = ["ACTIVATIONS", "NOISE_KINDS", "VARIANTS", "AEOutput", "Autoencoder", "ModelConfig",
           "build_model", "corrupt"]
