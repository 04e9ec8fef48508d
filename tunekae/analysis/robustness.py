"""`robustness`: reconstruction MSE against the clean test images as corruption grows, per
family (from DIR/robustness.csv, which `confirm` writes and `python -m tunekae evaluate DIR`
rewrites), and a grid of noisy test images beside each family's reconstruction of them."""
from __future__ import annotations

import pandas as pd

from ..errors import UserError
from .load import Results, confirm_hint
from .recon import _image, _safe, load_model, load_splits, pick_examples, saved_models
from .style import family_color, fmt_params, plt, save, sort_families

GRID_NOISE = ("gaussian", 0.3)     # the corruption the image grid shows


def read(res: Results) -> pd.DataFrame:
    path = res.path / "robustness.csv"
    if not path.is_file():
        raise UserError(f"no robustness.csv in {res.path}; {confirm_hint(res.path)} (it records the default sweep), or "
                        f"run `python -m tunekae evaluate {res.path}`")
    return pd.read_csv(path)


def run(res: Results, out, data_dir=None, loader=None) -> dict:
    table = read(res)
    files = [_curves(res, table, out)]
    if res.run.get("dataset") and not res.regression:
        grid = _grid(res, out, data_dir, loader)
        if grid:
            files.append(grid)
    return {"files": files, "table": table}


def best_configurations(table: pd.DataFrame) -> pd.DataFrame:
    """Each arm's configuration with the lowest clean test MSE (a confirm saves one model for each
    of an arm's top configurations)."""
    clean = table[table["kind"] == "clean"].sort_values("mse").drop_duplicates("arm")
    keep = set(zip(clean["arm"], clean["trial_id"].astype(str)))
    return table[[(a, str(t)) in keep for a, t in zip(table["arm"], table["trial_id"])]]


def _curves(res: Results, table: pd.DataFrame, out) -> str:
    table = best_configurations(table)
    kinds = [k for k in dict.fromkeys(table["kind"]) if k != "clean"]
    clean = table[table["kind"] == "clean"].set_index("arm")["mse"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
    families = sort_families(table["family"])
    budgets = sorted(table["budget"].dropna().unique())
    for ax, kind in zip(axes[0], kinds):
        for arm, g in table[table["kind"] == kind].groupby("arm", sort=False):
            g = g.sort_values("level")
            family, budget = g["family"].iloc[0], g["budget"].iloc[0]
            levels, mse = [0.0, *g["level"]], [clean.get(arm), *g["mse"]]
            style = ["-", "--", ":", "-."][budgets.index(budget) % 4] if budget in budgets else "-"
            ax.plot(levels, mse, marker="o", linestyle=style, color=family_color(family, families),
                    label=f"{family} at {fmt_params(budget)}")
        ax.set_xlabel(f"{kind} level")
        ax.set_yscale("log")        # a family that falls apart under noise is orders of magnitude off
        ax.set_ylabel("MSE against the clean test input")
        ax.set_title(kind)
        ax.legend(fontsize=7)
    fig.suptitle(f"{res.run.get('dataset', '?')}: reconstruction of corrupted inputs (each arm's best confirmed "
                 f"configuration, one seed)")
    fig.tight_layout()
    save(fig, out / "robustness.png")
    return "robustness.png"


def _grid(res: Results, out, data_dir, loader, n: int = 6) -> str | None:
    import torch

    from ..models import corrupt
    splits = (loader or load_splits)(res.run, data_dir)
    if splits.image_shape is None:
        return None
    entries = saved_models(res)
    order = sort_families(e["family"] for e in entries)
    entries.sort(key=lambda e: (e["budget"], order.index(e["family"])))
    x = splits.test_x.float().cpu()
    idx = pick_examples(splits.test_y.cpu().numpy(), n)
    noisy = corrupt(x[idx], *GRID_NOISE, torch.Generator().manual_seed(0))
    rows = [("clean", x[idx].numpy()), (f"{GRID_NOISE[0]} {GRID_NOISE[1]:g}", noisy.numpy())]
    for e in entries:
        model, _ = load_model(e["path"])
        with torch.no_grad():
            rows.append((f"{e['family']} {fmt_params(e['budget'])}", model.reconstruct(noisy).numpy()))
    fig, axes = plt.subplots(len(rows), n, figsize=(0.9 * n + 1.6, 0.95 * len(rows) + 0.8), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for j in range(n):
            img, cmap = _image(images[j], splits.image_shape)
            axes[r][j].imshow(img, cmap=cmap, vmin=0, vmax=1)
            axes[r][j].set_xticks([]), axes[r][j].set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(f"{res.run.get('dataset', '?')}: noisy test images ({GRID_NOISE[0]} {GRID_NOISE[1]:g}) and each "
                 f"family's reconstruction of them", fontsize=9)
    fig.tight_layout()
    name = f"denoised_{_safe(GRID_NOISE[0])}.png"
    save(fig, out / name)
    return name
