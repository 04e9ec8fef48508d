"""The training engine: every optimizer, family and variant learns; runs are reproducible;
divergence and stopping end cleanly; denoising scores against the clean input; the CLI works."""
import json
import math

import pytest
import torch

from tunekae.data import Splits
from tunekae.layers import FAMILIES
from tunekae.models import ModelConfig, build_model
from tunekae.train import (DIVERGED_LOSS, EpochReport, TrainConfig, available_cpus, fit, reconstruction_loss,
                           resolve_threads, seed_everything, train_model, update_kan_grids)

torch.set_num_threads(1)

SHAPE = {"linear": {}, "kae": {"order": 3}, "kan": {"grid": 5, "order": 3}, "cheby": {"order": 3}, "rbf": {"grid": 6}}
VARIANTS = ["ae", "vae", "beta_vae", "derp_vae", "wae_mmd"]


def low_rank_splits(n=512, d=16, seed=0) -> Splits:
    """Pixels in [0, 1] with rank-3 structure: something an autoencoder can learn quickly."""
    g = torch.Generator().manual_seed(seed)
    x = torch.sigmoid(2 * torch.randn(n + 128, 3, generator=g) @ torch.randn(3, d, generator=g))
    y = torch.zeros(len(x), dtype=torch.int64)
    return Splits("lowrank", x[:n], y[:n], x[n:n + 64], y[n:n + 64], x[n + 64:], y[n + 64:], None, 1)


def small_cfg(family="linear", variant="ae", **kw) -> ModelConfig:
    return ModelConfig(family=family, input_dim=16, latent_dim=4, hidden=(8,), variant=variant,
                       latent_activation="none", **{**SHAPE[family], **kw})


def tcfg(**kw) -> TrainConfig:
    return TrainConfig(**{"optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0, "batch_size": 64,
                          "epochs": 4, "threads": 1, "device": "cpu", **kw})


@pytest.mark.parametrize("optimizer,lr,batch", [("adam", 1e-2, 64), ("adamw", 1e-2, 64), ("sgd", 0.5, 32),
                                                ("lbfgs", 1.0, 0)])
def test_each_optimizer_lowers_the_loss(optimizer, lr, batch):
    r = train_model(small_cfg(), low_rank_splits(), tcfg(optimizer=optimizer, lr=lr, batch_size=batch, epochs=5))
    assert r.status == "ok" and r.epochs_completed == 5
    assert r.history[-1].val_loss < 0.8 * r.history[0].val_loss
    assert r.history[-1].train_loss < r.history[0].train_loss
    assert all(math.isfinite(h.val_loss) and h.epoch_seconds > 0 for h in r.history)
    assert r.device == "cpu" and r.peak_mem_mb > 0 and r.seconds_per_epoch > 0


