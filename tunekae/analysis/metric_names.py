"""The metrics `table`, `pareto` and `compare --metric NAME` can rank on: each known one's
direction of better and meaning, and where a bare name lives in each source.

A metric is named bare (`knn_acc`, `kl`, `loss`); the search's results.csv holds it as
`val_knn_acc` (`val_loss` for the loss), confirmed_runs.csv as `knn_acc` (`test_loss`), and
confirmed.csv as `knn_acc_mean` / `knn_acc_std`. A prefixed name (`val_knn_acc`) means the same
metric. Any other numeric column that a source records is accepted too (new loss terms and
scores need no entry here); one the registry does not know is taken as lower-is-better, and the
outputs say that this was assumed.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import UserError
from ..status import FINISHED

DEFAULT = "loss"


@dataclass(frozen=True)
class Metric:
    name: str                 # bare: 'loss', 'knn_acc'
    higher: bool              # True: higher is better
    meaning: str = ""
    known: bool = True        # False: a numeric column the registry does not know (lower assumed)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT

    @property
    def sign(self) -> float:
        """Multiply a value by this to get a quantity to MINIMISE (fronts, sorting)."""
        return -1.0 if self.higher else 1.0

    @property
    def tag(self) -> str:
        """'' for the loss, '_knn_acc' otherwise: output files of a non-default metric never
        overwrite the default ones."""
        return "" if self.is_default else f"_{self.name}"

    @property
    def direction(self) -> str:
        """'higher is better' / 'lower is better' (+ the registry's reason, or the assumption)."""
        if not self.known:
            return "lower is better (assumed: the registry does not know this metric)"
        if self.meaning.startswith(("lower:", "higher:")):     # a trade-off: the meaning says it all
            return self.meaning
        words = "higher is better" if self.higher else "lower is better"
        return f"{words} ({self.meaning})" if self.meaning else words

    def worse_word(self) -> str:
        """How a worse value differs: 'lower' for a higher-is-better metric, else 'higher'."""
        return "lower" if self.higher else "higher"


# Exact names first, then glob patterns in order (the first that matches wins).
KNOWN: dict[str, tuple[bool, str]] = {
    "loss": (False, "mean per-pixel reconstruction MSE: val_loss in a search, test_loss when confirmed"),
    "train_loss": (False, "reconstruction MSE on the training split"),
    "psnr": (True, "peak signal-to-noise ratio of the reconstruction, dB"),
    "knn_acc": (True, "5-NN classifier accuracy on the latent codes"),
    "linear_acc": (True, "logistic regression accuracy on the latent codes"),
    "recall_at_5": (True, "overlap of the 5 nearest neighbours in pixel and latent space"),
    "label_agreement": (True, "a fixed pixel classifier gives the reconstruction the original's label"),
    "class_sep": (True, "distance between class centroids over the spread around them, in latent space"),
    "silhouette": (True, "scikit-learn's silhouette score of the latent codes by class, in [-1, 1]"),
    "active_units": (True, "latent dimensions whose posterior mean varies over the data"),
    "kl": (False, "lower: closer to the prior (a trade-off with reconstruction, not better by itself)"),
    "ks_distance": (False, "Kolmogorov-Smirnov distance of the posterior means to N(0, 1)"),
    "mmd": (False, "maximum mean discrepancy"),
    "rmse": (False, "root mean squared error of the fitted function"),
    "mse": (False, "mean squared error"),
    "objective": (False, "the training objective the model minimises"),
    "recon": (False, "the reconstruction term of the training objective"),
    "ks": (False, "DERP-VAE's term: KS distance of random projections of the codes to N(0, 1)"),
    "kan_l1": (False, "KAN's L1 regulariser of its activations"),
    "kan_entropy": (False, "KAN's entropy regulariser of its activations"),
    "latent_l1": (False, "L1 penalty on the latent codes"),
    "mean_image_mse": (False, "MSE of predicting the training set's mean image (the baseline)"),
    "train_seconds": (False, "training time, seconds"),
    "seconds_per_epoch": (False, "training time per epoch, seconds"),
    "peak_mem_mb": (False, "peak memory while training, MB"),
    "pruned_params": (False, "parameters left after pruning"),
}
PATTERNS: list[tuple[str, bool, str]] = [
    ("gen_*_entropy", True, "entropy of a fixed classifier's labels over generated samples: more classes generated"),
    ("gen_*_confidence", True, "a fixed classifier's mean top-class confidence on generated samples"),
    ("gen_*_mmd", False, "MMD between generated and test images"),
    ("denoise_*", False, "MSE of reconstructing a corrupted input against the clean one"),
    ("*_acc", True, "accuracy"),
    ("*kl", False, "lower: closer to the prior (a trade-off with reconstruction, not better by itself)"),
    ("*mmd", False, "maximum mean discrepancy"),
    ("*ks*", False, "a Kolmogorov-Smirnov distance"),
    ("*mse", False, "mean squared error"),
    ("*loss*", False, "a loss"),
    ("*objective", False, "a training objective"),
    ("*recon*", False, "a reconstruction loss term"),
    ("*reg*", False, "a regularisation term"),
    ("*_l1", False, "an L1 penalty"),
]
# Columns that describe a trial or a configuration rather than score it.
NOT_METRICS = {"arm", "family", "layer", "variant", "budget", "budget_label", "trial_id", "rank", "seed", "status",
               "stopped_early", "epochs_completed", "epochs_budget", "full_budget", "depth", "hidden", "params",
               "flops", "latent_dim", "train_size", "config_json", "n", "n_collapsed", "n_failed", "space",
               "dataset", "input_dim", "epoch", "training_iteration", "study_trial", "pareto_optimal"}


def base_name(name: str) -> str:
    """'val_knn_acc' / 'test_loss' -> 'knn_acc' / 'loss': the name the registry knows."""
    for prefix in ("val_", "test_"):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return name


def lookup(name: str) -> Metric:
    """The registry's entry for a bare or prefixed name; unknown: lower-is-better, known=False."""
    base = base_name(name)
    # a training-split term (train_kl) goes the way its validation twin does, under its own name
    for key in (base, base[len("train_"):] if base.startswith("train_") else None):
        if key in KNOWN:
            higher, meaning = KNOWN[key]
            return Metric(base, higher, meaning)
    for pattern, higher, meaning in PATTERNS:
        if fnmatch.fnmatchcase(base, pattern):
            return Metric(base, higher, meaning)
    return Metric(base, False, "", known=False)


def candidates(metric: Metric, source: str) -> list[str]:
    """Columns that may hold `metric` in a source: 'search' (results.csv) or 'runs'
    (confirmed_runs.csv, one row per seed)."""
    if metric.is_default:
        return ["val_loss"] if source == "search" else ["test_loss"]
    if source == "search":
        return [f"val_{metric.name}", metric.name]
    return [metric.name, f"test_{metric.name}"]


def _finite(series: pd.Series) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce")
    return values.where(np.isfinite(values))


def column(metric: Metric, df: pd.DataFrame | None, source: str) -> str | None:
    """The column of `df` that holds `metric` with at least one finite value, or None."""
    if df is None:
        return None
    for c in candidates(metric, source):
        if c in df and c not in NOT_METRICS and _finite(df[c]).notna().any():
            return c
    return None


def recorded(df: pd.DataFrame | None, source: str) -> list[str]:
    """Bare names of the numeric metric columns of a source with some finite value."""
    if df is None:
        return []
    names = []
    for c in df.columns:
        if c in NOT_METRICS or c.startswith(("hp_", "pruned_", "config/")) or c.endswith("_std") or c == "full_budget":
            continue
        if not _finite(df[c]).notna().any():
            continue
        names.append(DEFAULT if c in ("val_loss", "test_loss") else base_name(c))
    return names


def recorded_by(res) -> list[str]:
    """Every metric the dir records, the loss first, for error messages and --help."""
    names = set(recorded(res.results, "search")) | set(recorded(getattr(res, "confirmed_runs", None), "runs"))
    names.discard(DEFAULT)
    return [DEFAULT] + sorted(names)


def resolve(res, name: str | None) -> Metric:
    """--metric NAME -> Metric, or UserError (exit 2) naming what the dir records."""
    if not name:
        return lookup(DEFAULT)
    metric = lookup(name.strip())
    if column(metric, res.results, "search") or column(metric, res.confirmed_runs, "runs") \
            or _confirmed_column(metric, res.confirmed):
        return metric
    raise UserError(f"--metric {name}: no trial or confirmed run in {res.path} recorded it; it records: "
                    f"{', '.join(recorded_by(res))}")


def _confirmed_column(metric: Metric, confirmed: pd.DataFrame | None) -> str | None:
    if confirmed is None:
        return None
    col = "test_loss_mean" if metric.is_default else f"{metric.name}_mean"
    return col if col in confirmed and _finite(confirmed[col]).notna().any() else None


def confirmed_values(res, metric: Metric) -> pd.DataFrame | None:
    """Per confirmed configuration (arm, trial_id): `mean`, `std` and `n` of the metric over its
    seeds that finished: from confirmed_runs.csv (every column it holds, including ones that
    confirm does not summarise), else confirmed.csv's _mean / _std. None when neither has it."""
    runs = res.confirmed_runs
    col = column(metric, runs, "runs")
    if col is not None:
        ok = runs[runs["status"].astype(str).isin(FINISHED)] if "status" in runs else runs
        ok = ok.assign(_v=_finite(ok[col]), arm=ok["arm"].astype(str), trial_id=ok["trial_id"].astype(str))
        g = ok.dropna(subset=["_v"]).groupby(["arm", "trial_id"])["_v"]
        out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.size()}).reset_index()
        out["column"] = col
        return out
    mean = _confirmed_column(metric, res.confirmed)
    if mean is None:
        return None
    c = res.confirmed
    std = mean[:-len("_mean")] + "_std"
    return pd.DataFrame({"arm": c["arm"].astype(str), "trial_id": c["trial_id"].astype(str),
                         "mean": _finite(c[mean]), "std": _finite(c[std]) if std in c else math.nan,
                         "n": c["n"] if "n" in c else math.nan, "column": mean}).dropna(subset=["mean"])


def not_in(metric: Metric, res, where: str) -> UserError:
    """The error for a metric that the source a command needs does not hold."""
    return UserError(f"--metric {metric.name}: {where} in {res.path} does not record it; it records: "
                     f"{', '.join(recorded_by(res))}")
