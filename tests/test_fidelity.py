"""Each layer family is its reference implementation: seeded alike, its initial parameters are the
reference's own draws (or follow its formula), and its forward pass equals a slow evaluation
written the way the reference code does it (order by order, basis by basis, edge by edge) on the
same weights. References: the KAE authors' KAELayer, ChebyKAN, efficient-kan's KANLinear (and
pykan 0.2.8 itself for the B-spline edges and the regularizer), FastKAN."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tunekae.layers import create_layer
from tunekae.models import ModelConfig, build_model


def test_kae_init_is_the_authors_draw():
    """KAELayer: coeffs = torch.randn(out, in, p+1) * 0.01, bias = zeros."""
    torch.manual_seed(7)
    layer = create_layer("kae", 30, 12, order=3)
    torch.manual_seed(7)
    expected = torch.randn(12, 30, 4) * 0.01
    assert torch.equal(layer.coefficients.detach().permute(0, 2, 1), expected)
    assert torch.equal(layer.bias.detach(), torch.zeros(12))


def test_kae_forward_is_the_authors_order_by_order_sum():
    torch.manual_seed(0)
    layer = create_layer("kae", 9, 5, order=4)
    with torch.no_grad():
        layer.bias.normal_()          # a zero bias would not test its use
    coeffs = layer.coefficients.detach().permute(0, 2, 1)      # the authors' (out, in, p+1)
    x = torch.rand(11, 9) * 2 - 1
    # KAELayer.forward: expand to (batch, out, in), add sum_in x^i * coeffs[:, :, i] for i = 0..p
    x_expanded = x.unsqueeze(1).expand(-1, 5, -1)
    y = torch.zeros(11, 5)
    for i in range(5):
        y += ((x_expanded ** i) * coeffs[:, :, i]).sum(dim=-1)
    y += layer.bias.detach()
    assert torch.allclose(layer(x), y, atol=1e-5)


def test_kae_model_is_the_papers_architecture():
    """StandardAE with hidden_dims [64]: KAE-ReLU-KAE-ReLU | KAE-ReLU-KAE-Sigmoid, 410,528 params."""
    model = build_model(ModelConfig(family="kae", order=3, hidden=(64,)))
    kinds = [type(m).__name__ for m in model.encoder] + ["|"] + [type(m).__name__ for m in model.decoder]
    assert kinds == ["PolynomialLayer", "ReLU", "PolynomialLayer", "ReLU", "|",
                     "PolynomialLayer", "ReLU", "PolynomialLayer", "Sigmoid"]
    assert sum(p.numel() for p in model.parameters()) == 410_528
    # the named departure: no activation between KAE layers
    flat = build_model(ModelConfig(family="kae", order=3, hidden=(64,), hidden_activation="none"))
    assert [type(m).__name__ for m in flat.encoder] == ["PolynomialLayer", "PolynomialLayer", "ReLU"]


def test_cheby_init_is_chebykans_draw():
    """ChebyKANLayer: cheby_coeffs (in, out, D+1) ~ N(0, (1/(in*(D+1)))^2)."""
    torch.manual_seed(3)
    layer = create_layer("cheby", 40, 10, order=4)
    torch.manual_seed(3)
    expected = torch.empty(40, 10, 5)
    torch.nn.init.normal_(expected, mean=0.0, std=1 / (40 * 5))
    assert torch.equal(layer.coefficients.detach().permute(1, 0, 2), expected)
    big = create_layer("cheby", 200, 100, order=3).coefficients.detach()
    assert abs(float(big.std()) / (1 / (200 * 4)) - 1) < 0.02


def test_cheby_forward_is_chebykans_acos_cos_einsum():
    torch.manual_seed(0)
    layer = create_layer("cheby", 6, 4, order=5)
    coeffs = layer.coefficients.detach().permute(1, 0, 2)       # ChebyKAN's (in, out, D+1)
    x = torch.randn(13, 6) * 2
    t = torch.tanh(x).view(-1, 6, 1).expand(-1, -1, 6).acos() * torch.arange(0, 6)
    y = torch.einsum("bid,iod->bo", t.cos(), coeffs)
    assert torch.allclose(layer(x), y, atol=1e-5)


def efficient_kan_draws(in_f: int, out_f: int, G: int, seed: int):
    """The random draws of efficient-kan's reset_parameters, in its order."""
    torch.manual_seed(seed)
    base = torch.empty(out_f, in_f)
    torch.nn.init.kaiming_uniform_(base, a=math.sqrt(5))
    noise = (torch.rand(G + 1, in_f, out_f) - 0.5) * 0.1 / G
    scaler = torch.empty(out_f, in_f)
    torch.nn.init.kaiming_uniform_(scaler, a=math.sqrt(5))
    return base, noise, scaler


