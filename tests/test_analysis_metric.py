"""`table`, `pareto` and `compare --metric NAME` on a synthetic results dir whose metrics have
known best values: higher-is-better metrics pick the highest, lower-is-better the lowest; the
direction is stated; an unknown name exits 2 with the list; Welch's CI is scipy's."""
import math

import numpy as np
import pandas as pd
import pytest
from test_analysis_cli import make_results_dir, run_analysis

from tunekae.analysis.compare import welch
from tunekae.analysis.metric_names import lookup

# Search: val_linear_acc by trial index (0-3 ran the full budget, 4-5 were stopped early and score
# best, so must never be picked); val_kl likewise, lowest at trial 2.
VAL_LINEAR = [0.50, 0.60, 0.55, 0.70, 0.99, 0.99]
VAL_KL = [5.0, 4.0, 1.0, 3.0, 0.1, 0.1]
# Confirmed: mean over seeds of each configuration (family, budget, rank). By linear_acc kae is
# best at 1x (mlp is best there by loss); by kl mlp is lowest everywhere.
LINEAR = {("mlp", 1000, 1): 0.80, ("mlp", 1000, 2): 0.82, ("kae", 1000, 1): 0.90, ("kae", 1000, 2): 0.88,
          ("mlp", 4000, 1): 0.85, ("mlp", 4000, 2): 0.84, ("kae", 4000, 1): 0.83, ("kae", 4000, 2): 0.86}
