"""pykan's pruning for networks of B-spline KAN layers (pykan 0.2.8, MultKAN.attribute / prune).

Attribution, from the outputs back (on a batch x):
    edge score e[k, i, j] = std_batch(phi_ij) * n[k, i] / (std_batch(y_i) + 1e-4)
    node score n[k, j]    = sum_i e[k, i, j]            (n starts as the identity at the outputs)
where phi_ij is the activation on the edge from input j to output i of a layer and y_i that
output (the sum of its edges); the scores are averaged over the outputs k. prune(): a hidden node
whose score is at most node_th is removed (every edge into or out of it), then, with the scores
computed again, every edge whose score is at most edge_th. Nothing is retrained, as in pykan.
Removal is a mask on the layer (tunekae.layers.kan); a pruned network's parameter count is that
of its edges still alive, (G + k + 2) each.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

NODE_TH, EDGE_TH = 1e-2, 3e-2     # pykan's prune() defaults


@dataclass(frozen=True)
class Pruned:
    params_before: int
    params_after: int
    edges_before: int
    edges_after: int
    nodes_removed: int


def kan_chain(model) -> list:
    """The model's KAN layers, when it is a chain of them and nothing else (pykan's networks)."""
    from .layers.kan import BSplineKANLayer
    net = getattr(model, "net", None)
    layers = list(net) if net is not None else []
    if not layers or not all(isinstance(m, BSplineKANLayer) for m in layers):
        raise ValueError("pruning needs a regressor made of KAN layers only (family kan, no activation between "
                         "layers, output activation none), as pykan's networks are")
    return layers


@torch.no_grad()
def attribution(model, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(edge scores (out, in) per layer, node scores (in,) of each layer's inputs), pykan's way."""
    layers = kan_chain(model)
    inputs, h = [], x
    for layer in layers:
        inputs.append(h)
        h = layer(h)
    node = torch.eye(layers[-1].out_features, dtype=x.dtype, device=x.device)     # (k, outputs)
    edges, nodes = [None] * len(layers), [None] * len(layers)
    for l in range(len(layers) - 1, -1, -1):
        layer, inp = layers[l], inputs[l]
        edge_std = layer.edge_stds(inp)                                  # (out, in)
        out_std = layer(inp).std(dim=0)                                  # (out,)
        e = torch.einsum("ij,ki,i->kij", edge_std, node, 1 / (out_std + 1e-4))
        node = e.sum(dim=1)                                              # (k, in)
        edges[l], nodes[l] = e.mean(dim=0), node.mean(dim=0)
    return edges, nodes


@torch.no_grad()
def prune(model, x: torch.Tensor, node_th: float = NODE_TH, edge_th: float = EDGE_TH) -> Pruned:
    """Prune `model` in place on the batch x (pykan: the training inputs)."""
    layers = kan_chain(model)
    before_edges = sum(int(l.active_edges().sum()) for l in layers)
    before = sum(layer_params(l) for l in layers)
    _, nodes = attribution(model, x)
    removed = 0
    for l in range(1, len(layers)):              # the inputs of layer l are hidden nodes
        dead = nodes[l] <= node_th
        removed += int(dead.sum())
        layers[l - 1].restrict(rows=~dead)       # no edge into a dead node ...
        layers[l].restrict(cols=~dead)           # ... and none out of it
    edges, _ = attribution(model, x)
    for layer, score in zip(layers, edges):
        layer.restrict(edges=score > edge_th)
    return Pruned(before, sum(layer_params(l) for l in layers), before_edges,
                  sum(int(l.active_edges().sum()) for l in layers), removed)


def layer_params(layer) -> int:
    """Trainable parameters of a KAN layer's live edges: base weight, scaler and G + k spline weights each."""
    return int(layer.active_edges().sum()) * (layer.grid_size + layer.spline_order + 2)


def pruned_metrics(model, splits, split: str) -> dict:
    """Prune a copy of a trained model on the training inputs (pykan prunes on its training data)
    and score it on `split`: {"pruned_params", "pruned_edges", "pruned_<split>_loss"}. A model that
    is not a chain of KAN layers has nothing to prune: its own count and loss."""
    import copy

    from .budget import count_params
    from .train import reconstruction_loss
    twin = copy.deepcopy(model).eval()
    x, target = splits.xy(split)[0], splits.target(split)
    device = next(twin.parameters()).device
    try:
        result = prune(twin, splits.train_x.to(device))
        params, edges = result.params_after, result.edges_after
    except ValueError:
        params, edges = count_params(model), None
    out = {"pruned_params": params, f"pruned_{split}_loss": reconstruction_loss(twin, x, target)}
    if edges is not None:
        out["pruned_edges"] = edges
    return out
