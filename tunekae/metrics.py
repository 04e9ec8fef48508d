"""Reconstruction, latent and downstream metrics of a trained autoencoder.

`evaluate(model, splits, split)` composes the small functions below; each takes plain arrays
(numpy or torch) and can be tested alone. Names are the columns of the result tables:

    {split}_loss      mean per-pixel MSE of model.reconstruct(x) vs x (pixels in [0, 1])
    psnr              10 log10(1 / {split}_loss)
    knn_acc           5-NN classifier on latent codes, fit on train codes, scored on the split
    linear_acc        logistic regression on standardized latent codes, same protocol
    recall_at_5       overlap of the 5 nearest neighbours in pixel space and in latent space
    denoise_sp_mse    reconstruct a salt-and-pepper corrupted input (rate 0.1), MSE vs the CLEAN x
    denoise_gauss_mse reconstruct x + N(0, 0.1^2) clipped to [0, 1], MSE vs the CLEAN x
    denoise_own_mse   a denoising AE only: the same at the corruption it was trained with
    label_agreement   a fixed pixel classifier gives the reconstruction the original's label
    class_sep         mean distance between class centroids / mean distance to own centroid
    silhouette        scikit-learn's silhouette score of the codes by class, on SILHOUETTE_SAMPLE
                      seeded codes (10,000 x 16 codes: about 0.1 s on 2 CPU cores; all 10,000, 3 s)
    kl, active_units, ks_distance   VAE family only (models with a posterior)
    rmse              regression (function:NAME) only, with {split}_loss: sqrt of the MSE, as pykan reports
    mean_image_mse    the baseline: MSE of predicting the training set's mean image for every x
    gen_gmm_*, gen_prior_*   generation (entropy, confidence, mmd of decoded samples): not here but
                      in generation.py, which confirm calls beside evaluate

A run whose loss stays within COLLAPSE_MARGIN of the mean-image baseline (or above it) learned
nothing an average image does not give: its status is `collapsed`, not `ok` (run_status).
"""
from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
import torch

from .status import COLLAPSE_MARGIN

BATCH = 4096
NOISE_LEVEL = 0.1        # salt-and-pepper rate (u < 0.05 -> 0, u > 0.95 -> 1) and gaussian sigma
RECALL_PER_CLASS = 200
SILHOUETTE_SAMPLE = 2000  # its pairwise distances are O(n^2): a seeded sample bounds the cost
REFERENCE_SEED = 0       # the pixel classifier is the same for every model, trial and seed
_REFERENCE_CACHE: dict[tuple, object] = {}


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def batched(fn, x: torch.Tensor, device, batch_size: int = BATCH):
    """fn over x in chunks on `device`; results concatenated on the CPU (tuples element-wise)."""
    outs = [fn(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    if isinstance(outs[0], tuple):
        return tuple(torch.cat([o[j].float().cpu() for o in outs]) for j in range(len(outs[0])))
    return torch.cat([o.float().cpu() for o in outs])


def mse(a, b) -> float:
    """Mean per-pixel squared error over every sample and pixel (dataset mean)."""
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float(((a - b) ** 2).mean())


def psnr(mse_value: float) -> float:
    """Peak signal-to-noise ratio in dB for pixels in [0, 1]: 10 log10(1 / mse); inf at mse 0."""
    if mse_value <= 0:
        return math.inf
    return 10.0 * math.log10(1.0 / mse_value)


def mean_image_mse(train_x, x) -> float:
    """MSE of predicting the training split's mean image for every row of x: what a model that
    ignores its input scores at best."""
    train_x, x = torch.as_tensor(train_x), torch.as_tensor(x)
    mean = train_x.double().mean(dim=0).to(x.device)
    return float((x.double() - mean).pow(2).mean())


def run_status(status: str, loss: float, splits, split: str) -> tuple[str, float]:
    """(status, the mean-image baseline on `split`): `collapsed` for an ok run whose loss on
    `split` is within COLLAPSE_MARGIN of the baseline or above it; any other status as it is."""
    baseline = mean_image_mse(splits.target("train"), splits.target(split))
    if status == "ok" and loss >= (1 - COLLAPSE_MARGIN) * baseline:
        return "collapsed", baseline
    return status, baseline


def subsample(n: int, max_n: int, seed: int) -> np.ndarray:
    """Sorted indices of at most max_n of range(n), drawn with `seed`."""
    if n <= max_n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_n, replace=False))


def knn_accuracy(train_codes, train_y, codes, y, k: int = 5) -> float:
    """Accuracy of a k-NN classifier (Euclidean) fit on train codes, scored on (codes, y)."""
    from sklearn.neighbors import KNeighborsClassifier
    train_codes = _np(train_codes)
    clf = KNeighborsClassifier(n_neighbors=min(k, len(train_codes))).fit(train_codes, _np(train_y))
    return float(clf.score(_np(codes), _np(y)))