def test_peak_memory_is_the_fits_own_not_the_processes_largest():
    """A search's trainer processes train many trials: a fit's peak_mem_mb must not be the
    largest of every earlier trial (the process's lifetime high-water mark)."""
    import resource

    import numpy as np
    big = np.ones(600 * 2**20 // 8)              # 600 MB resident, then freed, before the fit
    del big
    spiked = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reports = []
    r = train_model(small_cfg(), low_rank_splits(), tcfg(epochs=2), on_epoch=reports.append)
    assert 0 < r.peak_mem_mb < spiked - 400, (r.peak_mem_mb, spiked)
    assert [h.peak_mem_mb for h in reports] == sorted(h.peak_mem_mb for h in reports)   # every epoch reports it
    assert reports[-1].peak_mem_mb == pytest.approx(r.peak_mem_mb, abs=1)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_family_and_variant_trains(family, variant):
    EPOCHS = 10   # 80 steps: the KAE's reference init (coefficients N(0, 0.01^2)) starts slowly
    reports = []
    r = train_model(small_cfg(family, variant), low_rank_splits(n=256), tcfg(epochs=EPOCHS, batch_size=32),
                    on_epoch=reports.append)
    assert r.status == "ok" and [h.epoch for h in reports] == list(range(1, EPOCHS + 1))
    first, last = reports[0].terms, reports[-1].terms
    assert "loss" in first and "recon" in first
    assert all(math.isfinite(v) for rep in reports for v in rep.terms.values())
    assert last["loss"] < first["loss"], f"{family}/{variant}: loss did not fall"
    assert reports[-1].train_loss == last["recon"]
    assert all(math.isfinite(rep.val_loss) for rep in reports)
    if variant in ("ae", "wae_mmd"):   # a VAE's reconstructions may wait for its KL term to settle
        assert reports[-1].val_loss < reports[0].val_loss
    if variant in ("vae", "beta_vae", "derp_vae"):
        assert "kl" in first
    if variant == "derp_vae":
        assert "ks" in first
    if variant == "wae_mmd":
        assert "mmd" in first


def test_same_seed_same_numbers_other_seed_other_numbers():
    # Every random source at once: data order, corruption, dropout, VAE sampling, initial weights.
    cfg = small_cfg(variant="vae", dropout=0.2, noise="gaussian", noise_level=0.2)
    splits = low_rank_splits(n=256)

    def history(seed):
        r = train_model(cfg, splits, tcfg(epochs=3, seed=seed))
        return [(h.train_loss, h.val_loss, tuple(sorted(h.terms.items()))) for h in r.history]

    assert history(1) == history(1)
    assert history(1) != history(2)


def test_fit_is_reproducible_from_the_same_weights():
    splits = low_rank_splits(n=256)
    seed_everything(0)
    model = build_model(small_cfg(dropout=0.1))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    a = fit(model, splits, tcfg(epochs=2, seed=3))
    model.load_state_dict(state)
    torch.rand(100)   # the global RNG's state must not matter: fit seeds its own sources
    b = fit(model, splits, tcfg(epochs=2, seed=3))
    assert [h.val_loss for h in a.history] == [h.val_loss for h in b.history]


def test_huge_learning_rate_diverges_without_raising():
    reports = []
    # A linear autoencoder (no saturating activations) with sgd at lr 1e6 overflows to inf/NaN.
    cfg = small_cfg(output_activation="none")
    r = train_model(cfg, low_rank_splits(n=256), tcfg(optimizer="sgd", lr=1e6, epochs=5), on_epoch=reports.append)
    assert r.status == "diverged"
    assert r.val_loss == DIVERGED_LOSS and math.isfinite(r.train_loss)
    assert reports[-1].status == "diverged" and reports[-1].val_loss == DIVERGED_LOSS
    assert all(math.isfinite(v) for v in reports[-1].terms.values())
    assert r.epochs_completed == len(reports) < 5


def test_should_stop_abandons_the_epoch_under_way():
    """A search trial's scheduler said stop while the next epoch had begun: that epoch is dropped
    at its next batch, never reported, and the run keeps the epochs it had finished."""
    checks_in_epoch_3, reports = [], []

    def should_stop():                       # asked before every batch: stop at epoch 3's 2nd batch
        if len(reports) == 2:
            checks_in_epoch_3.append(1)
        return len(checks_in_epoch_3) >= 2

    model = build_model(small_cfg())
    r = fit(model, low_rank_splits(n=256), tcfg(epochs=6), on_epoch=reports.append, should_stop=should_stop)
    assert r.status == "stopped" and r.epochs_completed == 2 and [x.epoch for x in reports] == [1, 2]
    assert r.train_seconds == pytest.approx(sum(h.epoch_seconds for h in r.history))
    stopped_at_once = fit(build_model(small_cfg()), low_rank_splits(n=256), tcfg(epochs=3), should_stop=lambda: True)
    assert stopped_at_once.status == "stopped" and stopped_at_once.epochs_completed == 0


def test_train_model_seeds_before_building(monkeypatch):
    import tunekae.train as engine
    seen = {}
    monkeypatch.setattr(engine, "fit", lambda model, splits, cfg, on_epoch=None: seen.setdefault("model", model))
    torch.manual_seed(12345)   # whatever the global state was, the seed decides the weights
    train_model(small_cfg(), low_rank_splits(n=64), tcfg(seed=3))
    seed_everything(3)
    expected = build_model(small_cfg())
    for (name, a), b in zip(seen["model"].state_dict().items(), expected.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "lbfgs"])
def test_nan_output_diverges_in_the_first_epoch(optimizer):
    seed_everything(0)
    model = build_model(small_cfg())
    with torch.no_grad():
        model.decoder[0].weight.fill_(float("nan"))
    reports = []
    r = fit(model, low_rank_splits(n=128), tcfg(optimizer=optimizer, epochs=3), on_epoch=reports.append)
    assert r.status == "diverged" and r.epochs_completed == 1
    assert [h.status for h in reports] == ["diverged"] and reports[0].val_loss == DIVERGED_LOSS
    assert reports[0].train_loss == DIVERGED_LOSS


