"""Generation metrics on cases with known answers, end to end on digits, and in the report."""
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from tunekae import generation as G
from tunekae.data import load_dataset
from tunekae.models import ModelConfig, build_model


# ----------------------------------------------------------------------------- single scores
def test_label_entropy_known_values():
    assert G.label_entropy(np.repeat(np.arange(10), 7)) == pytest.approx(math.log(10))
    assert G.label_entropy(np.full(50, 3)) == 0.0
    assert G.label_entropy([0, 0, 1, 1]) == pytest.approx(math.log(2))
    assert G.label_entropy(np.repeat(np.arange(10), 7), n_classes=12) == pytest.approx(math.log(10))


def test_mean_confidence_known_values():
    assert G.mean_confidence(np.eye(10)[[0, 3, 3, 9]]) == 1.0
    assert G.mean_confidence(np.full((5, 4), 0.25)) == pytest.approx(0.25)
    assert G.mean_confidence([[0.5, 0.5], [0.9, 0.1]]) == pytest.approx(0.7)


def test_mmd_hand_computed():
    # x = {0, 1}, y = {3, 5} in one dimension, one bandwidth s = 1: k(a, b) = exp(-(a-b)^2 / 2)
    k = lambda a, b: math.exp(-((a - b) ** 2) / 2)   # noqa: E731
    expected = k(0, 1) + k(3, 5) - 2 * (k(0, 3) + k(0, 5) + k(1, 3) + k(1, 5)) / 4
    assert G.mmd2_rbf([[0.0], [1.0]], [[3.0], [5.0]], bandwidths=[1.0]) == pytest.approx(expected, rel=1e-12)
    # two bandwidths: the average of the two single-bandwidth values
    two = G.mmd2_rbf([[0.0], [1.0]], [[3.0], [5.0]], bandwidths=[1.0, 2.0])
    assert two == pytest.approx((expected + G.mmd2_rbf([[0.0], [1.0]], [[3.0], [5.0]], bandwidths=[2.0])) / 2)
    # the median heuristic: pooled distances 1, 3, 5, 2, 4, 2 -> median 2.5, bandwidths 1.25 .. 10
    assert G.mmd2_rbf([[0.0], [1.0]], [[3.0], [5.0]]) == pytest.approx(
        G.mmd2_rbf([[0.0], [1.0]], [[3.0], [5.0]], bandwidths=[1.25, 2.5, 5.0, 10.0]), rel=1e-12)


def test_mmd_same_distribution_near_zero_shifted_positive():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((500, 20)), rng.standard_normal((500, 20))
    same = G.mmd2_rbf(a, b)
    shifted = G.mmd2_rbf(a, b + 1.0)
    assert abs(same) < 0.005
    assert shifted > 0.1 and shifted > 50 * abs(same)
    assert G.mmd2_rbf(np.ones((4, 3)), np.ones((5, 3))) == 0.0
    assert math.isnan(G.mmd2_rbf(np.ones((1, 3)), np.ones((5, 3))))


def test_mixture_of_two_far_clusters_generates_from_both():
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(-10, 0.1, (300, 2)), rng.normal(10, 0.1, (300, 2))])
    gmm = G.fit_code_mixture(codes, n_components=2, seed=0)
    z = G.sample_mixture(gmm, 400, seed=1)
    left, right = (z[:, 0] < -5).mean(), (z[:, 0] > 5).mean()
    assert left + right == 1.0 and 0.35 < left < 0.65            # both clusters, nothing between
    assert np.abs(z[z[:, 0] > 5] - 10).max() < 1                  # drawn at the cluster, not elsewhere
    assert (z[:10, 0] < 0).any() and (z[:10, 0] > 0).any()         # shuffled, not grouped by component
    assert np.array_equal(z, G.sample_mixture(gmm, 400, seed=1))  # seeded
    assert G.fit_code_mixture(np.full((20, 2), np.nan)) is None
    assert G.fit_code_mixture(np.zeros((3, 2)), n_components=10) is not None   # fewer rows than components


