"""Generation metrics of a trained autoencoder: sample codes, decode them, score the samples.

Codes come from a Gaussian mixture fitted to the model's codes of the training split (every
model), and for the VAE family (metrics.has_posterior) also from the prior N(0, I). Each sample
set is scored three ways; the names are columns of confirmed_runs.csv (SOURCE is gmm or prior):

    gen_SOURCE_entropy     entropy in nats of the distribution of labels that the fixed pixel
                           classifier (metrics.pixel_classifier, label_agreement's) predicts for
                           the samples: ln(n_classes) (2.303 for 10) when every class is generated
                           equally often, 0 when every sample gets one label. Higher is better.
    gen_SOURCE_confidence  mean over samples of that classifier's top-class probability
                           (predict_proba max): 1 when every sample looks like one class for sure,
                           1/n_classes when it looks like none. Higher is better.
    gen_SOURCE_mmd         unbiased MMD^2 between the samples and up to n seeded test images with
                           the RBF kernel exp(-|a-b|^2 / (2 s^2)), AVERAGED over the bandwidths
                           s = 0.5, 1, 2, 4 x the median pairwise distance of the pooled samples
                           (about 0 when the samples are distributed as the test images; can dip
                           slightly below 0 as an unbiased estimate). Lower is better.

Defaults: a 10-component full-covariance GaussianMixture (random_state = the run's seed) fitted
on at most 5,000 seeded training codes; 1,000 samples; 1,000 test images. Regression datasets
get none of these columns; codes or samples that are not finite give NaN.

Cost, measured on Fashion-MNIST (2 torch threads, MLP 784-128-16, one epoch trained, on a 2-core
machine under a load average of about 7): 4-7 s per run for an AE (GMM scores) and 2-2.5 s for
a VAE (GMM and prior), against 21-135 s for the same run's evaluate() (the first one fits the
cached pixel classifier) and 80-115 s per training epoch. The mixture fit dominates; it runs on
one BLAS thread (see fit_code_mixture).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from .metrics import _device, _finite, _np, batched, has_posterior, pixel_classifier, subsample

N_SAMPLES = 1000
N_COMPONENTS = 10
MAX_FIT = 5000                          # training codes the mixture sees: bounds its cost
BANDWIDTH_SCALES = (0.5, 1.0, 2.0, 4.0)  # x the median pairwise distance
SOURCES = ("gmm", "prior")
SCORES = ("entropy", "confidence", "mmd")
METRICS = [f"gen_{s}_{k}" for s in SOURCES for k in SCORES]


def label_entropy(labels, n_classes: int | None = None) -> float:
    """Entropy in nats of the empirical distribution of integer labels."""
    from scipy.stats import entropy
    labels = _np(labels).astype(np.int64).ravel()
    if not len(labels):
        return math.nan
    return float(entropy(np.bincount(labels, minlength=n_classes or 0)))


def mean_confidence(proba) -> float:
    """Mean over rows of the largest class probability."""
    proba = _np(proba).astype(np.float64)
    return float(proba.max(axis=1).mean()) if len(proba) else math.nan


def mmd2_rbf(x, y, scales=BANDWIDTH_SCALES, bandwidths=None) -> float:
    """Unbiased MMD^2 between samples x (n, d) and y (m, d), n, m >= 2, with the RBF kernel
    k(a, b) = exp(-|a-b|^2 / (2 s^2)), averaged over the bandwidths s: `bandwidths` when given,
    else `scales` x the median pairwise distance of the pooled samples (the median heuristic)."""
    from sklearn.metrics.pairwise import euclidean_distances
    x, y = _np(x).astype(np.float64), _np(y).astype(np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        return math.nan
    d2 = euclidean_distances(np.concatenate([x, y]), squared=True)
    np.maximum(d2, 0, out=d2)            # the BLAS expansion can leave tiny negatives
    if bandwidths is None:
        median = float(np.median(np.sqrt(d2[np.triu_indices(n + m, k=1)])))
        if median == 0:                  # all points equal: every kernel is 1 and the MMD 0
            return 0.0
        bandwidths = [s * median for s in scales]
    total = 0.0
    for s in bandwidths:
        k = np.exp(-d2 / (2.0 * s * s))
        kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
        total += ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                  - 2.0 * kxy.mean())
    return float(total / len(bandwidths))


def fit_code_mixture(codes, n_components: int = N_COMPONENTS, seed: int = 0, max_fit: int = MAX_FIT):
    """A full-covariance GaussianMixture on at most max_fit seeded rows of `codes`; None when
    the codes are not finite or the fit fails (e.g. fewer distinct codes than components)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits
    codes = _np(codes).astype(np.float64)
    if not len(codes) or not np.isfinite(codes).all():
        return None
    codes = codes[subsample(len(codes), max_fit, seed)]
    gmm = GaussianMixture(n_components=min(n_components, len(codes)), covariance_type="full", random_state=seed)
    try:
        # One BLAS thread: the matrices are tiny (codes x latent), and on a busy machine a second
        # thread made the fit 10-25x slower (0.5 s -> 12 s measured on 5000 x 16 codes).
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            return gmm.fit(codes)
    except (ValueError, np.linalg.LinAlgError):
        return None