def test_nan_kan_model_with_grid_update_diverges_without_raising():
    seed_everything(0)
    model = build_model(small_cfg("kan"))
    with torch.no_grad():
        model.encoder[0].base_weight.fill_(float("nan"))
    r = fit(model, low_rank_splits(n=128), tcfg(epochs=3, grid_update_epochs=2))
    assert r.status == "diverged" and r.val_loss == DIVERGED_LOSS


def test_on_epoch_returning_false_stops():
    seen = []

    def on_epoch(report: EpochReport):
        seen.append(report.epoch)
        return report.epoch < 2   # None and True continue; False stops

    r = train_model(small_cfg(), low_rank_splits(n=128), tcfg(epochs=6), on_epoch=on_epoch)
    assert r.status == "stopped" and r.epochs_completed == 2 and seen == [1, 2]
    assert r.train_seconds == pytest.approx(sum(h.epoch_seconds for h in r.history))
    assert r.seconds_per_epoch == pytest.approx(r.train_seconds / 2)
    assert r.history[-1].train_seconds == pytest.approx(r.train_seconds)


def test_threads_never_exceed_the_cores():
    cores = available_cpus()
    assert resolve_threads(None) == cores
    assert resolve_threads(10_000) == cores
    assert resolve_threads(1) == 1
    inside = []
    before = torch.get_num_threads()
    train_model(small_cfg(), low_rank_splits(n=64), tcfg(epochs=1, threads=10_000),
                on_epoch=lambda r: inside.append(torch.get_num_threads()))
    assert inside == [cores]
    assert torch.get_num_threads() == before   # fit restores the caller's setting


def test_denoising_corrupts_the_input_and_scores_the_clean_target(monkeypatch):
    import tunekae.train
    # the untimed warm-up steps a deep copy of the model, which would carry these recording hooks
    monkeypatch.setattr(tunekae.train, "warm_up_device", lambda *a: None)
    splits = low_rank_splits(n=128)
    seed_everything(0)
    model = build_model(small_cfg(noise="salt_pepper", noise_level=0.5))
    seen = []
    original = model.loss_terms

    def recording(x_clean, out):
        terms = original(x_clean, out)
        seen.append((x_clean.detach().clone(), float(terms["recon"].detach()),
                     float(torch.nn.functional.mse_loss(out.recon.detach(), x_clean))))
        return terms

    inputs = []
    model.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach().clone()) if m.training else None)
    model.loss_terms = recording
    r = fit(model, splits, tcfg(epochs=1, batch_size=32))
    assert len(seen) == len(inputs) == 4
    clean_rows = {tuple(row.tolist()) for row in splits.train_x}
    for (target, recon, mse_clean), x_in in zip(seen, inputs):
        assert all(tuple(row.tolist()) in clean_rows for row in target)   # the target is the clean batch
        assert not torch.equal(x_in, target)                              # the input is corrupted
        assert ((x_in == 0) | (x_in == 1)).float().mean() > 0.4           # salt and pepper at rate 0.5
        assert recon == pytest.approx(mse_clean)
    assert r.train_loss == pytest.approx(sum(s[1] * len(s[0]) for s in seen) / 128, rel=1e-5)


def test_kan_grid_update_moves_the_knots_and_training_continues():
    splits = low_rank_splits(n=256)
    seed_everything(0)
    model = build_model(small_cfg("kan"))
    before = [layer.grid.clone() for layer in model.kan_layers()]
    assert update_kan_grids(model, splits.train_x[:200])
    assert all(not torch.equal(b, layer.grid) for b, layer in zip(before, model.kan_layers()))

    calls = []
    import tunekae.train as engine
    real = engine.update_kan_grids
    engine.update_kan_grids = lambda m, x: calls.append(len(x)) or real(m, x)
    try:
        r = train_model(small_cfg("kan"), splits, tcfg(epochs=3, grid_update_epochs=2))
    finally:
        engine.update_kan_grids = real
    assert calls == [256, 256] and r.status == "ok"
    assert r.history[-1].val_loss < r.history[0].val_loss


def test_cosine_schedule_and_gradient_clipping_train():
    r = train_model(small_cfg(), low_rank_splits(n=256), tcfg(epochs=3, cosine=True, grad_clip=0.5))
    assert r.status == "ok" and r.history[-1].val_loss < r.history[0].val_loss


