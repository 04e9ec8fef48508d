"""Exact parameter counts against the published numbers, and the width solver."""
import json

import pytest

from tunekae.budget import (InfeasibleBudget, config_params, count_flops, count_params, feasible_shapes,
                            parse_budget, solve_widths)
from tunekae.models import ModelConfig, build_model

# (input 784, latent 16) counts published by the KAE paper and its reproduction.
PUBLISHED = [
    (dict(family="linear"), 25_888),
    (dict(family="linear", hidden=(64,)), 103_328),
    (dict(family="linear", hidden=(256,)), 410_912),
    (dict(family="kae", order=3), 101_152),
    (dict(family="kae", order=5), 151_328),
    (dict(family="kae", order=3, hidden=(64,)), 410_528),
    (dict(family="kan", grid=5, order=3), 250_880),
]


@pytest.mark.parametrize("options,expected", PUBLISHED)
def test_published_counts(options, expected):
    cfg = ModelConfig(input_dim=784, latent_dim=16, **options)
    assert count_params(build_model(cfg)) == expected          # a real model, real tensors
    assert config_params(cfg) == expected                      # the solver's meta-device count


@pytest.mark.parametrize("family,options,per_edge,extra", [
    ("cheby", {"order": 4}, 5, lambda i, o: 0),                     # (D+1)*in*out
    ("rbf", {"grid": 8}, 9, lambda i, o: o + 2 * i),                # (G+1)*in*out + out + 2*in
    ("kan", {"grid": 7, "order": 2}, 11, lambda i, o: 0),           # (G+k+2)*in*out
    ("kae", {"order": 2}, 3, lambda i, o: o),                       # (p+1)*in*out + out
])
def test_layer_formulas(family, options, per_edge, extra):
    from tunekae.layers import create_layer
    for i, o in [(784, 16), (16, 784), (64, 32)]:
        assert count_params(create_layer(family, i, o, **options)) == per_edge * i * o + extra(i, o)


def test_flops_are_measured_matmul_flops():
    mlp = build_model(ModelConfig(family="linear"))
    assert count_flops(mlp, 784) == 2 * (784 * 16 + 16 * 784)
    kae = build_model(ModelConfig(family="kae", order=3))
    # powers 1..3 in one matmul per layer: 2 * 3 * (784*16 + 16*784)
    assert count_flops(kae, 784) == 2 * 3 * (784 * 16 + 16 * 784)


def test_relative_budget_is_a_multiple_of_the_single_layer_mlp():
    assert parse_budget("4x", 784, 16) == 4 * 25_888
    assert parse_budget("100k", 784, 16) == 100_000
    assert parse_budget("1.5M", 784, 16) == 1_500_000
    assert parse_budget(25888, 784, 16) == 25_888


# Each family's shape options as the search spaces sample them.
SHAPES = {
    "linear": [{}],
    "kae": [{"order": p} for p in range(1, 7)],
    "kan": [{"grid": g, "order": k} for g in range(1, 11) for k in (1, 2, 3)],
    "cheby": [{"order": d} for d in range(1, 9)],
    "rbf": [{"grid": g} for g in range(2, 13)],
}
LARGE_BUDGETS = [250_000, 410_000, 1_000_000, 2_000_000]


@pytest.mark.parametrize("family", sorted(SHAPES))
@pytest.mark.parametrize("depth", [1, 2])
def test_solver_hits_budgets_within_2_percent(family, depth):
    """From 250k to 2M every family reaches every budget at depth 1 and 2 within 2%, with widths
    whose real parameter count is the one reported."""
    base = ModelConfig(family=family, input_dim=784, latent_dim=16)
    for budget in LARGE_BUDGETS:
        shapes = feasible_shapes(base, budget, depth, SHAPES[family])
        assert shapes, f"{family} depth {depth} cannot reach {budget}"
        for shape in shapes:
            m = solve_widths(base.replace(**shape), budget, depth)
            assert len(m.hidden) == depth
            assert abs(m.rel_error) <= 0.02
            assert config_params(base.replace(hidden=m.hidden, **shape)) == m.params


