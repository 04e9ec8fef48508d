"""Robustness: a trained model's reconstructions of corrupted test inputs, scored against the
CLEAN inputs, at several levels of each corruption (`python -m tunekae evaluate`; `confirm`
records the default sweep).

    gaussian:0.1,0.3,0.6     x + N(0, s^2), clipped to [0, 1]      (tunekae.models.corrupt)
    salt_pepper:0.05,0.1     that fraction of pixels set to 0 or 1
    moons:0.2,0.3            (moons only) a new test set drawn with that noise instead of the
                             training noise, scaled as the training data was: the notebook's check
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .errors import UserError

DEFAULT_SWEEP = (("gaussian", (0.1, 0.3, 0.6)), ("salt_pepper", (0.05, 0.1)))
KINDS = ("gaussian", "salt_pepper", "moons")


def parse_noise(specs: list[str] | None) -> list[tuple[str, float]]:
    """['gaussian:0.1,0.3', 'salt_pepper:0.05'] -> [('gaussian', 0.1), ...]; the default sweep for None."""
    if not specs:
        return [(kind, level) for kind, levels in DEFAULT_SWEEP for level in levels]
    out = []
    for spec in specs:
        kind, _, levels = spec.partition(":")
        if kind not in KINDS or not levels:
            raise UserError(f"--noise {spec!r}: give KIND:LEVEL,LEVEL with KIND one of {', '.join(KINDS)} "
                            f"(e.g. gaussian:0.1,0.3,0.6)")
        for text in levels.split(","):
            try:
                level = float(text)
            except ValueError:
                raise UserError(f"--noise {spec!r}: {text!r} is not a number") from None
            if not 0 <= level <= (1 if kind == "salt_pepper" else 10):
                raise UserError(f"--noise {spec!r}: level {level:g} is out of range for {kind}")
            out.append((kind, level))
    return out


@torch.no_grad()
def sweep(model, splits, noises: list[tuple[str, float]], seed: int = 0, dataset: str = "") -> list[dict]:
    """One row per (kind, level): {kind, level, mse, psnr} of model.reconstruct(corrupted x) vs the
    clean x, on the test split (the clean test set is level 0, the first row)."""
    from .metrics import mse, psnr
    from .models import corrupt
    model.eval()
    device = next(model.parameters()).device
    x = splits.test_x.float().to(device)
    rows = [{"kind": "clean", "level": 0.0, **_score(model, x, x, mse, psnr)}]
    for i, (kind, level) in enumerate(noises):
        if kind == "moons":
            clean = moons_test(dataset, level, len(x)).to(device)
            noisy = clean
        else:
            g = torch.Generator(device=device).manual_seed(seed + i)
            clean, noisy = x, corrupt(x, kind, level, g)
        rows.append({"kind": kind, "level": level, **_score(model, noisy, clean, mse, psnr)})
    return rows


def _score(model, noisy, clean, mse, psnr) -> dict:
    recon = torch.cat([model.reconstruct(noisy[i:i + 4096]) for i in range(0, len(noisy), 4096)])
    err = mse(recon.cpu(), clean.cpu())
    return {"mse": err, "psnr": psnr(err) if math.isfinite(err) else math.nan}


def moons_test(dataset: str, noise: float, n: int) -> torch.Tensor:
    """A moons test set of n points drawn with `noise`, scaled with the training data's min and
    max (tunekae.data scales moons per coordinate to [0, 1] over the points it drew)."""
    from sklearn.datasets import make_moons

    from .data import parse_name
    name, opts = parse_name(dataset or "")
    if name != "moons":
        raise UserError(f"--noise moons:... draws a new moons test set; the model was trained on {dataset or 'another dataset'}")
    train_noise = float(opts.get("noise", 0.1))
    base, _ = make_moons(n_samples=int(opts.get("n_samples", 2000)), noise=train_noise, random_state=0)
    lo, hi = base.min(axis=0), base.max(axis=0)
    x, _ = make_moons(n_samples=n, noise=noise, random_state=1)
    return torch.from_numpy(((x - lo) / (hi - lo)).astype(np.float32))


def load_payload(path) -> tuple[object, dict]:
    """(model in eval mode, the file's payload) of a confirm model or a `train --save` file."""
    from .models import ModelConfig, build_model
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(ModelConfig.from_dict(payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
    except Exception as e:   # noqa: BLE001 - a truncated or foreign file is the user's to replace
        raise UserError(f"{path} is not a tunekae model ({type(e).__name__}: {str(e).splitlines()[0][:200]}); give "
                        f"a file `train --save` wrote or a confirm's models/*.pt") from None
    return model.eval(), payload


def sweep_dir(output, noises, data_dir=None):
    """The sweep of every model a confirm saved in DIR/models, as a table (arm, family, budget,
    trial_id, kind, level, mse, psnr)."""
    from pathlib import Path

    import pandas as pd

    from .data import load_dataset
    from .results import read_run_json
    output = Path(output)
    run = read_run_json(output)
    models = sorted((output / "models").glob("*.pt"))
    if not models:
        raise UserError(f"no models/*.pt in {output}; run `python -m tunekae confirm {output}` first (it saves one "
                        f"model per confirmed configuration)")
    splits = load_dataset(run["dataset"], data_dir=data_dir or (run.get("options") or {}).get("data_dir"),
                          seed=int(run.get("seed", 0)))
    arms = {a["name"]: a for a in run.get("arms", []) if isinstance(a, dict)}
    rows = []
    for path in models:
        arm, _, trial = path.stem.rpartition("__")
        model, _ = load_payload(path)
        info = arms.get(arm, {})
        for r in sweep(model, splits, noises, dataset=run["dataset"]):
            rows.append({"arm": arm, "family": info.get("family", arm), "budget": info.get("budget"),
                         "trial_id": trial, **r})
    return pd.DataFrame(rows)