def sample_mixture(gmm, n: int, seed: int = 0) -> np.ndarray:
    """n codes drawn from the mixture, shuffled (sklearn returns them grouped by component)."""
    gmm.random_state = seed
    z, _ = gmm.sample(n)
    return z[np.random.default_rng(seed).permutation(n)].astype(np.float32)


def sample_prior(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """n codes from N(0, I) in `dim` dimensions."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)).numpy()


def decode(model, codes) -> torch.Tensor:
    """model.decode over the codes in batches on the model's device; the outputs on the CPU."""
    return batched(model.decode, torch.as_tensor(codes, dtype=torch.float32), _device(model))


def score_samples(samples, classifier, reference) -> dict[str, float]:
    """{entropy, confidence, mmd} of generated samples against reference (test) images."""
    if not len(samples) or not _finite(samples):
        return dict.fromkeys(SCORES, math.nan)
    x = _np(samples).astype(np.float32)
    proba = classifier.predict_proba(x)
    return {"entropy": label_entropy(proba.argmax(axis=1)), "confidence": mean_confidence(proba),
            "mmd": mmd2_rbf(x, reference)}


def model_samples(model, splits, source: str, n: int = N_SAMPLES, seed: int = 0,
                  n_components: int = N_COMPONENTS, max_fit: int = MAX_FIT) -> torch.Tensor | None:
    """n decoded samples of `model` from `source` ('gmm': the mixture of its training codes,
    'prior': N(0, I)); None when its codes are not finite or the mixture cannot be fitted."""
    device = _device(model)
    if source == "prior":
        return decode(model, sample_prior(n, model.cfg.latent_dim, seed))
    train_x = splits.train_x[torch.as_tensor(subsample(len(splits.train_x), max_fit, seed), device=splits.train_x.device)]
    gmm = fit_code_mixture(batched(model.encode, train_x.cpu(), device), n_components, seed, max_fit)
    return None if gmm is None else decode(model, sample_mixture(gmm, n, seed))


def generation_scores(model, splits, seed: int = 0, n: int = N_SAMPLES, n_components: int = N_COMPONENTS,
                      max_fit: int = MAX_FIT) -> dict[str, float]:
    """The gen_* columns of `model` (see the module docstring); {} for regression datasets.
    Runs in eval mode on the model's device and restores the mode."""
    from threadpoolctl import threadpool_limits
    if getattr(splits, "regression", False):
        return {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), threadpool_limits(limits=max(1, torch.get_num_threads())):
            classifier = pixel_classifier(splits.train_x, splits.train_y)
            reference = splits.test_x[torch.as_tensor(subsample(len(splits.test_x), n, seed),
                                                      device=splits.test_x.device)].cpu()
            out = {}
            for source in SOURCES if has_posterior(model) else ("gmm",):
                samples = model_samples(model, splits, source, n, seed, n_components, max_fit)
                scores = dict.fromkeys(SCORES, math.nan) if samples is None else \
                    score_samples(samples, classifier, reference)
                out.update({f"gen_{source}_{k}": float(v) for k, v in scores.items()})
            return out
    finally:
        model.train(was_training)
