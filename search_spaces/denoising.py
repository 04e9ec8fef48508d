"""Denoising autoencoders: every family trained on inputs corrupted with N(0, 0.6^2) noise (the
course project's setting), validated and scored against the CLEAN images; the report adds each
family's reconstruction MSE as the noise grows (`confirm` records the sweep)."""
from dataclasses import replace

from tunekae.spaces import Space

from ._arms import KAE, KAN, MLP

NOISE = {"noise": "gaussian", "noise_level": 0.6}

SPACE = Space(
    name="denoising",
    description="MLP, KAE and KAN denoising autoencoders (trained on N(0, 0.6^2) noise) at equal parameters",
    arms=[replace(arm, fixed={**arm.fixed, **NOISE}) for arm in (MLP, KAE, KAN)],
    budgets=["4x", "16x"],
)
