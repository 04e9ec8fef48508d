"""The whole tool as a user runs it: a tiny search -> confirm -> analysis report, checking that
every promised file exists, every PNG decodes, and report.md's numbers equal the CSVs'."""
import re
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    import ray

    from tunekae.cli import main
    out = tmp_path_factory.mktemp("pipeline") / "run"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        assert main(["search", "--space", "kae_vs_mlp", "--budgets", "1x", "4x", "--samples", "3", "--epochs", "4",
                     "--output", str(out), "--quiet"]) == 0
        assert main(["confirm", str(out), "--top", "2", "--seeds", "3"]) == 0
    finally:
        ray.shutdown()
    from tunekae.analysis.cli import main as analysis
    assert analysis(["report", str(out)]) == 0
    return out


def test_confirm_writes_mean_std_n(pipeline_dir):
    runs = pd.read_csv(pipeline_dir / "confirmed_runs.csv")
    confirmed = pd.read_csv(pipeline_dir / "confirmed.csv")
    assert set(runs["seed"]) == {10_000, 10_001, 10_002}            # fresh seeds, not the search's
    results = pd.read_csv(pipeline_dir / "results.csv")
    # four epochs of the paper's recipe leave most runs collapsed: finished runs, confirmed alike
    full = results[results["status"].isin(["ok", "collapsed"]) & (results["epochs_completed"] >= results["epochs_budget"])]
    top = full.groupby("arm").size().clip(upper=2)       # each arm's top 2 of its full-budget trials
    assert len(top) == 4 and len(confirmed) == top.sum() and (confirmed["n"] == 3).all()   # 3 seeds each
    for metric in ("test_loss", "psnr", "knn_acc", "recall_at_5", "denoise_sp_mse", "denoise_gauss_mse", "silhouette",
                   "gen_gmm_entropy", "gen_gmm_mmd", "train_objective", "val_objective"):
        assert {f"{metric}_mean", f"{metric}_std"} <= set(confirmed.columns), metric
    # an autoencoder's objective is its reconstruction: the last epoch's terms, as the search records them
    ok = runs[runs["status"] == "ok"]
    assert (ok["val_objective"] == ok["val_loss"]).all() and (runs["train_objective"] > 0).all()
    one = confirmed.iloc[0]
    same = runs[(runs["arm"] == one["arm"]) & (runs["trial_id"].astype(str) == str(one["trial_id"]))]
    assert one["test_loss_mean"] == pytest.approx(same["test_loss"].mean())
    assert one["test_loss_std"] == pytest.approx(same["test_loss"].std(ddof=1))
    assert len(list((pipeline_dir / "models").glob("*.pt"))) == len(confirmed)
    assert not (pipeline_dir / "models.partial").exists()   # moved into place once every run was in


