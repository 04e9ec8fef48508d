"""Families are compared within a setting (budget x latent size x training-set size), never
across: a search along an axis gets one comparison per point of it and a sentence per family
along the axis."""
import pandas as pd
from test_analysis_cli import make_results_dir

from tunekae.analysis.compare import compare_table
from tunekae.analysis.load import load
from tunekae.analysis.settings import axis_columns, trend_sentence, with_settings


def test_a_plain_search_has_one_setting_per_budget(tmp_path):
    res = load(make_results_dir(tmp_path / "run", models=False, studies=False))
    assert axis_columns(res.results) == []
    cmp = compare_table(res)
    assert sorted(cmp["setting"].unique()) == ["1,000 parameters", "4,000 parameters"]
    assert (cmp.groupby("setting")["family"].nunique() == 2).all()


def test_families_at_different_latent_sizes_are_not_compared(tmp_path):
    d = make_results_dir(tmp_path / "run", models=False, studies=False)
    results = pd.read_csv(d / "results.csv", dtype={"trial_id": str})
    results["latent_dim"] = results["family"].map({"mlp": 8, "kae": 32})
    results.to_csv(d / "results.csv", index=False)
    res = load(d)
    assert axis_columns(res.results) == ["latent_dim"]
    cmp = compare_table(res)
    assert len(cmp) == 4 and cmp["is_best"].all()          # one family per setting: nothing to test
    assert set(cmp["setting"]) == {"1,000 parameters, latent 8", "1,000 parameters, latent 32",
                                   "4,000 parameters, latent 8", "4,000 parameters, latent 32"}
    assert cmp["p_value"].isna().all()


def test_the_trend_sentence_reads_each_family_along_the_axis():
    results = pd.DataFrame({"arm": ["a", "b", "c", "d"], "latent_dim": [8, 16, 8, 16], "budget": [100] * 4})
    cmp = pd.DataFrame({"arm": ["a", "b", "c", "d"], "family": ["mlp", "mlp", "kae", "kae"], "budget": [100] * 4,
                        "test_loss_mean": [0.5, 0.25, 0.75, 0.125]})
    cmp = with_settings(cmp, results)
    assert trend_sentence(cmp, results) == ("Test MSE against latent size (100 parameters): mlp 0.5 at 8, 0.25 at 16; "
                                            "kae 0.75 at 8, 0.125 at 16.")


def test_every_metric_table_marks_the_best_family_in_each_metrics_direction(tmp_path):
    """Known answers: kae has the higher linear_acc and the lower kl at every setting."""
    import numpy as np

    from tunekae.analysis import metrics_table
    d = make_results_dir(tmp_path / "run", models=False, studies=False)
    runs = pd.read_csv(d / "confirmed_runs.csv", dtype={"trial_id": str})
    jitter = np.tile([-0.01, 0.0, 0.01], len(runs) // 3)
    runs["linear_acc"] = runs["family"].map({"mlp": 0.7, "kae": 0.9}) + jitter
    runs["kl"] = runs["family"].map({"mlp": 5.0, "kae": 2.0}) + jitter
    runs.to_csv(d / "confirmed_runs.csv", index=False)
    out = metrics_table.run(load(d), tmp_path)
    t = out["table"]
    assert {"loss", "linear_acc", "kl"} <= set(t["metric"]) and "gen_gmm_mmd" not in set(t["metric"])
    best = t[t["is_best"] & t["metric"].isin(["linear_acc", "kl"])]
    assert set(best["family"]) == {"kae"} and len(best) == 4
    assert (t[~t["is_best"] & t["metric"].isin(["linear_acc", "kl"])]["p_value"] < 0.01).all()
    assert "| linear_acc | higher |" in out["markdown"] and "| kl | lower |" in out["markdown"]
    assert (tmp_path / "metrics.csv").exists()
    sentence = metrics_table.answer_sentence(t)
    assert "highest linear_acc kae (0.9; ahead of every other family)" in sentence
    assert "lowest kl kae (2; ahead of every other family)" in sentence
    assert sentence.count("By the other metrics at") == 2     # one per budget


def test_the_answer_names_configurations_whose_seeds_collapsed():
    from tunekae.analysis.report import collapsed_sentence
    cmp = pd.DataFrame({"arm": ["kan_b1", "mlp_b1"], "trial_id": ["t1", "t2"], "family": ["kan", "mlp"],
                        "setting": ["100 parameters, latent 8"] * 2})
    runs = pd.DataFrame({"arm": ["kan_b1"] * 3 + ["mlp_b1"] * 3, "trial_id": ["t1"] * 3 + ["t2"] * 3,
                         "status": ["collapsed", "collapsed", "ok", "ok", "ok", "ok"]})
    assert collapsed_sentence(cmp, runs).endswith(": kan at 100 parameters, latent 8 (2 of 3 seeds).")
    assert collapsed_sentence(cmp, runs.assign(status="ok")) == ""
