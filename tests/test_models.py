"""Every layer family and VAE variant builds, trains with falling finite loss and sends
gradients to every parameter; the variant-specific terms behave as their definitions say."""
import pytest
import torch

from tunekae.layers import FAMILIES, create_layer
from tunekae.models import ModelConfig, build_model, corrupt
from tunekae.models.vae import imq_mmd, ks_statistic_normal

SHAPE = {"linear": {}, "kae": {"order": 3}, "kan": {"grid": 5, "order": 3}, "cheby": {"order": 3}, "rbf": {"grid": 6}}
VARIANTS = ["ae", "vae", "beta_vae", "derp_vae", "wae_mmd"]


def data(n=128, d=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    # low-rank structure so there is something to learn
    return torch.sigmoid(torch.randn(n, 3, generator=g) @ torch.randn(3, d, generator=g))


def train_steps(model, x, steps=60, lr=1e-2):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        terms = model.loss_terms(x, model(x))
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append({k: float(v.detach()) for k, v in terms.items()})
    return losses


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_family_and_variant_trains(family, variant):
    torch.manual_seed(0)
    x = data()
    cfg = ModelConfig(family=family, input_dim=20, latent_dim=4, hidden=(12,), variant=variant,
                      latent_activation="none", beta=0.5 if variant == "beta_vae" else 1.0, **SHAPE[family])
    model = build_model(cfg)
    # gradients reach every parameter on the first step
    model.zero_grad()
    model.loss_terms(x, model(x))["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{family}/{variant}: no gradient to {name}"
    losses = train_steps(model, x, steps=150)
    assert all(all(torch.isfinite(torch.tensor(v)) for v in step.values()) for step in losses)
    # means over ten steps: the VAE family's terms are sampled, single steps are noisy
    first, last = ({k: sum(s[k] for s in part) / len(part) for k in part[0]} for part in (losses[:10], losses[-10:]))
    if variant == "derp_vae":   # codes near the prior: the KS term is at its sampling-noise floor from the start
        first["loss"], last["loss"] = first["loss"] - first["ks"], last["loss"] - last["ks"]
    assert last["loss"] < first["loss"], f"{family}/{variant} loss did not fall"
    assert last["recon"] < first["recon"]
    if variant in ("vae", "beta_vae", "derp_vae"):
        assert all(step["kl"] >= 0 for step in losses)
    if variant == "derp_vae":
        assert "ks" in last
    if variant == "wae_mmd":
        assert "mmd" in last
    # evaluation reconstructs from the deterministic code / posterior mean
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.reconstruct(x), model.reconstruct(x))
        assert model.encode(x).shape == (128, 4)


def test_derp_term_falls_when_trained_alone():
    """The KS term is differentiable: optimizing it alone pulls the projected codes to N(0,1)."""
    torch.manual_seed(0)
    x = data(n=256)
    model = build_model(ModelConfig(family="linear", input_dim=20, latent_dim=4, hidden=(16,),
                                    variant="derp_vae", derp_probes=8, seed=3))
    with torch.no_grad():  # start far from the prior: posterior means around +3
        model.encoder[-1].bias[:4] += 3.0
    model.train()
    opt = torch.optim.Adam(model.encoder.parameters(), lr=1e-2)
    before = None
    for _ in range(150):
        ks = model.extra_terms(model(x))["ks"]
        before = float(ks.detach()) if before is None else before
        opt.zero_grad()
        ks.backward()
        opt.step()
    assert before > 0.8 and float(ks.detach()) < 0.3 * before


def test_ks_statistic_matches_scipy():
    from scipy.stats import kstest
    torch.manual_seed(0)
    s = torch.randn(500, 3) * torch.tensor([1.0, 2.0, 0.5]) + torch.tensor([0.0, 1.0, -1.0])
    ours = ks_statistic_normal(s)
    for j in range(3):
        assert abs(float(ours[j]) - kstest(s[:, j].numpy(), "norm").statistic) < 1e-5


def test_derp_probes_are_fixed_by_the_seed():
    a = build_model(ModelConfig(variant="derp_vae", seed=1)).probes
    b = build_model(ModelConfig(variant="derp_vae", seed=1)).probes
    c = build_model(ModelConfig(variant="derp_vae", seed=2)).probes
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(a.norm(dim=0), torch.ones(a.shape[1]))


def test_mmd_is_small_for_matching_distributions():
    torch.manual_seed(0)
    same = imq_mmd(torch.randn(200, 4), torch.randn(200, 4))
    shifted = imq_mmd(torch.randn(200, 4) + 3, torch.randn(200, 4))
    assert abs(float(same)) < 0.05 < float(shifted)


def test_kan_basis_is_a_partition_of_unity_inside_the_grid():
    layer = create_layer("kan", 3, 2, grid=5, order=3)
    x = torch.rand(50, 3) * 1.8 - 0.9
    bases = layer.b_splines(x)
    assert bases.shape == (50, 3, 8)
    assert torch.allclose(bases.sum(-1), torch.ones(50, 3), atol=1e-5)


def test_kan_grid_update_keeps_the_function():
    torch.manual_seed(0)
    layer = create_layer("kan", 4, 3, grid=5, order=3)
    torch.nn.init.normal_(layer.spline_weight, std=0.5)
    x = torch.rand(512, 4) * 1.6 - 0.8
    before = layer(x)
    layer.update_grid(x)
    assert torch.allclose(layer(x), before, atol=0.05)
    assert layer.grid[0, 3] > -1.0  # knots moved to the data's range


def test_regularizers_dropout_latent_l1():
    cfg = ModelConfig(input_dim=10, latent_dim=3, hidden=(8, 6), dropout=0.3, latent_l1=0.5)
    model = build_model(cfg)
    # between hidden layers: 10->8->6->3 and 3->6->8->10 each have two gaps
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 4
    x = torch.rand(8, 10)
    terms = model.loss_terms(x, model(x))
    assert torch.isclose(terms["loss"], terms["recon"] + 0.5 * terms["latent_l1"])


def test_corruption_kinds():
    g = torch.Generator().manual_seed(0)
    x = torch.full((200, 100), 0.5)
    sp = corrupt(x, "salt_pepper", 0.1, g)
    frac0, frac1 = (sp == 0).float().mean(), (sp == 1).float().mean()
    assert abs(frac0 - 0.05) < 0.01 and abs(frac1 - 0.05) < 0.01
    gauss = corrupt(x, "gaussian", 0.1, g)
    assert 0 <= gauss.min() and gauss.max() <= 1 and abs(float((gauss - x).std()) - 0.1) < 0.01
    assert corrupt(x, "none", 0.3) is x


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="hidden_activation"):
        ModelConfig(hidden_activation="swish")
    with pytest.raises(ValueError, match="variant"):
        ModelConfig(variant="gan")
    with pytest.raises(ValueError, match="unknown layer family"):
        build_model(ModelConfig(family="transformer"))