def test_every_promised_file_exists_and_every_png_decodes(pipeline_dir):
    a = pipeline_dir / "analysis"
    for name in ("report.md", "pareto.csv", "hypervolume.csv", "table.md", "table.csv", "compare.md", "compare.csv", "recipe.csv",
                 "metrics.csv", "generation.csv", "samples_1x.png", "samples_4x.png", "importance.csv", "pareto_params.png", "pareto_time.png", "importance.png", "recon_1x.png",
                 "recon_4x.png"):
        assert (a / name).exists(), name
    for png in a.glob("*.png"):
        image = mpimg.imread(png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0.01, png.name


def test_report_numbers_equal_the_csvs(pipeline_dir):
    report = (pipeline_dir / "analysis" / "report.md").read_text()
    compare = pd.read_csv(pipeline_dir / "analysis" / "compare.csv")
    # every best-family test loss in compare.csv is quoted in the report, at the report's precision
    quoted = {float(x) for x in re.findall(r"test MSE ([0-9.]+) ±", report)}
    assert quoted, report
    means = compare.filter(like="test_loss").stack().astype(float).tolist()
    for q in quoted:
        assert any(abs(q - m) <= 0.5 * 10 ** -(len(str(q).split(".")[1])) + 1e-12 for m in means), q
    for name in ("pareto_params.png", "table.csv", "compare.csv", "pareto.csv"):
        assert f"({name})" in report   # the report links what it summarizes
    run = pd.read_json(pipeline_dir / "run.json", typ="series")
    assert str(run["samples_per_arm"]) in report and "digits" in report
    # provenance: the commit that produced the study, in run.json and in the report
    import subprocess
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()
    assert run["tunekae"]["commit"] == head and f"at commit {head[:10]}" in report


def test_report_measures_the_recipe_against_the_tuned_best(pipeline_dir):
    recipe = pd.read_csv(pipeline_dir / "analysis" / "recipe.csv")
    results = pd.read_csv(pipeline_dir / "results.csv")
    assert set(recipe["family"]) <= {"mlp", "kae"} and len(recipe) >= 1
    for row in recipe.itertuples():
        arm = results[results["arm"] == row.arm]
        start = arm[(arm["hp_lr"] == 1e-4) & (arm["hp_batch_size"] == 256) & (arm["hp_optimizer"] == "adam")]
        assert len(start) == 1 and start["val_loss"].iloc[0] == pytest.approx(row.recipe_val_loss)
        assert row.recipe_over_best == pytest.approx(row.recipe_val_loss / row.tuned_best_val_loss)
    assert "recipe / best" in (pipeline_dir / "analysis" / "report.md").read_text()


def _unconfirmed_copy(pipeline_dir, dest):
    """The pipeline's search output as it was before confirm and the analysis ran on it."""
    import shutil
    shutil.copytree(pipeline_dir, dest, ignore=shutil.ignore_patterns("analysis", "models", "confirmed*"))
    return dest


def test_confirm_of_a_gpu_search_trains_where_it_is_given_resources(pipeline_dir, tmp_path, capsys):
    # The search's trials recorded device "cuda" (a GPU search); confirmed here, on a cluster with
    # no GPU, each run must train on the CPU it was given (with a warning that its seconds do not
    # compare), not fail asking CUDA for a device it does not have.
    import json

    import ray

    from tunekae.cli import main
    copy = _unconfirmed_copy(pipeline_dir, tmp_path / "gpu-search")
    results = pd.read_csv(copy / "results.csv", dtype={"trial_id": str, "budget_label": str})

    def on_cuda(config_json):
        cfg = json.loads(config_json)
        cfg["train"]["device"] = "cuda"
        return json.dumps(cfg)
    results["config_json"] = results["config_json"].map(on_cuda, na_action="ignore")
    results.to_csv(copy / "results.csv", index=False)
    capsys.readouterr()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        assert main(["confirm", str(copy), "--top", "1", "--seeds", "1"]) == 0
    finally:
        ray.shutdown()
    err = capsys.readouterr().err
    assert "trained on GPUs but this Ray cluster has none" in err
    runs = pd.read_csv(copy / "confirmed_runs.csv")
    assert len(runs) == 4 and runs["status"].isin(["ok", "collapsed"]).all() and runs["test_loss"].notna().all()


def test_confirm_runs_get_the_gpu_share_of_the_search_by_default():
    from tunekae.confirm import gpus_per_run
    assert gpus_per_run(None, on_gpu=True, cluster_gpus=2, share=0.25) == (0.25, None)   # as the search's trials
    assert gpus_per_run(None, on_gpu=False, cluster_gpus=2, share=0.25) == (0.0, None)   # a CPU search stays on CPUs
    assert gpus_per_run(0.5, on_gpu=False, cluster_gpus=2, share=0.25) == (0.5, None)    # the flag decides
    share, warning = gpus_per_run(None, on_gpu=True, cluster_gpus=0, share=0.25)
    assert share == 0.0 and "on CPUs" in warning


@pytest.mark.parametrize("argv, fragment", [(["--top", "0"], "--top, --seeds and --cpus-per-trial must be >= 1"),
                                            (["--gpus-per-trial", "-1"], "--gpus-per-trial must be >= 0"),
                                            (["--gpus-per-trial", "2"], "GPU 2, but no node of the Ray cluster")])
def test_confirm_bad_resources_exit_2_and_write_nothing(pipeline_dir, tmp_path, run_cli, argv, fragment):
    import ray
    copy = _unconfirmed_copy(pipeline_dir, tmp_path / "search")
    try:
        code, out, err = run_cli("confirm", copy, *argv)     # the last starts a local Ray without GPUs
    finally:
        ray.shutdown()                                       # (a CLI process would exit here)
    assert code == 2 and fragment in err and "Traceback" not in err, err
    assert not (copy / "confirmed.csv").exists() and not (copy / "models").exists()
