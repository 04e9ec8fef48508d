"""Metrics on cases with known answers, then `evaluate` end to end on digits and moons."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy import integrate, stats

from tunekae import metrics as M
from tunekae.data import load_dataset
from tunekae.models import ModelConfig, build_model

COMMON = {"test_loss", "psnr", "knn_acc", "linear_acc", "recall_at_5", "denoise_sp_mse", "denoise_gauss_mse",
          "label_agreement", "class_sep", "silhouette"}
POSTERIOR = {"kl", "active_units", "ks_distance"}


class Identity(nn.Module):
    """A perfect autoencoder: code = reconstruction = input (no parameters: runs on the CPU)."""

    def encode(self, x):
        return x

    def reconstruct(self, x):
        return x


class Broken(Identity):
    def reconstruct(self, x):
        return torch.full_like(x, math.nan)

    def encode(self, x):
        return torch.full((len(x), 4), math.nan)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def clusters(n_per=50, centres=((0, 0, 0), (10, 0, 0), (0, 10, 0)), seed=0):
    rng = np.random.default_rng(seed)
    codes = np.concatenate([np.asarray(c) + 0.1 * rng.standard_normal((n_per, 3)) for c in centres])
    return codes, np.repeat(np.arange(len(centres)), n_per)


# ----------------------------------------------------------------------------- single metrics
def test_psnr_known_values():
    assert M.psnr(0.01) == 20.0
    assert M.psnr(1.0) == 0.0
    assert M.psnr(0.0) == math.inf


def test_mse_is_the_dataset_mean_per_pixel():
    a, b = torch.zeros(4, 10), torch.zeros(4, 10)
    b[0] = 1.0   # one sample entirely wrong: 10 of 40 pixels
    assert M.mse(a, b) == 0.25


def test_knn_and_linear_accuracy_on_separated_clusters():
    train, train_y = clusters(seed=0)
    test, test_y = clusters(seed=1)
    assert M.knn_accuracy(train, train_y, test, test_y) == 1.0
    assert M.linear_accuracy(train, train_y, test, test_y) == 1.0
    shuffled = np.random.default_rng(0).permutation(test_y)
    assert M.knn_accuracy(train, train_y, test, shuffled) < 0.6


def test_recall_at_5_is_one_when_codes_are_the_pixels_and_low_for_random_codes():
    rng = np.random.default_rng(0)
    pixels, labels = rng.random((600, 20)), np.repeat(np.arange(3), 200)
    assert M.recall_at_k(pixels, pixels, labels, k=5) == 1.0
    assert M.recall_at_k(pixels, pixels * 3 + 1, labels) == 1.0    # distances scaled: same neighbours
    assert M.recall_at_k(pixels, rng.random((600, 2)), labels) < 0.1


def test_recall_samples_per_class_and_excludes_the_point_itself():
    labels = np.repeat(np.arange(3), [300, 50, 250])
    idx = M.sample_per_class(labels, per_class=200, seed=0)
    assert np.bincount(labels[idx]).tolist() == [200, 50, 200]
    assert np.array_equal(idx, M.sample_per_class(labels, per_class=200, seed=0))
    assert not np.array_equal(idx, M.sample_per_class(labels, per_class=200, seed=1))
    points = np.repeat(np.arange(10.0), 2)[:, None]   # duplicates: self may not come first
    near = M._neighbours(points, 3)
    assert all(i not in row for i, row in enumerate(near)) and near.shape == (20, 3)


def test_class_separation_hand_computed():
    codes = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [12.0, 0.0]])
    # centroids (1, 0) and (11, 0): between 10; every point 1 from its centroid: within 1.
    assert M.class_separation(codes, np.array([0, 0, 1, 1])) == pytest.approx(10.0)
    codes3 = np.array([[0.0, 0.0], [0.0, 2.0], [3.0, 1.0], [3.0, 1.0], [0.0, 5.0], [0.0, 5.0]])
    # centroids (0,1), (3,1), (0,5): pairwise 3, 4, 5 -> mean 4; within: (1+1+0+0+0+0)/6.
    assert M.class_separation(codes3, np.array([0, 0, 1, 1, 2, 2])) == pytest.approx(4 / (2 / 6))
    assert math.isnan(M.class_separation(codes, np.zeros(4)))


def test_silhouette_hand_computed():
    codes = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    # Every point: a = 1 (its class mate), b = (10 + sqrt(101)) / 2 (the other class); s = 1 - a/b.
    expected = 1 - 1 / ((10 + math.sqrt(101)) / 2)
    assert M.silhouette(codes, np.array([0, 0, 1, 1])) == pytest.approx(expected, rel=1e-12)
    assert M.silhouette(torch.tensor(codes), torch.tensor([0, 0, 1, 1])) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(M.silhouette(codes, np.zeros(4)))                       # one class
    assert math.isnan(M.silhouette(codes, np.arange(4)))                      # one class per point
    assert math.isnan(M.silhouette(np.array([[0.0], [np.nan], [1.0], [2.0]]), np.array([0, 0, 1, 1])))
    # A sample bounds the cost: seeded, so repeatable, and near the score on every point.
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 750)
    many = rng.normal(size=(3000, 16)) + 3 * y[:, None]
    sampled = M.silhouette(many, y, sample_size=500, seed=1)
    assert sampled == M.silhouette(many, y, sample_size=500, seed=1)
    assert sampled == pytest.approx(M.silhouette(many, y, sample_size=None), abs=0.03)


def test_ks_distance_small_for_standard_normal_large_for_shifted():
    rng = np.random.default_rng(0)
    assert M.ks_distance(rng.standard_normal((5000, 4))) < 0.05
    assert M.ks_distance(rng.standard_normal((5000, 4)) + 3) > 0.8


def test_active_units_counts_dims_with_variance_above_threshold():
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((4000, 5)) * np.array([0.5, 0.2, 0.05, 0.0, 1.0])   # variances .25 .04 .0025 0 1
    assert M.active_units(mu) == 3
    assert M.active_units(mu, threshold=0.1) == 2


def test_kl_known_values():
    assert M.kl_per_sample(torch.zeros(10, 4), torch.zeros(10, 4)) == 0.0
    assert M.kl_per_sample(torch.ones(10, 3), torch.zeros(10, 3)) == pytest.approx(1.5)    # 0.5 * |mu|^2
    logvar = torch.full((2, 1), math.log(4.0))                                              # var 4: 0.5 (4 - 1 - ln 4)
    assert M.kl_per_sample(torch.zeros(2, 1), logvar) == pytest.approx(0.5 * (3 - math.log(4.0)))


def expected_clipped_gauss_mse(value: float, sigma: float = 0.1) -> float:
    """E[(clip(v + sigma n, 0, 1) - v)^2], n ~ N(0, 1), by quadrature."""
    f = lambda n: (np.clip(value + sigma * n, 0, 1) - value) ** 2 * stats.norm.pdf(n)   # noqa: E731
    return integrate.quad(f, -12, 12, points=[-value / sigma, (1 - value) / sigma], limit=200)[0]


def test_denoise_metrics_of_the_identity_model_are_the_noise_itself():
    x = torch.full((500, 200), 0.5)
    # Salt and pepper at rate 0.1: 10% of pixels move by 0.5 -> 0.25 * 0.1.
    assert M.denoise_mse(Identity(), x, "salt_pepper", 0.1, seed=0) == pytest.approx(0.025, rel=0.03)
    mixed = torch.tensor([0.0, 0.5, 1.0, 0.03]).repeat(500, 50)
    expected = np.mean([expected_clipped_gauss_mse(v) for v in (0.0, 0.5, 1.0, 0.03)])
    assert expected_clipped_gauss_mse(0.0) == pytest.approx(0.005, rel=1e-6)   # half the noise clipped away
    assert M.denoise_mse(Identity(), mixed, "gaussian", 0.1, seed=0) == pytest.approx(expected, rel=0.03)
    again = [M.denoise_mse(Identity(), x, "gaussian", 0.1, seed=3) for _ in range(2)]
    assert again[0] == again[1]                                                 # seeded


def test_label_agreement_is_one_for_identity_reconstruction(digits):
    clf = M.pixel_classifier(digits.train_x, digits.train_y, max_train=500)
    assert M.pixel_classifier(digits.train_x, digits.train_y, max_train=500) is clf   # cached
    assert M.label_agreement(clf, digits.val_x, digits.val_x) == 1.0
    assert M.label_agreement(clf, digits.val_x, torch.zeros_like(digits.val_x)) < 0.3


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_identity_gives_perfect_scores(digits):
    out = M.evaluate(Identity(), digits, split="test")
    assert set(out) == COMMON
    assert out["test_loss"] == 0.0 and out["psnr"] == math.inf
    assert out["recall_at_5"] == 1.0 and out["label_agreement"] == 1.0
    assert out["knn_acc"] > 0.9 and out["linear_acc"] > 0.9     # digits pixels are easy
    assert out["denoise_sp_mse"] > 0 and out["denoise_gauss_mse"] > 0


def tiny_trained(splits, variant: str, steps: int = 60):
    torch.manual_seed(0)
    model = build_model(ModelConfig(input_dim=splits.input_dim, latent_dim=8, hidden=(16,), variant=variant))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        x = splits.train_x[(step * 128) % 1024:][:128]
        loss = model.loss_terms(x, model(x))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.mark.parametrize("variant", ["ae", "vae", "wae_mmd"])
def test_evaluate_end_to_end_on_digits(digits, variant):
    model = tiny_trained(digits, variant)
    model.train()
    out = M.evaluate(model, digits, split="val", seed=0)
    expected = (COMMON - {"test_loss"}) | {"val_loss"} | (POSTERIOR if variant == "vae" else set())
    assert set(out) == expected
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values()), out
    assert model.training                      # mode restored
    assert 0 < out["val_loss"] < 0.2 and out["psnr"] == pytest.approx(M.psnr(out["val_loss"]))
    assert 0.3 < out["knn_acc"] <= 1 and 0 < out["recall_at_5"] <= 1 and out["class_sep"] > 0
    assert -1 <= out["silhouette"] <= 1
    assert out == M.evaluate(model, digits, split="val", seed=0)              # seeded: repeatable
    if variant == "vae":
        assert 0 <= out["active_units"] <= 8 and out["kl"] >= 0 and 0 <= out["ks_distance"] <= 1


def test_evaluate_point_data_and_a_diverged_model():
    moons = load_dataset("moons", n_samples=600)
    out = M.evaluate(tiny_trained(moons, "ae", steps=20), moons, split="test", max_train=300)
    assert set(out) == COMMON and all(math.isfinite(v) for v in out.values())
    assert M.class_separation(np.zeros((4, 2)), np.array([0, 0, 1, 1])) == 0.0   # collapsed codes
    broken = M.evaluate(Broken(), moons)
    assert set(broken) == COMMON and math.isnan(broken["knn_acc"]) and math.isnan(broken["test_loss"])


def test_mean_image_baseline_and_the_collapse_rule():
    from tunekae.data import Splits
    from tunekae.metrics import mean_image_mse, run_status
    train = torch.tensor([[0.0, 0.0], [2.0, 2.0]])        # mean image (1, 1)
    test = torch.tensor([[1.0, 1.0], [3.0, 1.0]])         # squared errors 0, 0, 4, 0
    assert mean_image_mse(train, test) == pytest.approx(1.0)
    y = torch.zeros(2, dtype=torch.int64)
    splits = Splits("toy", train, y, test, y, test, y, None, 1)
    assert run_status("ok", 0.96, splits, "test") == ("collapsed", pytest.approx(1.0))
    assert run_status("ok", 1.7, splits, "test")[0] == "collapsed"       # worse than the mean image
    assert run_status("ok", 0.94, splits, "test")[0] == "ok"
    assert run_status("diverged", 0.99, splits, "val")[0] == "diverged"
