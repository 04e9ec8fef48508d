"""Input corruption: used in training (denoising AEs) and by the denoising metrics, so both
corrupt the same way. The target is always the CLEAN input."""
import torch


def corrupt(x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """gaussian: x + N(0, level^2), clipped to [0, 1].
    salt_pepper: with u ~ U(0,1) per pixel, pixel -> 0 where u < level/2 and -> 1 where
    u > 1 - level/2 (level 0.1 is the metric's 'below 0.05 / above 0.95')."""
    if kind == "none" or level <= 0:
        return x
    if kind == "gaussian":
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + level * noise).clamp(0.0, 1.0)
    if kind == "salt_pepper":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return torch.where(u < level / 2, torch.zeros_like(x), torch.where(u > 1 - level / 2, torch.ones_like(x), x))
    raise ValueError(f"unknown corruption {kind!r}")
