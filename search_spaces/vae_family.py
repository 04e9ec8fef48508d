"""The VAE family on MLP layers: vae, beta_vae, derp_vae, wae_mmd, each with its own weights
searched. Compare reconstruction (posterior mean) and the latent metrics (kl, active_units,
ks_distance) at equal parameters."""
from tunekae.spaces import Space

from ._arms import VAES

SPACE = Space(
    name="vae_family",
    description="VAE, beta-VAE, DERP-VAE and WAE-MMD on MLP layers at equal parameters and tuning effort",
    arms=VAES,
    latent_dim=8,
    budgets=["4x"],
)