def test_compile_failure_falls_back_to_eager(monkeypatch):
    def broken(fn, **kw):
        def call(*a, **k):
            raise RuntimeError("inductor exploded")
        return call
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        r = train_model(small_cfg(), low_rank_splits(n=128), tcfg(epochs=2, compile=True))
    assert r.status == "ok"


def test_reconstruction_loss_is_the_mean_per_pixel_mse():
    seed_everything(0)
    model = build_model(small_cfg())
    x = low_rank_splits(n=64).train_x
    with torch.no_grad():
        expected = float(((model.reconstruct(x) - x) ** 2).mean())
    assert reconstruction_loss(model, x, batch_size=10) == pytest.approx(expected, rel=1e-6)
    assert model.training


def test_train_config_rejects_bad_values():
    for bad in ({"optimizer": "rmsprop"}, {"lr": 0}, {"epochs": 0}, {"batch_size": -1}, {"threads": 0}):
        with pytest.raises(ValueError):
            TrainConfig(**bad)


# ----------------------------------------------------------------------------- the CLI
def test_cli_train_json_on_digits(run_cli, tmp_path):
    save = tmp_path / "model.pt"
    code, out, err = run_cli("train", "--dataset", "digits", "--epochs", "2", "--lr", "1e-2", "--threads", "1",
                             "--batch-size", "32", "--hidden", "32", "--json", "--save", save)
    assert code == 0, err
    info = json.loads(out)
    for key in ("params", "flops", "epochs", "train_seconds", "seconds_per_epoch", "val_loss", "test_loss",
                "status", "hidden", "family", "psnr", "knn_acc", "denoise_sp_mse", "peak_mem_mb", "history"):
        assert key in info, key
    assert info["status"] == "ok" and info["epochs"] == 2 and info["hidden"] == [32]
    assert info["params"] == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 32 + 32 + 32 * 64 + 64
    assert "epoch   2/2" in err   # progress on stderr, one JSON object on stdout
    blob = torch.load(save, weights_only=False)
    model = build_model(ModelConfig.from_dict(blob["model_config"]))
    model.load_state_dict(blob["state_dict"])
    assert blob["train_config"]["epochs"] == 2


def test_cli_train_budget_solves_widths(run_cli):
    code, out, err = run_cli("train", "--family", "kae", "--order", "2", "--budget", "3x", "--epochs", "2",
                             "--lr", "1e-2", "--batch-size", "32", "--threads", "1")
    assert code == 0, err
    assert "epoch   2/2" in out and "test metrics: test_loss" in out