def scipy_spline(knots: torch.Tensor, coef: torch.Tensor, k: int, x: np.ndarray) -> np.ndarray:
    from scipy.interpolate import BSpline
    return BSpline(knots.double().numpy(), coef.detach().double().numpy(), k, extrapolate=False)(x)


@pytest.mark.parametrize("G,k", [(5, 3), (3, 2), (8, 1)])
def test_kan_init_is_efficient_kans(G, k):
    """W_base and the scaler are efficient-kan's draws; W_spline's curves pass through its noise
    at the G+1 interior knots (curve2coeff's least-squares fit)."""
    layer = (torch.manual_seed(11), create_layer("kan", 7, 4, grid=G, order=k))[1]
    base, noise, scaler = efficient_kan_draws(7, 4, G, seed=11)
    assert torch.equal(layer.base_weight.detach(), base)
    assert torch.equal(layer.spline_scaler.detach(), scaler)
    knots = layer.grid[0]
    interior = knots[k:len(knots) - k].numpy()
    for i in range(7):
        for j in range(4):
            at_knots = scipy_spline(knots, layer.spline_weight[j, i], k, interior)
            assert np.allclose(at_knots, noise[:, i, j].numpy(), atol=1e-6)
    assert float(noise.abs().max()) <= 0.05 / G


def test_kan_forward_is_the_sum_of_its_edge_functions():
    """phi_ji(x) = W_base silu(x) + scaler * spline_ji(x), each spline evaluated alone by scipy."""
    torch.manual_seed(0)
    layer = create_layer("kan", 3, 2, grid=5, order=3)
    with torch.no_grad():
        layer.spline_weight.normal_()
    x = torch.rand(17, 3) * 1.98 - 0.99
    expected = np.zeros((17, 2))
    for j in range(2):
        for i in range(3):
            spline = scipy_spline(layer.grid[i], layer.spline_weight[j, i], 3, x[:, i].double().numpy())
            expected[:, j] += (layer.base_weight[j, i].item() * F.silu(x[:, i]).double().numpy()
                               + layer.spline_scaler[j, i].item() * spline)
    assert np.allclose(layer(x).detach().double().numpy(), expected, atol=1e-5)


def pykan_layer_like(layer, seed=0):
    """A pykan 0.2.8 one-layer KAN carrying `layer`'s weights (pykan: coef, scale_base, scale_sp
    are (in, out, ...) where efficient-kan has (out, in, ...))."""
    from kan import KAN
    model = KAN(width=[layer.in_features, layer.out_features], grid=layer.grid_size, k=layer.spline_order,
                seed=seed, auto_save=False)
    act = model.act_fun[0]
    with torch.no_grad():
        assert torch.allclose(act.grid, layer.grid)
        act.coef.copy_(layer.spline_weight.detach().permute(1, 0, 2))
        act.scale_base.copy_(layer.base_weight.detach().T)
        act.scale_sp.copy_(layer.spline_scaler.detach().T)
    return model


def test_kan_forward_equals_pykans_with_the_same_weights():
    torch.manual_seed(1)
    layer = create_layer("kan", 4, 3, grid=5, order=3)
    model = pykan_layer_like(layer)
    x = torch.rand(50, 4) * 1.9 - 0.95
    assert torch.allclose(layer(x), model(x), atol=1e-5)


@pytest.mark.parametrize("lamb_entropy", [0.0, 2.0, 10.0])
def test_kan_regularizer_is_pykans(lamb_entropy):
    """pykan's reg('edge_forward_spline_n', lamb_l1=1, lamb_entropy) on the batch, equal to ours."""
    torch.manual_seed(2)
    layer = create_layer("kan", 5, 3, grid=5, order=3)
    with torch.no_grad():
        layer.spline_weight.normal_(std=0.3)   # edges of different sizes
    model = pykan_layer_like(layer)
    x = torch.rand(64, 5) * 1.8 - 0.9
    model.save_act = True
    model(x)
    expected = model.reg("edge_forward_spline_n", 1.0, lamb_entropy, 0.0, 0.0)
    layer.track_input = True
    layer(x)
    l1, entropy = layer.regularization("activation")
    assert torch.allclose(l1 + lamb_entropy * entropy, expected, rtol=1e-4)


