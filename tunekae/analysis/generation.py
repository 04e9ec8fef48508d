"""`report`'s generation section: each arm's best confirmed configuration's generation scores
(tunekae/generation.py: mean ± std over the confirmation seeds of confirmed_runs.csv) and, for
image data, a grid of decoded samples per budget (samples_<budget>.png): codes drawn from a
Gaussian mixture of each family's training codes, and for the VAE family also from the prior
N(0, I), decoded by the model confirm saved. Studies confirmed before these scores existed have
no gen_* columns: the report leaves the section out. torch is imported lazily."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError
from ..status import FINISHED
from . import recon
from .load import Results
from .style import fmt_pm, markdown_table, plt, save, sort_families

# column -> (heading, direction of better)
SCORES = {
    "gen_gmm_entropy": ("GMM label entropy (nats)", "higher"),
    "gen_gmm_confidence": ("GMM confidence", "higher"),
    "gen_gmm_mmd": ("GMM MMD²", "lower"),
    "gen_prior_entropy": ("prior label entropy (nats)", "higher"),
    "gen_prior_confidence": ("prior confidence", "higher"),
    "gen_prior_mmd": ("prior MMD²", "lower"),
}
GRID_SAMPLES = 12


def has_scores(res: Results) -> bool:
    runs = res.confirmed_runs
    return runs is not None and any(c in runs and pd.to_numeric(runs[c], errors="coerce").notna().any()
                                    for c in SCORES)


def score_table(res: Results, select: str = "val") -> pd.DataFrame:
    """One row per arm: its best configuration (val: the search's best rank; test: the lowest
    mean test loss), the number of finished seeds and each gen_* score's mean and std."""
    runs = res.require_confirmed_runs().copy()
    runs = runs[runs["status"].astype(str).isin(FINISHED)] if "status" in runs else runs
    cols = [c for c in SCORES if c in runs]
    for c in cols:
        runs[c] = pd.to_numeric(runs[c], errors="coerce")
    if "rank" not in runs:
        runs["rank"] = 1
    if "budget_label" not in runs:
        runs["budget_label"] = runs["budget"].map(res.budget_label)
    runs["test_loss"] = pd.to_numeric(runs["test_loss"], errors="coerce") if "test_loss" in runs else np.nan
    configs = runs.groupby(["arm", "trial_id"], sort=False).agg(
        family=("family", "first"), budget=("budget", "first"), budget_label=("budget_label", "first"),
        rank=("rank", "first"), test_loss=("test_loss", "mean"), n=("trial_id", "size")).reset_index()
    order = ["rank", "test_loss"] if select == "val" else ["test_loss"]
    best = configs.sort_values(order).groupby("arm", sort=False).head(1)
    rows = []
    for b in best.itertuples():
        g = runs[(runs["arm"] == b.arm) & (runs["trial_id"] == b.trial_id)]
        row = {"budget": b.budget, "budget_label": b.budget_label, "family": b.family, "arm": b.arm,
               "trial_id": b.trial_id, "n": int(b.n)}
        for c in cols:
            v = g[c].dropna()
            row[f"{c}_mean"] = v.mean() if len(v) else np.nan
            row[f"{c}_std"] = v.std(ddof=1) if len(v) > 1 else np.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    fams = sort_families(table["family"])
    return table.assign(_f=table["family"].map(fams.index)).sort_values(["budget", "_f"]).drop(columns="_f")


def to_markdown(table: pd.DataFrame) -> str:
    present = [c for c in SCORES if f"{c}_mean" in table and table[f"{c}_mean"].notna().any()]
    cols = {"budget_label": "budget", "family": "family", "trial_id": "configuration", "n": "seeds"}
    cols.update({c: f"{SCORES[c][0]} ({SCORES[c][1]} is better)" for c in present})
    shown = table.assign(**{c: [fmt_pm(m, s) for m, s in zip(table[f"{c}_mean"], table[f"{c}_std"])]
                            for c in present})
    return markdown_table(shown[list(cols)].astype(str), cols)


def _model_file(res: Results, arm: str, trial_id: str):
    exact = res.path / "models" / f"{arm}__{trial_id}.pt"
    if exact.is_file():
        return exact
    others = sorted((res.path / "models").glob(f"{arm}__*.pt"))
    return others[0] if others else None


