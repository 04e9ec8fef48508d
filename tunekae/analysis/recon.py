"""`recon`: originals next to reconstructions for the best saved model of each family (one grid
per budget; odd columns originals, even columns reconstructions), and for point data or 2-D
latents a scatter of the latent codes coloured by label. Models come from models/*.pt (written by
`confirm`); the test images from the dataset named in run.json. torch is imported lazily."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import UserError
from .load import Results, confirm_hint
from .style import fmt_loss, fmt_params, plt, save, sort_families


def load_splits(run: dict, data_dir=None):
    """The dataset of run.json, split as in the search (same seed). Tests replace this function."""
    from ..data import load_dataset
    data_dir = data_dir or (run.get("options") or {}).get("data_dir")
    return load_dataset(run["dataset"], data_dir=data_dir, seed=int(run.get("seed", 0)))


def load_model(path: Path):
    """(model in eval mode, its ModelConfig) of a confirm's models/*.pt."""
    from ..models import ModelConfig
    from ..robustness import load_payload
    model, payload = load_payload(path)
    return model, ModelConfig.from_dict(payload["model_config"])


def saved_models(res: Results) -> list[dict]:
    """One entry per arm: {arm, family, budget, budget_label, trial_id, path}; when an arm has
    several files, the one of its best confirmed configuration (lowest test loss) wins."""
    files = sorted((res.path / "models").glob("*.pt"))
    if not files:
        raise UserError(f"no models/*.pt in {res.path}; " + confirm_hint(res.path)
                        + " (it saves each arm's best model)")
    arms = {a.get("name"): a for a in res.run.get("arms") or [] if isinstance(a, dict)}
    rows = res.results.drop_duplicates("arm").set_index("arm")
    best_trial = {}
    if res.confirmed is not None and "test_loss_mean" in res.confirmed:
        c = res.confirmed.sort_values("test_loss_mean")
        best_trial = {str(a): str(t) for a, t in zip(c["arm"][::-1], c["trial_id"][::-1])}
    chosen: dict[str, dict] = {}
    for f in files:
        arm, _, trial = f.stem.rpartition("__")
        arm = arm or f.stem
        info = arms.get(arm) or (rows.loc[arm].to_dict() if arm in rows.index else {})
        budget = info.get("budget")
        entry = {"arm": arm, "trial_id": trial, "path": f, "family": str(info.get("family", arm)),
                 "budget": int(budget) if budget is not None and budget == budget else 0}
        entry["budget_label"] = str(info.get("budget_label") or res.budget_label(entry["budget"]))
        if arm not in chosen or best_trial.get(arm) == trial:
            chosen[arm] = entry
    return list(chosen.values())


def pick_examples(y: np.ndarray, n: int) -> np.ndarray:
    """The first test sample of each class (in class order), then the next ones, n in all."""
    firsts = [int(np.flatnonzero(y == c)[0]) for c in np.unique(y)][:n]
    rest = [i for i in range(len(y)) if i not in set(firsts)][: max(0, n - len(firsts))]
    return np.array(firsts + rest)


def _image(v: np.ndarray, shape) -> tuple[np.ndarray, str | None]:
    img = np.clip(v, 0, 1).reshape(shape)
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
    return img, ("gray" if img.ndim == 2 else None)


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(label))


def _encode_2d(model, x) -> tuple[np.ndarray, str]:
    import torch
    with torch.no_grad():
        z = model.encode(x)
    z = (z[0] if isinstance(z, (tuple, list)) else z).detach().cpu().numpy().reshape(len(x), -1)
    if z.shape[1] == 1:
        return np.column_stack([z[:, 0], np.random.default_rng(0).uniform(-1, 1, len(z))]), "latent z (1-D; y = jitter)"
    if z.shape[1] > 2:
        zc = z - z.mean(axis=0)
        _, _, vt = np.linalg.svd(zc, full_matrices=False)
        return zc @ vt[:2].T, f"latent code ({z.shape[1]}-D), first 2 principal components"
    return z, "latent code (2-D)"