@pytest.mark.parametrize("family", sorted(SHAPES))
def test_small_budgets_are_reachable_at_some_depth(family):
    """From 25k to ~100k each family reaches the paper's budgets at depth 1 or 2 with some shape
    option. Bias-free KAN-like layers cost (coefficients per edge) * 1,600 per hidden unit at
    784/16, so some budgets in between are unreachable for them (e.g. kan at 50,000 would need
    G+k+2 = 31): the solver reports those as infeasible, which the next test checks."""
    base = ModelConfig(family=family, input_dim=784, latent_dim=16)
    for budget in [25_000, 50_000, 101_152] if family in ("linear", "kae", "rbf") else [25_888, 101_152]:
        reachable = [(d, s) for d in (1, 2) for s in feasible_shapes(base, budget, d, SHAPES[family])]
        assert reachable, f"{family} cannot reach {budget} at depth 1 or 2"
    assert solve_widths(ModelConfig(family="linear"), 25_888, depth=0).params == 25_888


def test_solver_prefers_equal_widths_and_keeps_a_funnel():
    m = solve_widths(ModelConfig(family="linear"), 103_328, depth=1)
    assert m.hidden == (64,) and m.params == 103_328
    m = solve_widths(ModelConfig(family="linear"), 400_000, depth=2)
    assert m.hidden[0] == m.hidden[1]
    m = solve_widths(ModelConfig(family="kae", order=3), 250_000, depth=2)
    assert 16 <= m.hidden[-1] <= m.hidden[0]


def test_infeasible_budget_names_the_reachable_range():
    with pytest.raises(InfeasibleBudget) as e:
        solve_widths(ModelConfig(family="kae", order=3), 25_888, depth=0)
    msg = str(e.value)
    assert "infeasible" in msg and "101,152" in msg and "change the budget" in msg
    assert e.value.nearest == (101_152,)                   # depth 0: one model, above the budget
    kan = ModelConfig(family="kan", grid=5, order=3)
    with pytest.raises(InfeasibleBudget, match="nearest widths give") as e:
        solve_widths(kan, 100_000, depth=1)
    below, above = e.value.nearest                         # one hidden unit apart, either side
    assert below < 100_000 < above and above - below == solve_widths(kan, above, 1, 0).params - below
    assert solve_widths(kan, below, 1, 0).hidden[0] + 1 == solve_widths(kan, above, 1, 0).hidden[0]
    with pytest.raises(InfeasibleBudget, match=r"give 16,000 \(1,600x the budget\) parameters"):
        solve_widths(kan, 10, depth=1)                     # a ratio, not +159900.0%


def test_describe_cli_json(run_cli):
    code, out, err = run_cli("describe", "--family", "kae", "--order", 3, "--hidden", 64, "--latent", 16,
                             "--input-dim", 784, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["params"] == 410_528 and info["hidden"] == [64] and info["latent"] == 16
    assert info["family"] == "kae" and info["flops"] > 0


def test_describe_cli_table(run_cli):
    code, out, _ = run_cli("describe", "--family", "kan", "--grid", 5, "--order", 3)
    assert code == 0 and "250,880" in out and "BSplineKANLayer" in out


def test_match_cli_json_and_infeasible(run_cli):
    code, out, err = run_cli("match", "--family", "kan", "--budget", 410_000, "--input-dim", 784,
                             "--latent", 16, "--grid", 5, "--order", 3, "--depth", 1, "--json")
    assert code == 0, err
    m = json.loads(out)
    assert {"hidden", "params", "budget", "rel_error"} <= set(m)
    assert m["budget"] == 410_000 and abs(m["rel_error"]) <= 0.02
    code, out, err = run_cli("match", "--family", "kae", "--order", 6, "--budget", 25888, "--depth", 0)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "infeasible" in err and "Traceback" not in err


def test_cli_usage_errors_exit_2_with_one_line(run_cli):
    for argv in (["match", "--family", "kae", "--budget", "lots"],
                 ["describe", "--hidden", "0"],
                 ["describe", "--family", "transformer"]):
        code, out, err = run_cli(*argv)
        assert code == 2, argv
        assert len(err.strip().splitlines()) == 1 and "error" in err
