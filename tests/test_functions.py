"""Function fitting (function:NAME): pykan's datasets to the bit, regressors of every family that
train, the engine fitting targets rather than inputs, and the CLI around them."""
import json
import math

import pytest
import torch

from tunekae.data import load_dataset
from tunekae.functions import FORMULAS
from tunekae.models import ModelConfig, build_model
from tunekae.train import TrainConfig, reconstruction_loss, train_model

torch.set_num_threads(1)


@pytest.mark.parametrize("name", ["exp_sin", "feynman_i_6_2", "bessel_j0"])
def test_a_function_dataset_is_pykans_create_dataset(name):
    """Same seed, same points and labels as pykan's create_dataset (train and test); validation
    points are drawn after them."""
    from kan import create_dataset
    f = FORMULAS[name]
    ranges = list(f.ranges) if f.ranges else [-1, 1]
    theirs = create_dataset(lambda x: f.fn(x).unsqueeze(1), n_var=f.n_var, ranges=ranges, seed=3)
    ours = load_dataset(f"function:{name},seed=3")
    assert torch.equal(ours.train_x, theirs["train_input"]) and torch.equal(ours.test_x, theirs["test_input"])
    assert torch.allclose(ours.train_t, theirs["train_label"]) and torch.allclose(ours.test_t, theirs["test_label"])
    assert ours.regression and ours.output_dim == 1 and len(ours.val_x) == 200
    assert not torch.equal(ours.val_x[:10], ours.train_x[:10])


def test_exp_sin_is_the_demo_formula():
    s = load_dataset("function:exp_sin,train_num=5,test_num=5,val_num=5")
    x = s.train_x
    assert torch.allclose(s.train_t[:, 0], torch.exp(torch.sin(math.pi * x[:, 0]) + x[:, 1] ** 2))
    assert s.train_x.min() >= -1 and s.train_x.max() <= 1 and len(s.train_x) == 5


def kan_demo(lamb=0.0, epochs=20, seed=0):
    cfg = ModelConfig(family="kan", variant="regressor", input_dim=2, hidden=(5,), output_dim=1, grid=5, order=3,
                      output_activation="none", lamb=lamb, seed=seed)
    train = TrainConfig(optimizer="lbfgs", lr=1.0, batch_size=0, epochs=epochs, weight_decay=0.0, seed=seed,
                        grid_update_epochs=50, grid_update_every=5, device="cpu", threads=1)
    return cfg, train


def test_pykans_demo_recipe_fits_the_demo_function():
    """KAN [2,5,1], 20 full-batch LBFGS steps with grid updates: test RMSE far below the label's spread."""
    data = load_dataset("function:exp_sin")
    cfg, train = kan_demo()
    result = train_model(cfg, data, train)
    rmse = math.sqrt(reconstruction_loss(result.model, data.test_x, data.test_t))
    assert result.status == "ok" and sum(p.numel() for p in result.model.parameters()) == 150
    assert rmse < 0.03 < float(data.test_t.std()) / 10, rmse
    assert result.history[-1].val_loss < result.history[0].val_loss / 10


@pytest.mark.parametrize("family,shape", [("linear", {}), ("kae", {"order": 2}), ("cheby", {"order": 3}),
                                          ("rbf", {"grid": 6}), ("kan", {"grid": 3, "order": 2})])
def test_every_family_regresses(family, shape):
    data = load_dataset("function:sin_cos,train_num=256,val_num=64,test_num=64")
    cfg = ModelConfig(family=family, variant="regressor", input_dim=2, hidden=(8,), output_dim=1,
                      output_activation="none", **shape)
    reports = []
    r = train_model(cfg, data, TrainConfig(lr=1e-2, batch_size=32, epochs=15, weight_decay=0.0, device="cpu",
                                           threads=1), on_epoch=reports.append)
    assert r.status == "ok" and reports[-1].val_loss < 0.5 * reports[0].val_loss, (family, reports[-1].val_loss)
    # one input: FastKAN's LayerNorm over a single input is left out, as FastKAN asks
    one = build_model(ModelConfig(family=family, variant="regressor", input_dim=1, hidden=(4,), output_dim=1, **shape))
    assert one(torch.rand(3, 1)).recon.shape == (3, 1)


def test_train_cli_fits_a_function_and_reports_rmse(run_cli):
    code, out, err = run_cli("train", "--dataset", "function:xy,train_num=300", "--family", "kan", "--hidden", "4",
                             "--grid", "3", "--order", "2", "--optimizer", "lbfgs", "--lr", "1", "--batch-size", "0",
                             "--epochs", "5", "--weight-decay", "0", "--threads", "1", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["status"] == "ok" and info["rmse"] == pytest.approx(math.sqrt(info["test_loss"]))
    assert info["model_config"]["variant"] == "regressor" and info["model_config"]["output_activation"] == "none"
    for argv, says in ((["--dataset", "function:nope"], "unknown function 'nope'"),
                       (["--dataset", "function:xy,train_num=x"], "train_num must be a whole number"),
                       (["--dataset", "function:xy", "--variant", "vae"], "needs a regressor")):
        code, _, err = run_cli("train", *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err


def test_a_trial_records_what_pruning_keeps():
    from tunekae.trial import ArmSpec, RunSpec, run_trial
    data = load_dataset("function:exp_sin")
    arm = ArmSpec("kan_w5", "kan", "kan", "regressor", 150, {"output_activation": "none"}, hidden=(5,))
    run = RunSpec(input_dim=2, latent_dim=16, output_dim=1, epochs=20)
    final = run_trial({"depth": 1, "grid": 5, "order": 3, "optimizer": "lbfgs", "lr": 1.0, "batch_size": 0,
                       "weight_decay": 0.0, "grid_update_epochs": 50, "grid_update_every": 5, "prune": True,
                       "lamb": 0.01}, arm, run, data, lambda _: None, seed=0)
    assert final["status"] == "ok" and final["params"] == 150 and final["hidden"] == "5"
    assert 0 < final["pruned_params"] < final["params"] and final["pruned_edges"] * 10 == final["pruned_params"]
    assert final["val_rmse"] == pytest.approx(math.sqrt(final["val_loss"]), rel=1e-6)
    assert math.isfinite(final["pruned_val_loss"])
