"""pykan's pruning on tunekae's B-spline KAN: the attribution scores equal pykan's own for the
same weights, and a network whose dead edges and nodes are known loses exactly those."""
import pytest
import torch

from tunekae.models import ModelConfig, build_model
from tunekae.pruning import attribution, prune


def kan(widths, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(family="kan", variant="regressor", input_dim=widths[0], hidden=tuple(widths[1:-1]),
                      output_dim=widths[-1], grid=5, order=3, output_activation="none")
    model = build_model(cfg)
    with torch.no_grad():
        for layer in model.net:
            layer.spline_weight.normal_(std=0.5)     # edges of clear, different sizes
    return model


def test_attribution_scores_are_pykans():
    from kan import KAN
    model = kan([3, 4, 2])
    theirs = KAN(width=[3, 4, 2], grid=5, k=3, seed=0, auto_save=False)
    with torch.no_grad():
        for ours, act in zip(model.net, theirs.act_fun):
            act.coef.copy_(ours.spline_weight.permute(1, 0, 2))
            act.scale_base.copy_(ours.base_weight.T)
            act.scale_sp.copy_(ours.spline_scaler.T)
    x = torch.rand(200, 3) * 1.8 - 0.9
    theirs(x)
    theirs.attribute()
    edges, nodes = attribution(model, x)
    for l in range(2):
        assert torch.allclose(edges[l], theirs.edge_scores[l], rtol=1e-3, atol=1e-6), l
        assert torch.allclose(nodes[l], theirs.node_scores[l], rtol=1e-3, atol=1e-6), l


def test_pruning_removes_exactly_the_dead_edges_and_nodes():
    """Input 2 reaches no hidden node (its edges are zero); hidden node 3 reaches no output."""
    model = kan([3, 4, 1])
    first, second = model.net
    with torch.no_grad():
        for w in (first.base_weight, first.spline_scaler):
            w[:, 2] = 0.0
        for w in (second.base_weight, second.spline_scaler):
            w[:, 3] = 0.0
    x = torch.rand(500, 3) * 1.8 - 0.9
    before = model(x).recon
    result = prune(model, x)
    expected_first = torch.ones(4, 3, dtype=torch.bool)
    expected_first[:, 2] = False     # the dead input's edges
    expected_first[3, :] = False     # every edge into the dead node
    assert torch.equal(first.active_edges(), expected_first)
    assert torch.equal(second.active_edges(), torch.tensor([[True, True, True, False]]))
    assert result.nodes_removed == 1 and (result.edges_before, result.edges_after) == (16, 9)
    assert (result.params_before, result.params_after) == (160, 90)          # 10 parameters an edge
    assert torch.allclose(model(x).recon, before, atol=1e-6)                # only dead weight was removed


def test_pruning_needs_a_network_of_kan_layers():
    mlp = build_model(ModelConfig(family="linear", variant="regressor", input_dim=2, hidden=(5,), output_dim=1))
    with pytest.raises(ValueError, match="KAN layers only"):
        prune(mlp, torch.rand(10, 2))