def run(res: Results, out, n: int = 8, data_dir=None, loader=None) -> dict:
    import torch
    if res.regression:
        raise UserError(f"{res.run.get('dataset')} is function fitting: there are no images to reconstruct")
    entries = saved_models(res)
    splits = (loader or load_splits)(res.run, data_dir)
    x_test, y_test = splits.test_x.float().cpu(), splits.test_y.cpu().numpy()
    shape = splits.image_shape
    files, notes = [], []
    models = []
    for e in entries:
        model, cfg = load_model(e["path"])
        if cfg.input_dim != x_test.shape[1]:
            raise UserError(f"{e['path'].name} expects {cfg.input_dim} inputs but {res.run.get('dataset')} has "
                            f"{x_test.shape[1]}; was run.json's dataset changed?")
        with torch.no_grad():
            rec = model.reconstruct(x_test).detach().cpu()
        mse = float(((rec - x_test) ** 2).mean())
        models.append({**e, "model": model, "cfg": cfg, "recon": rec.numpy(), "mse": mse,
                       "params": sum(p.numel() for p in model.parameters() if p.requires_grad)})
    idx = pick_examples(y_test, n)
    order = sort_families(m["family"] for m in models)
    for budget in sorted({m["budget"] for m in models}):
        at = sorted([m for m in models if m["budget"] == budget], key=lambda m: order.index(m["family"]))
        label = at[0]["budget_label"]
        if shape is not None:
            files.append(_grid(at, x_test.numpy(), idx, shape, res, label, out))
        elif x_test.shape[1] == 2:
            files.append(_points(at, x_test.numpy(), y_test, res, label, out))
        else:
            notes.append(f"no reconstruction figure at {label}: point data with {x_test.shape[1]} dimensions")
        if shape is None or any(m["cfg"].latent_dim == 2 for m in at):
            files.append(_latents(at, x_test[:2000], y_test[:2000], res, label, out))
    return {"files": files, "notes": notes}


def _grid(at, x, idx, shape, res, label, out) -> str:
    rows, cols = len(at), 2 * len(idx)
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols + 1.6, 1.0 * rows + 0.9), squeeze=False)
    for r, m in enumerate(at):
        for j, i in enumerate(idx):
            for k, (v, what) in enumerate(((x[i], "original"), (m["recon"][i], "recon"))):
                ax = axes[r][2 * j + k]
                img, cmap = _image(v, shape)
                ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
                ax.set_xticks([]), ax.set_yticks([])
                if r == 0:
                    ax.set_title(what, fontsize=7)
        axes[r][0].set_ylabel(f"{m['family']}\n{fmt_params(m['params'])} params\nMSE {fmt_loss(m['mse'])}",
                              fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(f"{res.run.get('dataset', '?')} test images at budget {label}: originals (odd columns) and "
                 f"reconstructions (even columns)\nbest saved model per family; MSE = test MSE per pixel of "
                 f"this model (one seed)", fontsize=9)
    fig.tight_layout()
    name = f"recon_{_safe(label)}.png"
    save(fig, out / name)
    return name


def _points(at, x, y, res, label, out) -> str:
    fig, axes = plt.subplots(1, len(at), figsize=(4 * len(at), 4), squeeze=False)
    for ax, m in zip(axes[0], at):
        ax.scatter(x[:, 0], x[:, 1], s=6, color="lightgrey", label="test points")
        ax.scatter(m["recon"][:, 0], m["recon"][:, 1], s=6, c=y, cmap="coolwarm", label="reconstructions")
        ax.set_title(f"{m['family']} ({fmt_params(m['params'])} params, MSE {fmt_loss(m['mse'])})", fontsize=9)
        ax.set_xlabel("x1 (input units)")
        ax.set_ylabel("x2 (input units)")
        ax.legend(fontsize=7)
    fig.suptitle(f"{res.run.get('dataset', '?')} at budget {label}: test points and their reconstructions")
    fig.tight_layout()
    name = f"recon_{_safe(label)}.png"
    save(fig, out / name)
    return name


def _latents(at, x, y, res, label, out) -> str:
    fig, axes = plt.subplots(1, len(at), figsize=(4 * len(at) + 1, 4), squeeze=False)
    for ax, m in zip(axes[0], at):
        z, what = _encode_2d(m["model"], x)
        classes = np.unique(y)
        if len(classes) <= 10:               # discrete labels: one colour and legend entry each
            for i, c in enumerate(classes):
                ax.scatter(z[y == c, 0], z[y == c, 1], s=5, color=plt.get_cmap("tab10")(i), label=str(c))
            ax.legend(title="label", fontsize=6, title_fontsize=7, markerscale=2)
        else:
            fig.colorbar(ax.scatter(z[:, 0], z[:, 1], s=5, c=y, cmap="viridis"), ax=ax, label="label")
        ax.set_title(f"{m['family']} ({fmt_params(m['params'])} params)", fontsize=9)
        ax.set_xlabel(f"{what}: dim 1")
        ax.set_ylabel(f"{what}: dim 2")
    fig.suptitle(f"{res.run.get('dataset', '?')} test latent codes at budget {label}, coloured by label")
    fig.tight_layout()
    name = f"latent_{_safe(label)}.png"
    save(fig, out / name)
    return name