def sample_grids(res: Results, out, table: pd.DataFrame, data_dir=None, loader=None,
                 n: int = GRID_SAMPLES) -> tuple[list[str], list[str]]:
    """(files, notes): samples_<budget>.png per budget, one row per family and code source."""
    import torch

    from ..confirm import CONFIRM_SEED_BASE
    from ..generation import model_samples
    from ..metrics import has_posterior
    splits = (loader or recon.load_splits)(res.run, data_dir)
    if splits.image_shape is None:
        return [], [f"no generated-sample figure: {res.run.get('dataset')} is point data, not images"]
    files, notes = [], []
    for budget, at in table.groupby("budget", sort=True):
        rows = []
        for r in at.itertuples():
            path = _model_file(res, r.arm, r.trial_id)
            if path is None:
                notes.append(f"no saved model of {r.arm} (models/{r.arm}__*.pt): no samples drawn")
                continue
            model, _ = recon.load_model(path)
            # the saved model is the run of the first confirmation seed: draw as that run was scored
            for source in ("gmm", "prior") if has_posterior(model) else ("gmm",):
                with torch.no_grad():
                    x = model_samples(model, splits, source, n, seed=CONFIRM_SEED_BASE)
                if x is None or not bool(torch.isfinite(x).all()):
                    notes.append(f"{r.family} at {r.budget_label}: its {source} samples are not finite")
                    continue
                rows.append((r.family, source, x.numpy()))
        if rows:
            files.append(_grid(rows, splits.image_shape, res, str(at["budget_label"].iloc[0]), out))
    return files, notes


def _grid(rows, shape, res, label, out) -> str:
    cols = len(rows[0][2])
    fig, axes = plt.subplots(len(rows), cols, figsize=(0.8 * cols + 1.6, 0.9 * len(rows) + 0.9), squeeze=False)
    for i, (family, source, x) in enumerate(rows):
        for j in range(cols):
            img, cmap = recon._image(x[j], shape)
            axes[i][j].imshow(img, cmap=cmap, vmin=0, vmax=1)
            axes[i][j].set_xticks([]), axes[i][j].set_yticks([])
        axes[i][0].set_ylabel(f"{family}\n{'GMM codes' if source == 'gmm' else 'prior N(0, I)'}", fontsize=7,
                              rotation=0, ha="right", va="center")
    fig.suptitle(f"{res.run.get('dataset', '?')} at budget {label}: decoded samples of each family's best saved "
                 f"model\ncodes from a Gaussian mixture of its training codes (VAE family also from the prior)",
                 fontsize=9)
    fig.tight_layout()
    name = f"samples_{recon._safe(label)}.png"
    save(fig, out / name)
    return name


def run(res: Results, out, select: str = "val", data_dir=None, loader=None) -> dict:
    """generation.csv, samples_<budget>.png (image data) and the report's markdown."""
    if not has_scores(res):
        raise UserError("the confirmed runs have no generation scores (gen_* columns); rerun `python -m tunekae "
                        "confirm` to record them")
    table = score_table(res, select)
    table.to_csv(out / "generation.csv", index=False)
    files, notes = ["generation.csv"], []
    if res.regression:
        notes.append("no generated-sample figure: function fitting has no images")
    elif (res.path / "models").is_dir():
        grids, notes = sample_grids(res, out, table, data_dir, loader)
        files += grids
    else:
        notes.append("no generated-sample figure: no models/ saved by confirm")
    rule = "the best validation rank" if select == "val" else "the lowest mean test loss"
    md = ["### Generation\n",
          f"Each arm's best confirmed configuration ({rule}), mean ± std over the confirmation seeds. Codes are "
          "sampled from a 10-component Gaussian mixture fitted to the model's training codes (GMM) and, for the "
          "VAE family, from the prior N(0, I), then decoded. Entropy: of the labels a fixed pixel classifier "
          "gives the samples (ln 10 = 2.303 when ten classes are generated equally; higher is better). "
          "Confidence: that classifier's mean top-class probability (higher is better). MMD²: unbiased RBF "
          "kernel MMD² to the test images, averaged over 4 bandwidths (lower is better).\n",
          to_markdown(table), "Numbers: [generation.csv](generation.csv).\n"]
    md += [f"![{f}]({f})\n" for f in files if f.endswith(".png")]
    md += [f"- {n}\n" for n in notes]
    return {"markdown": md, "files": files, "notes": notes}