@pytest.mark.parametrize("argv,fragment", [
    (["--hidden", "8", "--budget", "1000"], "not both"),
    (["--dataset", "no-such-data"], "unknown dataset"),
    (["--family", "kae", "--order", "3", "--budget", "100"], "infeasible"),
    (["--lr", "0"], "lr must be > 0"),
    (["--device", "foo"], "unknown device"),
])
def test_cli_train_bad_input_exits_2_with_one_line(run_cli, argv, fragment):
    code, out, err = run_cli("train", *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and fragment in err


@pytest.mark.parametrize("family,variant,optimizer", [("linear", "vae", "adam"), ("kan", "ae", "lbfgs"),
                                                      ("kae", "ae", "sgd")])
def test_the_untimed_device_warm_up_leaves_the_run_exactly_as_it_was(monkeypatch, family, variant, optimizer):
    # fit() takes one step on a copy of the model before its clock starts (first-step costs
    # must not land in the first trial's training seconds); the run itself must not change:
    # same weights, same losses, same RNG draws (VAE noise) as with no warm-up at all.
    import tunekae.train as train
    splits = low_rank_splits()
    cfg = tcfg(optimizer=optimizer, lr=0.5 if optimizer != "adam" else 1e-2,
               batch_size=0 if optimizer == "lbfgs" else 64, epochs=2)
    calls = []
    real = train.warm_up_device
    monkeypatch.setattr(train, "warm_up_device", lambda *a: calls.append(a) or real(*a))

    def run():
        seed_everything(3)
        model = build_model(small_cfg(family, variant))
        result = fit(model, splits, cfg)
        return [r.train_loss for r in result.history] + [result.val_loss], model.state_dict()

    warmed, warmed_state = run()
    assert len(calls) == 1 and calls[0][3].shape == (256 if optimizer == "lbfgs" else 64, 16)   # a batch, at most 256
    monkeypatch.setattr(train, "warm_up_device", lambda *a: None)
    cold, cold_state = run()
    assert warmed == cold
    assert all(torch.equal(warmed_state[k], cold_state[k]) for k in cold_state)


def test_the_device_warm_up_steps_a_copy_not_the_model():
    from tunekae.train import warm_up_device
    model = build_model(small_cfg("linear", "vae"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    x = low_rank_splits().train_x[:64]
    warm_up_device(model, tcfg(), torch.device("cpu"), x, x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_cli_train_calls_a_run_at_the_mean_image_collapsed(run_cli):
    """Six steps of the paper's recipe on digits leave the KAE near its start, worse than
    predicting the mean image: the run says so and exits 1, it is not 'ok'."""
    code, out, err = run_cli("train", "--family", "kae", "--order", "3", "--dataset", "digits", "--epochs", "1",
                             "--threads", "1", "--json")
    info = json.loads(out)
    assert code == 1 and info["status"] == "collapsed"
    assert info["test_loss"] >= 0.95 * info["mean_image_mse"] > 0
    code, out, err = run_cli("train", "--family", "kae", "--order", "3", "--dataset", "digits", "--epochs", "5",
                             "--lr", "1e-2", "--threads", "1", "--json")
    info = json.loads(out)
    assert code == 0 and info["status"] == "ok" and info["test_loss"] < 0.9 * info["mean_image_mse"]


def test_a_denoiser_is_validated_on_noisy_inputs_against_the_clean_ones():
    from tunekae.models import corrupt
    from tunekae.train import _VAL_NOISE_SEED
    splits = low_rank_splits()
    cfg = small_cfg(noise="gaussian", noise_level=0.6)
    r = train_model(cfg, splits, tcfg(epochs=3))
    noisy = corrupt(splits.val_x, "gaussian", 0.6, torch.Generator().manual_seed(_VAL_NOISE_SEED))
    assert r.val_loss == pytest.approx(reconstruction_loss(r.model, noisy, splits.val_x), rel=1e-6)
    assert r.val_loss > reconstruction_loss(r.model, splits.val_x) * 1.01   # harder than the clean inputs


@pytest.mark.parametrize("variant,extra", [("vae", {"kl"}), ("beta_vae", {"kl"}), ("derp_vae", {"kl", "ks"}),
                                           ("wae_mmd", {"mmd"}), ("ae", set())])
def test_each_epoch_reports_the_variants_own_terms_on_validation(variant, extra):
    splits = low_rank_splits(n=256)
    reports = []
    r = train_model(small_cfg("linear", variant, beta=2.0), splits, tcfg(epochs=3), on_epoch=reports.append)
    assert r.status == "ok"
    for rep in reports:
        if not extra:     # the objective on val is the reconstruction: nothing else to compute
            assert rep.val_terms == {}
            continue
        assert set(rep.val_terms) == extra | {"loss"}
        # known answer: the objective is the reconstruction of the posterior mean (val_loss)
        # plus each term at its weight
        weights = r.model.weighted_terms()
        expected = rep.val_loss + sum(weights[k] * rep.val_terms[k] for k in extra)
        assert rep.val_terms["loss"] == pytest.approx(expected, rel=1e-5)
    if "kl" in extra:     # the same KL per sample as the final metrics compute from the posterior
        from tunekae.metrics import kl_per_sample
        with torch.no_grad():
            mu, logvar = r.model.eval().posterior(splits.val_x)
        assert reports[-1].val_terms["kl"] == pytest.approx(kl_per_sample(mu, logvar), rel=1e-5)


def test_validation_terms_do_not_move_the_training_rng():
    """The WAE's prior samples on val come from a forked RNG: training's draws are the same with
    or without them, and the same val gives the same mmd every epoch."""
    from tunekae.train import validation_terms
    splits = low_rank_splits(n=128)
    model = build_model(small_cfg("linear", "wae_mmd"))
    torch.manual_seed(1)
    without = torch.rand(3)
    torch.manual_seed(1)
    first = validation_terms(model, splits.val_x, splits.val_x)
    with_terms = torch.rand(3)
    assert torch.equal(without, with_terms)
    assert validation_terms(model, splits.val_x, splits.val_x) == first and first["mmd"] != 0