def linear_accuracy(train_codes, train_y, codes, y) -> float:
    """Accuracy of logistic regression on standardized codes, fit on train, scored on (codes, y)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    if len(np.unique(_np(train_y))) < 2:
        return math.nan
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(_np(train_codes), _np(train_y))
    return float(clf.score(_np(codes), _np(y)))


def sample_per_class(labels, per_class: int = RECALL_PER_CLASS, seed: int = 0) -> np.ndarray:
    """Sorted indices of up to `per_class` samples of each class, drawn with `seed`."""
    labels = _np(labels)
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picks)) if picks else np.arange(0)


def _neighbours(points: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each point's k nearest neighbours, the point itself excluded."""
    from sklearn.neighbors import NearestNeighbors
    _, ind = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    # Drop the point itself wherever it appears (ties with duplicates can put it second).
    return np.stack([row[row != i][:k] for i, row in enumerate(ind)])


def recall_at_k(pixels, codes, labels=None, k: int = 5, per_class: int | None = RECALL_PER_CLASS,
                seed: int = 0) -> float:
    """Mean over points of |kNN in pixel space & kNN in latent space| / k, on up to `per_class`
    seeded samples per class (all points when labels is None), neighbours taken among them."""
    pixels, codes = _np(pixels).astype(np.float32), _np(codes).astype(np.float32)
    idx = sample_per_class(labels, per_class, seed) if labels is not None and per_class else np.arange(len(pixels))
    k = min(k, len(idx) - 1)
    if k < 1:
        return math.nan
    near_x, near_z = _neighbours(pixels[idx], k), _neighbours(codes[idx], k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(near_x, near_z)]))


@torch.no_grad()
def denoise_mse(model, x: torch.Tensor, kind: str, level: float = NOISE_LEVEL, seed: int = 0,
                batch_size: int = BATCH) -> float:
    """MSE between model.reconstruct(corrupt(x)) and the CLEAN x; the noise is seeded."""
    from .models import corrupt
    device, g = _device(model), torch.Generator().manual_seed(seed)
    total = 0.0
    for i in range(0, len(x), batch_size):
        clean = x[i:i + batch_size].cpu()
        recon = model.reconstruct(corrupt(clean, kind, level, g).to(device)).cpu()
        total += float(((recon.double() - clean.double()) ** 2).sum())
    return total / x.numel()


def pixel_classifier(train_x, train_y, max_train: int = 20000, seed: int = REFERENCE_SEED):
    """Logistic regression on raw training pixels (at most max_train seeded samples): the fixed
    reference that label_agreement asks. Cached per process, as every trial asks the same one."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    idx = subsample(len(train_x), max_train, seed)
    x, y = _np(train_x)[idx].astype(np.float32), _np(train_y)[idx]
    key = (x.shape, max_train, seed, hashlib.blake2b(x.tobytes() + y.tobytes(), digest_size=16).hexdigest())
    if key not in _REFERENCE_CACHE:
        with warnings.catch_warnings():   # 100 lbfgs steps: a good enough, bounded-cost reference
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(max_iter=100).fit(x, y)
        if len(_REFERENCE_CACHE) >= 4:
            _REFERENCE_CACHE.pop(next(iter(_REFERENCE_CACHE)))
        _REFERENCE_CACHE[key] = clf
    return _REFERENCE_CACHE[key]


def label_agreement(classifier, originals, reconstructions) -> float:
    """Fraction of samples whose reconstruction gets the same predicted label as the original."""
    a = classifier.predict(_np(originals).astype(np.float32))
    b = classifier.predict(_np(reconstructions).astype(np.float32))
    return float(np.mean(a == b))


def class_separation(codes, labels) -> float:
    """Mean pairwise distance between class centroids / mean distance of codes to their own
    class centroid (higher: classes further apart relative to their spread)."""
    from scipy.spatial.distance import pdist
    codes, labels = _np(codes).astype(np.float64), _np(labels)
    classes = np.unique(labels)
    if len(classes) < 2:
        return math.nan
    centroids = np.stack([codes[labels == c].mean(axis=0) for c in classes])
    within = np.linalg.norm(codes - centroids[np.searchsorted(classes, labels)], axis=1).mean()
    between = pdist(centroids).mean()
    if within == 0:   # every code on its centroid: separated if the centroids differ, else not at all
        return math.inf if between > 0 else 0.0
    return float(between / within)


def silhouette(codes, labels, sample_size: int | None = SILHOUETTE_SAMPLE, seed: int = 0) -> float:
    """scikit-learn's silhouette score (Euclidean) of the codes grouped by label, the mean over
    points of (b - a) / max(a, b) with a the mean distance to the own class and b to the nearest
    other class, on at most `sample_size` codes drawn with `seed` (None: all). In [-1, 1], higher
    is better; NaN with fewer than 2 classes in the sample, one class per point, or non-finite codes."""
    from sklearn.metrics import silhouette_score
    codes, labels = _np(codes).astype(np.float64), _np(labels)
    # the sample is drawn here rather than by silhouette_score(sample_size=...), so that its
    # class count can be checked before scikit-learn raises on it
    idx = subsample(len(codes), sample_size, seed) if sample_size else np.arange(len(codes))
    codes, labels = codes[idx], labels[idx]
    n_classes = len(np.unique(labels))
    if not 2 <= n_classes < len(codes) or not np.isfinite(codes).all():
        return math.nan
    return float(silhouette_score(codes, labels, metric="euclidean"))


def kl_per_sample(mu, logvar) -> float:
    """KL(q(z|x) || N(0, I)) in nats per sample, averaged over samples."""
    mu, logvar = torch.as_tensor(mu).double(), torch.as_tensor(logvar).double()
    return float((-0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(dim=1)).mean())


def active_units(mu, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies over the data: Var_x[mu_j(x)] > threshold."""
    return int((_np(mu).astype(np.float64).var(axis=0) > threshold).sum())