def test_score_samples_of_nonfinite_samples_is_nan():
    class Never:
        def predict_proba(self, x):
            raise AssertionError("a non-finite sample set must not reach the classifier")
    out = G.score_samples(torch.full((5, 4), math.nan), Never(), torch.zeros(5, 4))
    assert set(out) == set(G.SCORES) and all(math.isnan(v) for v in out.values())


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def tiny_trained(splits, variant, steps=150, seed=0):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(family="linear", variant=variant, input_dim=splits.input_dim, latent_dim=8,
                                    hidden=(32,), output_activation="sigmoid"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = splits.train_x[torch.randint(len(splits.train_x), (128,), generator=g)]
        loss = model.loss_terms(x, model(x))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.mark.parametrize("variant", ["ae", "vae", "wae_mmd"])
def test_generation_scores_end_to_end_on_digits(digits, variant):
    model = tiny_trained(digits, variant)
    model.train()
    out = G.generation_scores(model, digits, seed=0, n=300)
    sources = ("gmm", "prior") if variant == "vae" else ("gmm",)
    assert set(out) == {f"gen_{s}_{k}" for s in sources for k in G.SCORES}
    assert model.training                                           # mode restored
    for s in sources:
        assert 0 <= out[f"gen_{s}_entropy"] <= math.log(10)
        assert 0.1 <= out[f"gen_{s}_confidence"] <= 1
        assert math.isfinite(out[f"gen_{s}_mmd"]) and out[f"gen_{s}_mmd"] < 1
    assert out == G.generation_scores(model, digits, seed=0, n=300)   # seeded: repeatable
    if variant != "vae":   # (150 steps leave this small VAE collapsed to about the mean image: entropy ~0)
        assert out["gen_gmm_entropy"] > 1.5                         # many digits generated, not one
        noise = G.mmd2_rbf(torch.rand(300, 64, generator=torch.Generator().manual_seed(0)), digits.test_x[:300])
        assert out["gen_gmm_mmd"] < noise / 3                       # far closer to the digits than noise is


def test_decode_is_the_second_half_of_reconstruct(digits):
    for variant in ("ae", "vae", "derp_vae", "wae_mmd"):
        model = build_model(ModelConfig(family="linear", variant=variant, input_dim=64, latent_dim=4, hidden=(8,),
                                        output_activation="sigmoid")).eval()
        x = digits.test_x[:5]
        assert torch.equal(model.decode(model.encode(x)), model.reconstruct(x))


def test_generation_of_a_diverged_model_and_a_regression_are_empty_or_nan(digits):
    model = tiny_trained(digits, "vae", steps=1)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.fill_(math.nan)
    out = G.generation_scores(model, digits, n=100)
    assert set(out) == set(G.METRICS)
    assert all(math.isnan(v) for k, v in out.items() if k.startswith("gen_gmm_"))
    assert all(math.isfinite(v) for k, v in out.items() if k.startswith("gen_prior_"))   # the decoder is intact
    assert G.generation_scores(model, SimpleNamespace(regression=True)) == {}   # function fitting: no images


# ----------------------------------------------------------------------------- the report
def _toy_image_splits(run, data_dir=None):
    g = torch.Generator().manual_seed(0)
    return SimpleNamespace(name="toy8", train_x=torch.rand(100, 64, generator=g), train_y=torch.arange(100) % 4,
                           test_x=torch.rand(40, 64, generator=g), test_y=torch.arange(40) % 4, image_shape=(8, 8),
                           n_classes=4, input_dim=64, regression=False)


def _with_scores(d):
    """Give a synthetic confirmed study gen_* columns, and one arm (kae_b1000) a saved VAE."""
    runs = pd.read_csv(d / "confirmed_runs.csv")
    rng = np.random.default_rng(0)
    runs["gen_gmm_entropy"] = 2.0 + 0.1 * rng.random(len(runs))
    runs["gen_gmm_confidence"] = 0.7
    runs["gen_gmm_mmd"] = 0.01 * rng.random(len(runs))
    for c in ("gen_prior_entropy", "gen_prior_confidence", "gen_prior_mmd"):
        runs[c] = np.where(runs["arm"] == "kae_b1000", 0.5, np.nan)
    runs.to_csv(d / "confirmed_runs.csv", index=False)
    cfg = ModelConfig(family="linear", variant="vae", input_dim=64, latent_dim=2, hidden=(12,))
    torch.save({"model_config": cfg.to_dict(), "state_dict": build_model(cfg).state_dict()},
               next((d / "models").glob("kae_b1000__*.pt")))
    return runs


def test_the_generation_section_numbers_and_sample_grids(tmp_path):
    from test_analysis_cli import assert_png, make_results_dir

    from tunekae.analysis import generation as AG
    from tunekae.analysis.load import load
    d = make_results_dir(tmp_path / "run", studies=False)
    assert not AG.has_scores(load(d))                     # a study confirmed before these scores
    runs = _with_scores(d)
    res, out = load(d), tmp_path / "out"
    out.mkdir()
    gen = AG.run(res, out, loader=_toy_image_splits)
    table = pd.read_csv(out / "generation.csv").set_index("arm")
    assert len(table) == 4 and (table["n"] == 3).all()
    for arm, t in table.iterrows():                       # the best rank's mean over its seeds
        best = runs[(runs["arm"] == arm) & (runs["rank"] == 1)]
        assert t["trial_id"] == best["trial_id"].iloc[0]
        assert t["gen_gmm_entropy_mean"] == pytest.approx(best["gen_gmm_entropy"].mean())
        assert t["gen_gmm_mmd_std"] == pytest.approx(best["gen_gmm_mmd"].std(ddof=1))
    assert np.isnan(table.loc["mlp_b1000", "gen_prior_entropy_mean"])
    assert table.loc["kae_b1000", "gen_prior_entropy_mean"] == 0.5
    md = "\n".join(gen["markdown"])
    assert "higher is better" in md and "lower is better" in md and "(generation.csv)" in md
    assert f"{table.loc['mlp_b1000', 'gen_gmm_entropy_mean']:.4g} ± " in md
    assert gen["files"] == ["generation.csv", "samples_1x.png", "samples_4x.png"] and not gen["notes"]
    for f in gen["files"][1:]:
        assert f"({f})" in md
        assert_png(out / f)


@pytest.mark.slow
def test_the_report_has_a_generation_section_only_when_confirm_recorded_scores(tmp_path, monkeypatch, capsys):
    from test_analysis_cli import make_results_dir

    from tunekae.analysis import recon
    from tunekae.analysis.cli import main
    monkeypatch.setattr(recon, "load_splits", _toy_image_splits)
    d = make_results_dir(tmp_path / "run", studies=False)
    assert main(["report", str(d)]) in (0, None)
    md = (d / "analysis" / "report.md").read_text()
    assert "### Generation" not in md and not list((d / "analysis").glob("samples_*.png"))
    _with_scores(d)
    assert main(["report", str(d)]) in (0, None)
    md = (d / "analysis" / "report.md").read_text()
    section = md.split("### Generation\n", 1)[1].split("\n#", 1)[0]
    assert "(generation.csv)" in section and "(samples_1x.png)" in section and "(samples_4x.png)" in section
    assert "generation failed" not in md and "generation skipped" not in md
    capsys.readouterr()


def test_confirm_records_generation_scores(digits):
    import json

    from tunekae.confirm import SUMMARY, confirm_one
    cfg = {"model": ModelConfig(family="linear", variant="vae", input_dim=64, latent_dim=4, hidden=(16,)).to_dict(),
           "train": {"epochs": 2, "lr": 1e-2, "batch_size": 64}}
    row = confirm_one(json.dumps(cfg), 10_000, digits, threads=1)["row"]
    assert row["status"] in ("ok", "collapsed")
    assert set(G.METRICS) <= set(row) and set(G.METRICS) <= set(SUMMARY)
    assert all(0 <= row[f"gen_{s}_entropy"] <= math.log(10) for s in G.SOURCES)
