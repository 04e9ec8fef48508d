"""Robustness: corrupted test inputs scored against the clean ones, by `evaluate`, by confirm's
default sweep and in the report."""
import json

import pandas as pd
import pytest
import torch

from tunekae.robustness import parse_noise, sweep


class Identity(torch.nn.Module):
    """Reconstructs exactly what it is given: its error is the corruption's own."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def reconstruct(self, x):
        return x


def test_the_sweep_scores_against_the_clean_input():
    from types import SimpleNamespace
    splits = SimpleNamespace(test_x=torch.full((400, 100), 0.5))
    rows = {(r["kind"], r["level"]): r for r in sweep(Identity(), splits, parse_noise(["salt_pepper:0.1",
                                                                                         "gaussian:0.2"]))}
    assert rows[("clean", 0.0)]["mse"] == 0.0
    # a tenth of the pixels flipped to 0 or 1: each off by 0.5, so 0.1 * 0.25
    assert rows[("salt_pepper", 0.1)]["mse"] == pytest.approx(0.025, rel=0.05)
    # N(0, 0.2^2) noise, barely clipped around 0.5: its variance
    assert rows[("gaussian", 0.2)]["mse"] == pytest.approx(0.04, rel=0.05)
    assert parse_noise(None) == [("gaussian", 0.1), ("gaussian", 0.3), ("gaussian", 0.6), ("salt_pepper", 0.05),
                                 ("salt_pepper", 0.1)]


def test_evaluate_a_saved_model_and_bad_input(run_cli, tmp_path):
    model = tmp_path / "m.pt"
    code, _, err = run_cli("train", "--dataset", "digits", "--epochs", "2", "--lr", "1e-2", "--batch-size", "32",
                           "--hidden", "16", "--threads", "1", "--save", model)
    assert code == 0, err
    code, out, err = run_cli("evaluate", model, "--noise", "gaussian:0.1,0.6", "--noise", "salt_pepper:0.1")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "m.robustness.csv")
    assert list(table["kind"]) == ["clean", "gaussian", "gaussian", "salt_pepper"]
    assert table["mse"].iloc[0] < table["mse"].iloc[1] < table["mse"].iloc[2]   # more noise, worse
    info = json.loads(run_cli("train", "--dataset", "digits", "--epochs", "2", "--lr", "1e-2", "--batch-size", "32",
                              "--hidden", "16", "--threads", "1", "--json")[1])
    assert table["mse"].iloc[0] == pytest.approx(info["test_loss"], rel=1e-5)   # clean: the test loss itself
    for argv, says in ((["--noise", "blur:0.1"], "KIND one of gaussian, salt_pepper, moons"),
                       (["--noise", "gaussian:lots"], "'lots' is not a number"),
                       (["--noise", "moons:0.2"], "the model was trained on digits"),
                       (["--noise", "salt_pepper:2"], "out of range")):
        code, _, err = run_cli("evaluate", model, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, (argv, err)
    code, _, err = run_cli("evaluate", tmp_path / "nothing.pt")
    assert code == 2 and "does not exist" in err
    (tmp_path / "broken.pt").write_bytes(b"not a model")
    code, _, err = run_cli("evaluate", tmp_path / "broken.pt")
    assert code == 2 and "is not a tunekae model" in err


def test_a_moons_model_meets_a_noisier_test_set(run_cli, tmp_path):
    model = tmp_path / "moons.pt"
    code, _, err = run_cli("train", "--dataset", "moons", "--latent", "1", "--hidden", "16", "--latent-activation",
                           "none", "--hidden-activation", "tanh", "--epochs", "20", "--lr", "1e-2", "--batch-size", "32",
                           "--threads", "1", "--save", model)
    assert code == 0, err
    code, _, err = run_cli("evaluate", model, "--noise", "moons:0.1,0.3")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "moons.robustness.csv")
    # the training noise again scores about as the test set does; three times the noise, worse
    assert table["mse"].iloc[1] == pytest.approx(table["mse"].iloc[0], rel=0.3) and table["mse"].iloc[2] > table["mse"].iloc[1]