def test_kan_regularizer_without_the_big_tensor_equals_the_direct_one():
    """edge_scales from feature covariances equals std over an explicit (batch, out, in) tensor."""
    torch.manual_seed(4)
    layer = create_layer("kan", 6, 4, grid=4, order=2)
    x = torch.randn(100, 6) * 0.6
    phi = (layer.base_weight * F.silu(x).unsqueeze(1)
           + torch.einsum("bik,oik->boi", layer.b_splines(x), layer.scaled_spline_weight))   # (batch, out, in)
    direct = phi.std(dim=0) / (x.std(dim=0) + 0.1)
    assert torch.allclose(layer.edge_scales(x), direct, rtol=1e-4, atol=1e-7)


def test_kan_regularizer_reaches_the_loss_with_pykans_weights():
    cfg = ModelConfig(family="kan", input_dim=8, latent_dim=2, grid=3, order=2, lamb=0.1, lamb_entropy=2.0)
    model = build_model(cfg)
    x = torch.rand(16, 8)
    terms = model.loss_terms(x, model(x))
    assert torch.allclose(terms["loss"], terms["recon"] + 0.1 * (terms["kan_l1"] + 2.0 * terms["kan_entropy"]))
    terms["loss"].backward()   # through the saved layer inputs, once
    assert all(layer.last_input is None for layer in model.kan_layers())
    weights = build_model(cfg.replace(kan_reg="weights"))
    terms = weights.loss_terms(x, weights(x))
    assert {"kan_l1", "kan_entropy"} <= set(terms) and terms["loss"] > terms["recon"]


def test_rbf_init_and_forward_are_fastkans():
    """FastKANLayer: spline weight trunc_normal(std 0.1), then base nn.Linear; LayerNorm -> Gaussian
    RBFs on linspace(-2, 2, G) with denominator (4 / (G-1)) -> bias-free linear, + base(silu(x))."""
    torch.manual_seed(5)
    layer = create_layer("rbf", 6, 3, grid=8)
    torch.manual_seed(5)
    spline = torch.empty(3, 6 * 8)
    torch.nn.init.trunc_normal_(spline, mean=0, std=0.1)
    base = torch.nn.Linear(6, 3)
    assert torch.equal(layer.spline_weight.detach(), spline)
    assert torch.equal(layer.base.weight.detach(), base.weight.detach())
    x = torch.randn(9, 6)
    h = torch.nn.functional.layer_norm(x, (6,))
    rbf = torch.exp(-((h[..., None] - torch.linspace(-2, 2, 8)) / (4 / 7)) ** 2)
    y = rbf.view(9, -1) @ spline.T + base(F.silu(x))
    assert torch.allclose(layer(x), y, atol=1e-5)


@pytest.mark.parametrize("family,shape", [("kae", {"order": 3}), ("cheby", {"order": 4}),
                                          ("kan", {"grid": 5, "order": 3}), ("rbf", {"grid": 6})])
def test_fan_in_is_a_named_departure(family, shape):
    """init='fan_in' draws the basis coefficients U(+-1/sqrt(fan_in)); never the default."""
    torch.manual_seed(0)
    ref = create_layer(family, 300, 40, **shape)
    torch.manual_seed(0)
    dep = create_layer(family, 300, 40, init="fan_in", **shape)
    name = {"kae": "coefficients", "cheby": "coefficients", "kan": "spline_weight", "rbf": "spline_weight"}[family]
    w = getattr(dep, name).detach()
    n_basis = {"kae": 3, "cheby": 5, "kan": 8, "rbf": 6}[family]
    bound = 1 / math.sqrt(300 * n_basis)
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.95 * bound
    assert not torch.equal(getattr(ref, name).detach(), w)
    assert ModelConfig().init == "reference"


@pytest.mark.parametrize("layer,hidden,cfg", [
    ("linear", (), ModelConfig(family="linear")),
    ("kae", (), ModelConfig(family="kae", order=3)),
    ("kae", (64,), ModelConfig(family="kae", order=3, hidden=(64,))),
])
def test_seeded_alike_a_model_is_the_authors_network(layer, hidden, cfg):
    """tunekae's model and the authors' StandardAE (tunekae/reference_kae.py), each built after
    the same seed with its own init: the same weights and the same reconstructions."""
    from tunekae.reference_kae import authors_autoencoder, set_seed
    set_seed(2024)
    theirs = authors_autoencoder(784, hidden, 16, layer, order=3)
    set_seed(2024)
    ours = build_model(cfg)
    assert sum(p.numel() for p in theirs.parameters()) == sum(p.numel() for p in ours.parameters())
    x = torch.rand(8, 784)
    with torch.no_grad():
        assert torch.allclose(ours.reconstruct(x), theirs(x), atol=1e-5)