def ks_distance(mu) -> float:
    """Mean over latent dimensions of the Kolmogorov-Smirnov statistic against N(0, 1)."""
    from scipy.stats import kstest
    mu = _np(mu).astype(np.float64)
    return float(np.mean([kstest(mu[:, j], "norm").statistic for j in range(mu.shape[1])]))


def has_posterior(model) -> bool:
    """VAE family (vae, beta_vae, derp_vae): an encoder that outputs (mu, logvar)."""
    variant = getattr(getattr(model, "cfg", None), "variant", "ae")
    return variant not in ("ae", "wae_mmd") and hasattr(model, "posterior")


def _finite(*arrays) -> bool:
    return all(bool(torch.isfinite(torch.as_tensor(a)).all()) for a in arrays)


def evaluate(model, splits, split: str = "test", seed: int = 0, max_train: int = 20000) -> dict[str, float]:
    """Every metric of `model` on `split` ('val' in a search, 'test' in confirmation), in eval
    mode on the model's device. Metrics that a diverged model makes undefined come back NaN."""
    from threadpoolctl import threadpool_limits
    x, y = getattr(splits, f"{split}_x").cpu(), _np(getattr(splits, f"{split}_y"))
    device, was_training = _device(model), model.training
    model.eval()
    try:
        # BLAS inside scikit-learn: no more threads than the trial's torch threads.
        with torch.no_grad(), threadpool_limits(limits=max(1, torch.get_num_threads())):
            return _evaluate(model, splits, x, y, split, seed, max_train, device)
    finally:
        model.train(was_training)


def _evaluate(model, splits, x, y, split, seed, max_train, device) -> dict[str, float]:
    nan = math.nan
    if getattr(splits, "regression", False):   # function fitting: the fit is all there is to score
        loss = mse(batched(model.reconstruct, x, device), splits.target(split).cpu())
        return {f"{split}_loss": loss, "rmse": math.sqrt(loss) if math.isfinite(loss) else nan}
    recon = batched(model.reconstruct, x, device)
    codes = batched(model.encode, x, device)
    tr = subsample(len(splits.train_x), max_train, seed)
    train_x, train_y = splits.train_x[torch.as_tensor(tr, device=splits.train_x.device)].cpu(), _np(splits.train_y)[tr]
    train_codes = batched(model.encode, train_x, device)

    loss = mse(recon, x)
    latent_ok, recon_ok = _finite(codes, train_codes), _finite(recon)
    out = {f"{split}_loss": loss, "psnr": psnr(loss) if recon_ok else nan}
    out["knn_acc"] = knn_accuracy(train_codes, train_y, codes, y) if latent_ok else nan
    out["linear_acc"] = linear_accuracy(train_codes, train_y, codes, y) if latent_ok else nan
    out["recall_at_5"] = recall_at_k(x, codes, y, k=5, seed=seed) if latent_ok else nan
    out["denoise_sp_mse"] = denoise_mse(model, x, "salt_pepper", NOISE_LEVEL, seed)
    out["denoise_gauss_mse"] = denoise_mse(model, x, "gaussian", NOISE_LEVEL, seed + 1)
    cfg = getattr(model, "cfg", None)
    if cfg is not None and cfg.noise != "none" and cfg.noise_level > 0:   # a denoiser, at its own noise
        out["denoise_own_mse"] = denoise_mse(model, x, cfg.noise, cfg.noise_level, seed + 2)
    if recon_ok:
        out["label_agreement"] = label_agreement(pixel_classifier(splits.train_x, splits.train_y, max_train), x, recon)
    else:
        out["label_agreement"] = nan
    out["class_sep"] = class_separation(codes, y) if latent_ok else nan
    out["silhouette"] = silhouette(codes, y, seed=seed) if latent_ok else nan
    if has_posterior(model):
        mu, logvar = batched(model.posterior, x, device)
        ok = _finite(mu, logvar)
        out["kl"] = kl_per_sample(mu, logvar) if ok else nan
        out["active_units"] = float(active_units(mu)) if ok else nan
        out["ks_distance"] = ks_distance(mu) if ok else nan
    return {k: float(v) for k, v in out.items()}