KL = {("mlp", 1000, 1): 3.0, ("mlp", 1000, 2): 2.0, ("kae", 1000, 1): 6.0, ("kae", 1000, 2): 7.0,
      ("mlp", 4000, 1): 2.5, ("mlp", 4000, 2): 2.6, ("kae", 4000, 1): 4.0, ("kae", 4000, 2): 3.5}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = make_results_dir(tmp_path_factory.mktemp("metric") / "run", models=False, studies=False)
    res = pd.read_csv(d / "results.csv", dtype={"trial_id": str})
    index = res["trial_id"].str[-5:].astype(int)
    res["val_linear_acc"] = [VAL_LINEAR[i] if i < 6 else np.nan for i in index]
    res["val_kl"] = [VAL_KL[i] if i < 6 else np.nan for i in index]
    res["my_score"] = 1.0 + index % 3
    res.to_csv(d / "results.csv", index=False)
    runs = pd.read_csv(d / "confirmed_runs.csv", dtype={"trial_id": str})
    jitter = np.tile([-0.01, 0.0, 0.01], len(runs) // 3)     # 3 seeds a configuration: mean unchanged
    key = list(zip(runs["family"], runs["budget"], runs["rank"]))
    runs["linear_acc"] = [LINEAR[k] for k in key] + jitter
    runs["kl"] = [KL[k] for k in key] + jitter
    runs.to_csv(d / "confirmed_runs.csv", index=False)
    return d


cli = run_analysis


def _trial(d, family, budget, rank):
    c = pd.read_csv(d / "confirmed.csv", dtype={"trial_id": str})
    return c[(c["family"] == family) & (c["budget"] == budget) & (c["rank"] == rank)]["trial_id"].iloc[0]


@pytest.mark.parametrize("name, table, best", [("linear_acc", LINEAR, max), ("kl", KL, min)])
def test_table_picks_each_arms_best_configuration_in_the_metrics_direction(capsys, run_dir, tmp_path, name,
                                                                             table, best):
    code, out, err = cli(capsys, "table", run_dir, "--out", tmp_path, "--metric", name, "--select", "test")
    assert code == 0, err
    assert not (tmp_path / "table.md").exists()       # the default table is not overwritten
    tab = pd.read_csv(tmp_path / f"table_{name}.csv", dtype={"trial_id": str})
    assert len(tab) == 4
    for r in tab.itertuples():
        rank = best((1, 2), key=lambda k: table[(r.family, r.budget, k)])
        assert r.trial_id == _trial(run_dir, r.family, r.budget, rank)
        assert getattr(r, name) == pytest.approx(table[(r.family, r.budget, rank)])
    md = (tmp_path / f"table_{name}.md").read_text()
    assert f"ranked by {name}: {'higher' if best is max else 'lower'}" in md
    assert f"| {name} (mean ± std) |" in md
    # Within a budget the better row comes first.
    for _, at in tab.groupby("budget"):
        values = at[name].to_list()
        assert values == sorted(values, reverse=best is max)


def test_table_select_val_uses_the_searchs_validation_metric(capsys, run_dir, tmp_path):
    code, _, err = cli(capsys, "table", run_dir, "--out", tmp_path, "--metric", "linear_acc")
    assert code == 0, err
    tab = pd.read_csv(tmp_path / "table_linear_acc.csv", dtype={"trial_id": str})
    # The confirmed configurations are trials 0 and 1 of each arm; trial 1 has the higher val_linear_acc.
    assert tab["trial_id"].str.endswith("00001").all()
    assert "best validation linear_acc" in (tmp_path / "table_linear_acc.md").read_text()


def test_table_without_confirmation_ranks_full_budget_trials(capsys, tmp_path):
    d = make_results_dir(tmp_path / "run", confirmed=False, studies=False)
    res = pd.read_csv(d / "results.csv", dtype={"trial_id": str})
    res["val_linear_acc"] = [VAL_LINEAR[i] if i < 6 else np.nan for i in res["trial_id"].str[-5:].astype(int)]
    res.to_csv(d / "results.csv", index=False)
    code, _, err = cli(capsys, "table", d, "--metric", "linear_acc")
    assert code == 0, err
    tab = pd.read_csv(d / "analysis" / "table_linear_acc.csv", dtype={"trial_id": str})
    assert tab["trial_id"].str.endswith("00003").all()          # 0.70, not the stopped trials' 0.99
    assert tab["linear_acc"].eq(0.70).all() and tab["metric_column"].eq("val_linear_acc").all()


@pytest.mark.parametrize("name, best_at_1x, word", [("linear_acc", "kae", "higher"), ("kl", "mlp", "lower")])
def test_compare_states_the_direction_and_signs_the_difference(capsys, run_dir, tmp_path, name, best_at_1x, word):
    code, out, err = cli(capsys, "compare", run_dir, "--out", tmp_path, "--metric", name, "--select", "test")
    assert code == 0, err
    assert not (tmp_path / "compare.md").exists()
    cmp = pd.read_csv(tmp_path / f"compare_{name}.csv")
    md = (tmp_path / f"compare_{name}.md").read_text()
    assert cmp["metric"].eq(name).all() and cmp["higher_is_better"].eq(word == "higher").all()
    at1 = cmp[cmp["budget"] == 1000].set_index("family")
    assert at1.loc[best_at_1x, "is_best"]
    other = at1[~at1["is_best"]].iloc[0]
    best = at1.loc[best_at_1x]
    assert other["diff_vs_best"] == pytest.approx(other[f"{name}_mean"] - best[f"{name}_mean"])
    assert (other["diff_vs_best"] < 0) == (word == "higher")    # other minus best: negative when higher wins
    assert other["ci_low"] <= other["diff_vs_best"] <= other["ci_high"]
    if name == "linear_acc":    # kae rank 1 (0.90) vs mlp rank 2 (0.82)
        assert other["diff_vs_best"] == pytest.approx(0.82 - 0.90)
    assert f"Metric: {name} ({name} of confirmed_runs.csv); {word}" in md
    assert f"best family is {best_at_1x} with test {name}" in md
    if name == "kl":
        assert "closer to the prior" in md


def test_compare_default_still_reads_test_loss(capsys, run_dir, tmp_path):
    code, _, err = cli(capsys, "compare", run_dir, "--out", tmp_path)
    assert code == 0, err
    md = (tmp_path / "compare.md").read_text()
    assert "Metric: loss (test_loss of confirmed_runs.csv); lower is better" in md
    assert "test_loss_mean" in pd.read_csv(tmp_path / "compare.csv")


@pytest.mark.parametrize("command", ["table", "compare", "pareto"])
def test_an_unknown_metric_exits_2_with_the_list(capsys, run_dir, tmp_path, command):
    out_dir = tmp_path / "never"
    code, out, err = cli(capsys, command, run_dir, "--out", out_dir, "--metric", "linear_accc")
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err and "--metric linear_accc" in err
    listed = err.split("it records: ")[1].strip().split(", ")
    assert listed[0] == "loss" and {"linear_acc", "kl", "knn_acc", "psnr", "my_score"} <= set(listed)
    assert not {"params", "budget", "rank", "seed", "trial_id"} & set(listed)
    assert not out_dir.exists()


def test_compare_of_a_metric_only_the_search_records_says_so(capsys, run_dir, tmp_path):
    code, _, err = cli(capsys, "compare", run_dir, "--out", tmp_path, "--metric", "my_score")
    assert code == 2 and "confirmed_runs.csv" in err and "my_score" in err


def test_an_unregistered_numeric_column_is_taken_as_lower_is_better(capsys, run_dir, tmp_path):
    code, out, err = cli(capsys, "table", run_dir, "--out", tmp_path, "--metric", "my_score")
    assert code == 0, err
    assert "lower is taken as better" in out
    tab = pd.read_csv(tmp_path / "table_my_score.csv")
    assert tab["my_score"].eq(1.0).all() and tab["source"].eq("search validation").all()


def test_pareto_maximises_a_higher_is_better_metric(capsys, run_dir, tmp_path):
    code, out, err = cli(capsys, "pareto", run_dir, "--out", tmp_path, "--metric", "linear_acc")
    assert code == 0, err
    for name in ("pareto_linear_acc.csv", "hypervolume_linear_acc.csv", "pareto_linear_acc_params.png",
                 "pareto_linear_acc_time.png"):
        assert (tmp_path / name).exists(), name
    assert not (tmp_path / "pareto.csv").exists()
    pts = pd.read_csv(tmp_path / "pareto_linear_acc.csv", dtype={"trial_id": str})
    assert pts["higher_is_better"].all()
    for source, column in (("search", "val_linear_acc"), ("confirmed", "linear_acc_mean")):
        sel = pts[(pts["source"] == source) & pts["full_budget"]]
        assert len(sel) and sel["loss_metric"].eq(column).all()
        assert sel.loc[sel["loss"].idxmax(), "on_front_params"]           # the maximum is never dominated
        p, v = sel["params"].to_numpy(), sel["loss"].to_numpy()
        expected = [not any(p[j] <= p[i] and v[j] >= v[i] and (p[j] < p[i] or v[j] > v[i]) for j in range(len(p)))
                    for i in range(len(p))]                             # fewer params, higher value
        assert sel["on_front_params"].to_list() == expected
        assert not all(expected)
    search = pts[pts["source"] == "search"]
    assert not search[search["stopped_early"]].filter(like="on_").any().any()
    hv = pd.read_csv(tmp_path / "hypervolume_linear_acc.csv")
    assert (hv["hypervolume"] > 0).all() and hv["hypervolume_normalised"].between(0, 1).all()
    assert "higher is better" in out


def test_welch_matches_known_numbers():
    # a: mean 2.5, s^2 5/3; b: mean 5.8, s^2 8.2. se^2 = 5/12 + 1.64; Welch-Satterthwaite df 5.7922.
    w = welch([1, 2, 3, 4], [2, 4, 6, 8, 9])
    assert w["diff"] == pytest.approx(-3.3)
    assert w["t"] == pytest.approx(-3.3 / math.sqrt(5 / 12 + 1.64))
    assert w["df"] == pytest.approx((5 / 12 + 1.64) ** 2 / ((5 / 12) ** 2 / 3 + 1.64 ** 2 / 4))
    assert w["t"] == pytest.approx(-2.301081, abs=1e-6) and w["df"] == pytest.approx(5.792208, abs=1e-6)
    assert (w["ci_low"], w["ci_high"]) == (pytest.approx(-6.839879, abs=1e-6), pytest.approx(0.239879, abs=1e-6))
    assert w["p_value"] == pytest.approx(0.062556, abs=1e-6)
    assert math.isnan(welch([1, 1], [1, 1])["p_value"]) and math.isnan(welch([1], [2, 3])["ci_low"])


def test_registry_directions():
    higher = ["knn_acc", "linear_acc", "val_linear_acc", "class_sep", "silhouette", "label_agreement", "psnr",
              "recall_at_5", "active_units", "gen_gmm_entropy", "gen_prior_confidence"]
    lower = ["loss", "val_loss", "test_loss", "kl", "val_kl", "train_kl", "ks_distance", "ks", "mmd", "objective",
             "val_objective", "train_objective", "rmse", "denoise_sp_mse", "denoise_own_mse", "gen_gmm_mmd",
             "gen_prior_mmd", "train_kan_l1", "train_kan_entropy", "val_ks", "train_latent_l1"]
    assert all(lookup(n).higher and lookup(n).known for n in higher)
    assert all(not lookup(n).higher and lookup(n).known for n in lower)
    assert lookup("val_knn_acc").name == "knn_acc" and lookup("test_loss").is_default
    assert lookup("kl").direction.startswith("lower: closer to the prior")
    unknown = lookup("my_score")
    assert not unknown.known and not unknown.higher and "assumed" in unknown.direction
