"""The search layer end to end with the real stack (Ray Tune + OptunaSearch + ASHA) on tiny
budgets: every shipped space runs, results and studies land on disk, bad input exits 2."""
import io
import json
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tunekae.spaces import builtin_spaces, load_space

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    import ray
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def test_spaces_lists_the_shipped_comparisons(run_cli):
    code, out, _ = run_cli("spaces")
    assert code == 0
    for name in ("kae_vs_mlp", "kan_vs_mlp", "vae_family", "all_families"):
        assert name in out


def test_unknown_space_exits_2_listing_valid_names(run_cli, tmp_path):
    code, out, err = run_cli("search", "--space", "nope", "--output", tmp_path / "x")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "kae_vs_mlp" in err and "all_families" in err


def test_a_space_file_that_raises_exits_2_pointing_at_its_line(run_cli, tmp_path):
    broken = tmp_path / "broken_space.py"
    broken.write_text("from tunekae.spaces import Space\n\nSPACE = Space(name='x', arms=[], budgets=1/0)\n")
    code, _, err = run_cli("search", "--space", broken, "--output", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"space file {broken}, line 3 failed to load: ZeroDivisionError" in err
    assert not (tmp_path / "o").exists()


def test_bad_options_exit_2(run_cli, tmp_path):
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--samples", 0, "--output", tmp_path / "y")
    assert code == 2 and "--samples" in err
    code, _, err = run_cli("search", "--resume", "--output", tmp_path / "missing")
    assert code == 2 and "nothing to resume" in err
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--grace-period", 0, "--output", tmp_path / "z")
    assert code == 2 and "--grace-period must be >= 1" in err
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--reduction-factor", 1, "--output", tmp_path / "z")
    assert code == 2 and "--reduction-factor must be >= 2" in err
    assert not (tmp_path / "z").exists()                           # nothing written for bad input


def test_a_budget_no_arm_fits_exits_2_naming_the_multiple(run_cli, tmp_path):
    # `4` is 4 parameters, not 4x: nothing could run, so nothing may be reported as done
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--budgets", "1x", "4", "--output", tmp_path / "b")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "budget 4 = 4 parameters" in err and "no arm of kae_vs_mlp" in err and "2,128 parameters" in err
    assert "nearest: mlp 242; kae 402)" in err     # the smallest models (one hidden unit), far above 4
    assert not (tmp_path / "b").exists()


def test_a_budget_a_users_arms_just_miss_names_the_nearest_reachable_counts(run_cli, tmp_path):
    from tunekae.spaces import arm_contexts, load_space
    space_file = tmp_path / "few_shapes.py"
    space_file.write_text('''
from tunekae.spaces import Arm, Space, suggest_architecture

def define(trial, ctx):
    return suggest_architecture(trial, ctx)

SPACE = Space(name="few_shapes", description="cheby, three orders, one hidden layer", latent_dim=4,
              arms=[Arm("cheby", "cheby", define, shapes=[{"order": d} for d in (2, 3, 4)], depths=(1,))])
''')
    # 8x = 4,640 on digits at latent 4; a hidden unit costs 408, 544 or 680 parameters by order
    code, _, err = run_cli("search", "--space", space_file, "--budgets", "8x", "--output", tmp_path / "c")
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "c").exists()
    assert "budget 8x = 4,640 parameters: no arm of few_shapes" in err
    assert "nearest: cheby 4,488 (-3.3%) or 4,760 (+2.6%))" in err
    contexts = arm_contexts(load_space(str(space_file)), 64, [4488, 4760])
    assert all(c.feasible for c in contexts)               # the counts named really are reachable


def test_an_output_that_is_a_file_exits_2_and_the_file_is_kept(run_cli, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--output", target)
    assert code == 2 and "is a file, not a directory" in err
    assert target.read_text() == "keep me"


def test_a_budget_given_twice_exits_2_before_two_arms_share_a_study(run_cli, tmp_path):
    # 1x is 2,128 parameters on digits: both would be arm mlp_b2128, one Tune experiment and study
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--budgets", "1x", "2128", "--output", tmp_path / "d")
    assert code == 2 and "arm mlp_b2128 would run twice: budgets 1x and 2128 are both 2,128 parameters" in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_seed_numpy_cannot_take_exits_2(seed, run_cli, tmp_path):
    for command in (["search", "--space", "kae_vs_mlp", "--output", tmp_path / "s"], ["train", "--epochs", 1]):
        code, _, err = run_cli(*command, "--seed", seed)
        assert code == 2 and f"--seed must be between 0 and 2147483647; got {seed}" in err, err
    assert not (tmp_path / "s").exists()


def test_a_storage_path_that_cannot_be_made_exits_2(run_cli, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder would go")
    for storage, says in ((blocker, "is a file, not a directory"), (blocker / "ray", "cannot create or write in")):
        code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--storage", storage, "--output", tmp_path / "o")
        assert code == 2 and f"--storage {storage}" in err and says in err, err
    assert not (tmp_path / "o").exists() and blocker.read_text() == "a file where a folder would go"


@pytest.mark.parametrize("flag, value", [("--cpus-per-trial", 3), ("--gpus-per-trial", 64)])
def test_trials_no_node_can_hold_exit_2_instead_of_waiting_forever(flag, value, run_cli, tmp_path):
    # the session's local Ray has 2 CPUs; Tune would keep such a trial PENDING for ever
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--samples", 1, "--epochs", 1, "--budgets", "1x",
                           flag, value, "--output", tmp_path / "r")
    assert code == 2 and "no node of the Ray cluster has that much" in err and flag in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("space", sorted(builtin_spaces()))
def test_every_shipped_space_runs(space, run_cli, tmp_path):
    out_dir = tmp_path / space
    code, out, err = run_cli("search", "--space", space, "--samples", 2, "--epochs", 2, "--budgets", "4x",
                             "--output", out_dir, "--quiet")
    assert code == 0, err
    results = pd.read_csv(out_dir / "results.csv")
    arms = {a.name for a in load_space(space).arms}
    assert set(results["family"]) == arms
    assert (results.groupby("arm").size() == 2).all()             # equal effort: same trials per arm
    ok = results[results["status"].isin(["ok", "collapsed"])]   # two epochs may leave a run at the mean image
    assert len(ok) >= len(arms)
    matched = ok[ok["budget_label"].astype(str) != "fixed"]   # fixed-width arms (pykan's demo) have no budget
    assert (abs(matched["params"] - matched["budget"]) / matched["budget"] <= 0.02).all()   # parameter-matched
    regression = results["dataset"].str.startswith("function:").all()   # a fitted formula: no images, no labels
    scores = ("val_rmse",) if regression else ("val_psnr", "val_knn_acc")
    for col in ("val_loss", "train_seconds", "seconds_per_epoch", "flops", "hidden", "epochs_completed",
                "stopped_early", "hp_lr", "hp_optimizer", "hp_batch_size", "config_json", "peak_mem_mb", *scores):
        assert col in results, col
    assert (ok["val_loss"] >= 0).all() and (ok["peak_mem_mb"] > 0).all()
    if not regression:
        assert ok["val_loss"].between(0, 1).all()
    meta = json.loads((out_dir / "run.json").read_text())
    assert meta["space"] == space and meta["versions"]["ray"] and "command" in meta
    assert set(meta["summary"]) == set(results["arm"])
    # every arm's Optuna study is in the search's one journal, where optuna-dashboard opens them
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out_dir / "studies.journal")))
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(storage)) == sorted(results["arm"].unique())
    for arm in results["arm"].unique():
        assert len(optuna.load_study(study_name=arm, storage=storage).trials) == 2
    assert "full-budget" in out and "results:" in out


def test_optuna_dashboard_opens_every_arms_study_from_the_one_journal(run_cli, tmp_path):
    """README: `optuna-dashboard DIR/studies.journal`. The real dashboard (a test dependency)
    lists every arm's study and serves each with its trials and their validation losses."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    out_dir = tmp_path / "dash"
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--samples", 3, "--epochs", 2, "--budgets", "1x",
                           "--output", out_dir, "--quiet")
    assert code == 0, err
    results = pd.read_csv(out_dir / "results.csv")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "dashboard.log").open("w")
    dashboard = subprocess.Popen([str(Path(sys.executable).parent / "optuna-dashboard"),
                                  str(out_dir / "studies.journal"), "--host", "127.0.0.1", "--port", str(port)],
                                 stdout=log, stderr=subprocess.STDOUT)

    def get(path):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/{path}", timeout=5) as r:
            return json.load(r)
    try:
        deadline, listed = time.monotonic() + 60, None
        while listed is None and time.monotonic() < deadline and dashboard.poll() is None:
            try:
                listed = get("studies")["study_summaries"]
            except OSError:
                time.sleep(0.5)
        assert listed is not None, (tmp_path / "dashboard.log").read_text()
        assert sorted(s["study_name"] for s in listed) == ["kae_b2128", "mlp_b2128"]
        for summary in listed:
            study = get(f"studies/{summary['study_id']}?after=0")
            arm = study["name"]
            assert [t["state"] for t in study["trials"]] == ["Complete"] * 3
            shown = sorted(t["values"][0] for t in study["trials"])
            assert shown == pytest.approx(sorted(results.loc[results["arm"] == arm, "val_loss"]))
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)
        log.close()


def test_starting_point_is_the_papers_recipe(run_cli, tmp_path):
    out_dir = tmp_path / "start"
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--samples", 1, "--epochs", 1, "--budgets", "4x",
                           "--output", out_dir, "--quiet")
    assert code == 0, err
    results = pd.read_csv(out_dir / "results.csv")
    # the first (only) trial of every arm is the enqueued recipe: Adam 1e-4, wd 1e-4, batch 256, sigmoid
    assert (results["hp_optimizer"] == "adam").all() and (results["hp_lr"] == 1e-4).all()
    assert (results["hp_batch_size"] == 256).all() and (results["hp_weight_decay"] == 1e-4).all()
    assert (results["hp_output_activation"] == "sigmoid").all()
    kae = results[results["family"] == "kae"].iloc[0]
    assert json.loads(kae["config_json"])["model"]["order"] == 3


def test_asha_stops_trials_early(run_cli, tmp_path):
    out_dir = tmp_path / "asha"
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--samples", 8, "--epochs", 9, "--budgets", "1x",
                           "--grace-period", 2, "--reduction-factor", 3, "--output", out_dir, "--quiet")
    assert code == 0, err
    assert json.loads((out_dir / "run.json").read_text())["asha"] == {"grace_period": 2, "reduction_factor": 3,
                                                                       "max_t": 9}
    # the recorded command spells out what decided the trials, the space's defaults included
    rerun = json.loads((out_dir / "run.json").read_text())["rerun_command"]
    assert ("--space kae_vs_mlp --dataset digits --budgets 1x --latents 16 --samples 8 --epochs 9 --seed 0 --tolerance 0.02 "
            "--grace-period 2 --reduction-factor 3 --output") in rerun
    results = pd.read_csv(out_dir / "results.csv")
    assert results["stopped_early"].any()
    assert set(results.loc[results["stopped_early"], "epochs_completed"]) <= {2, 6}   # ASHA's rungs: 2, 2 x 3
    assert (results.loc[~results["stopped_early"] & results["status"].isin(["ok", "collapsed"]),
                        "epochs_completed"] == 9).all()


def test_tune_storage_can_be_a_uri_apart_from_the_output(run_cli, tmp_path):
    """--storage: Tune's experiment folders on a shared path or cloud URI (file:// here, offline);
    results and run.json stay in --output. --optuna-storage: the studies in a database, which the
    analysis then reads too."""
    out_dir, store, db = tmp_path / "out", tmp_path / "store", f"sqlite:///{tmp_path / 'studies.db'}"
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--samples", 3, "--epochs", 2, "--budgets", "1x",
                           "--output", out_dir, "--storage", f"file://{store}", "--optuna-storage", db, "--quiet")
    assert code == 0, err
    assert not (out_dir / "studies.journal").exists()
    storage = optuna.storages.RDBStorage(db)
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(storage)) == ["kae_b2128", "mlp_b2128"]
    from tunekae.analysis.cli import main as analysis
    assert analysis(["importance", str(out_dir)]) == 0
    assert set(pd.read_csv(out_dir / "analysis" / "importance.csv")["arm"]) == {"kae_b2128", "mlp_b2128"}
    results = pd.read_csv(out_dir / "results.csv")
    for arm in results["arm"].unique():   # Tune's folder per trial: <arm>-<study trial>
        assert len(list((store / "search").glob(f"{arm}-*/result.json"))) == 3
    assert not (out_dir / "ray").exists()
    assert json.loads((out_dir / "run.json").read_text())["options"]["storage"] == f"file://{store}"
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--storage", "nope://x", "--output", tmp_path / "bad")
    assert code == 2 and "--storage nope://x" in err and not (tmp_path / "bad").exists()


def test_run_json_records_the_command_as_it_can_be_run_again(monkeypatch):
    from tunekae.commands.search import command_line
    monkeypatch.setattr("sys.argv", ["/opt/x/tunekae/__main__.py", "search", "--space", "my file.py"])
    assert command_line() == "python -m tunekae search --space 'my file.py'"
    monkeypatch.setattr("sys.argv", ["/usr/bin/tunekae-wrapper", "search"])     # anything else as it was
    assert command_line() == "/usr/bin/tunekae-wrapper search"


def test_a_users_space_file_runs(run_cli, tmp_path):
    space_file = tmp_path / "my_space.py"
    space_file.write_text('''
from tunekae.spaces import Arm, Space, suggest_architecture, suggest_training

def define(trial, ctx):
    arch = suggest_architecture(trial, ctx)
    suggest_training(trial, optimizers=("adam",), batch_sizes=(64,))
    return arch

SPACE = Space(name="my_space", description="one cheby arm", dataset="digits", latent_dim=4, budgets=[3264],
              arms=[Arm("cheby", "cheby", define, shapes=[{"order": d} for d in (2, 3, 4)], depths=(1,))],
              samples_per_arm=2, epochs=2)
''')
    out_dir = tmp_path / "mine"
    code, out, err = run_cli("search", "--space", space_file, "--output", out_dir, "--quiet")
    assert code == 0, err
    results = pd.read_csv(out_dir / "results.csv")
    assert list(results["arm"].unique()) == ["cheby_b3264"] and len(results) == 2
    assert (results["hp_optimizer"] == "adam").all() and (abs(results["params"] - 3264) <= 65).all()
    assert json.loads((out_dir / "run.json").read_text())["space"] == "my_space"


def test_the_readmes_own_comparison_runs_as_written(run_cli, tmp_path):
    import re
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("### Your own comparison", 1)[1]
    space_file = tmp_path / "my_comparison.py"
    space_file.write_text(re.search(r"```python\n(.*?)```", section, re.S).group(1))
    space = load_space(str(space_file))
    from tunekae.spaces import arm_contexts
    feasible = {c.key: sorted(c.feasible) for c in arm_contexts(space, 64, ["4x"])}
    # depth 0 is the 1x MLP, and two order-3 KAE layers miss 8,512 within 2%: sampled depths fit
    assert feasible == {"mlp_b8512": [1, 2, 3], "kae3_b8512": [1]}
    out_dir = tmp_path / "mine"
    code, _, err = run_cli("search", "--space", space_file, "--samples", 3, "--epochs", 2, "--budgets", "4x",
                           "--output", out_dir, "--quiet")
    assert code == 0, err
    results = pd.read_csv(out_dir / "results.csv")
    assert sorted(results["arm"].unique()) == ["kae3_b8512", "mlp_b8512"]
    assert results["status"].isin(["ok", "collapsed"]).all()
    kae = results[results["arm"] == "kae3_b8512"]
    assert (kae["hp_order"] == 3).all() and (kae["depth"] == 1).all()
    assert (abs(results["params"] - 8512) <= 0.02 * 8512).all()
    assert json.loads((out_dir / "run.json").read_text())["space"] == "kae3_vs_deep_mlp"


def test_an_invalid_sampled_value_is_recorded_not_raised():
    from tunekae.data import load_dataset
    from tunekae.trial import ArmSpec, RunSpec, run_trial
    reports = []
    arm = ArmSpec("mlp_b8512", "mlp", "linear", "ae", 8512)
    run = RunSpec(input_dim=64, latent_dim=16, epochs=2)
    for params, says in (({"depth": 1, "lr": 0.0}, "lr must be > 0"), ({"depth": 1, "lr": "fast"}, "lr")):
        final = run_trial(params, arm, run, load_dataset("digits"), reports.append, seed=0)
        assert final["status"] == "error" and "invalid configuration" in final["error"] and says in final["error"]
        assert reports[-1] == final


def test_trials_share_a_gpu_four_to_one_when_the_cluster_has_gpus(monkeypatch):
    import ray

    from tunekae.search.cluster import trial_capacity, trial_resources
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 2.0})
    per = trial_resources(1, None)
    assert per == {"cpu": 1, "gpu": 0.25} and trial_capacity(per) == 8   # 2 GPUs / 0.25 bind before 16 CPUs
    per = trial_resources(1, 0)
    assert per == {"cpu": 1, "gpu": 0} and trial_capacity(per) == 16     # --gpus-per-trial 0: CPU trials
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    assert trial_resources(1, None) == {"cpu": 1, "gpu": 0.0}


def test_resume_refuses_options_that_differ_from_the_search_and_changes_nothing(run_cli, tmp_path, monkeypatch):
    out = tmp_path / "run"
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--samples", 1, "--epochs", 1, "--budgets", "1x",
                           "--output", out, "--quiet")
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in (out / "run.json", out / "results.csv")}
    code, _, err = run_cli("search", "--output", out, "--resume", "--space", "kan_vs_mlp", "--samples", 3)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--space: kan_vs_mlp here, kae_vs_mlp in the search" in err and "--samples: 3 here, 1 in the search" in err
    assert {p.name: p.read_bytes() for p in (out / "run.json", out / "results.csv")} == before
    # the same options again, or only where/how loudly it runs, are fine; every trial has ended,
    # so no Ray is needed
    import tunekae.search.runner
    monkeypatch.setattr(tunekae.search.runner, "connect", lambda *a, **k: pytest.fail("a finished search started Ray"))
    code, _, err = run_cli("search", "--output", out, "--resume", "--space", "kae_vs_mlp", "--samples", 1)
    assert code == 0, err
    assert pd.read_csv(out / "results.csv").equals(pd.read_csv(io.BytesIO(before["results.csv"])))


def test_resume_refuses_a_space_file_edited_since_the_search_started(run_cli, tmp_path):
    space_file = tmp_path / "mine.py"
    original = """from tunekae.spaces import Arm, Space, suggest_architecture, suggest_training


def define(trial, ctx):
    arch = suggest_architecture(trial, ctx)
    suggest_training(trial, lr=(1e-4, 1e-2))
    return arch


SPACE = Space(name="mine", description="one MLP arm", arms=[Arm("mlp", "linear", define)], budgets=["1x"])
"""
    space_file.write_text(original)
    out = tmp_path / "run"
    code, _, err = run_cli("search", "--space", space_file, "--samples", 1, "--epochs", 1, "--output", out, "--quiet")
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in (out / "run.json", out / "results.csv")}
    space_file.write_text(original.replace("lr=(1e-4, 1e-2)", "lr=(1e-3, 1e-1)"))   # another space now
    code, _, err = run_cli("search", "--output", out, "--resume", "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{space_file} has changed since this search started" in err
    assert {p.name: p.read_bytes() for p in (out / "run.json", out / "results.csv")} == before
    space_file.write_text(original)                                                   # put back: it resumes
    code, _, err = run_cli("search", "--output", out, "--resume", "--quiet")
    assert code == 0, err
    # arms that differ from the search's (a solver that now fits other shapes) are refused too
    meta = json.loads((out / "run.json").read_text())
    meta["arms"][0]["feasible"] = {"2": meta["arms"][0]["feasible"]["0"]}
    (out / "run.json").write_text(json.dumps(meta))
    code, _, err = run_cli("search", "--output", out, "--resume", "--quiet")
    assert code == 2 and "differ from those it started with (mlp_b2128)" in err


def test_one_trial_at_a_time_a_search_repeats_exactly(run_cli, tmp_path):
    """README: with --max-concurrent 1 the same command gives the same trials and losses (with
    concurrent trials the order of reports steers TPE and ASHA, so it does not)."""
    tables = []
    for run in ("a", "b"):
        code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--samples", 5, "--epochs", 3, "--budgets", "1x",
                               "--max-concurrent", 1, "--seed", 7, "--output", tmp_path / run, "--quiet")
        assert code == 0, err
        table = pd.read_csv(tmp_path / run / "results.csv").sort_values(["arm", "study_trial"], ignore_index=True)
        tables.append(table[[c for c in table if c.startswith("hp_")]
                            + ["arm", "study_trial", "hidden", "val_loss", "epochs_completed", "stopped_early"]])
    assert len(tables[0]) == 10 and tables[0]["stopped_early"].any()     # ASHA decided something
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_train_from_a_search_retrains_one_trial_exactly(run_cli, tmp_path):
    """`train --from DIR --trial ID`: the trial's widths, hyperparameters and seed on the search's
    split give the val_loss the search recorded, to the last bit (the search trained it in a
    Tune trial process, with Ray's copy of the data)."""
    out = tmp_path / "run"
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--samples", 2, "--epochs", 3, "--budgets", "1x",
                           "--no-asha", "--seed", 3, "--output", out, "--quiet")
    assert code == 0, err
    results = pd.read_csv(out / "results.csv", dtype={"trial_id": str})
    for _, row in results.iterrows():
        code, stdout, err = run_cli("train", "--from", out, "--trial", row["trial_id"], "--json")
        again = json.loads(stdout)
        assert code == (0 if again["status"] == "ok" else 1) and again["status"] in ("ok", "collapsed"), err
        assert again["val_loss"] == row["val_loss"] and again["epochs"] == 3
        assert again["params"] == row["params"] and again["hidden"] == [int(h) for h in str(row["hidden"]).split(",")
                                                                        if h not in ("", "nan")]
        assert f"trial {row['trial_id']} ({row['arm']}:{row['study_trial']}) of {out}: the search's val_loss" in err
    first = results.iloc[0]
    code, stdout, _ = run_cli("train", "--from", out, "--trial", f"{first['arm']}:{first['study_trial']}", "--json",
                              "--epochs", 1)
    assert json.loads(stdout)["epochs"] == 1
    for argv, message in [
        (["--trial", first["trial_id"], "--lr", 0.1], "so --lr cannot change it"),
        (["--trial", "nope"], "no trial 'nope' in"),
        (["--trial", f"{first['arm']}:99"], f"no trial '{first['arm']}:99' in"),
    ]:
        code, _, err = run_cli("train", "--from", out, *argv)
        assert code == 2 and message in err, err
    code, _, err = run_cli("train", "--trial", first["trial_id"])
    assert code == 2 and "--from DIR and --trial ID go together" in err
    # a row that is not its arm's best: the table must still agree with run.json's summary
    victim = results.drop(results.groupby("arm")["val_loss"].idxmin()).index[0]
    results.loc[victim, ["status", "config_json", "error"]] = ["infeasible", None, "no widths fit"]
    results.to_csv(out / "results.csv", index=False)
    code, _, err = run_cli("train", "--from", out, "--trial", results.loc[victim, "trial_id"])
    assert code == 2 and "has no configuration to retrain (status infeasible: no widths fit)" in err


def test_a_sigterm_during_worker_shutdown_prints_no_traceback():
    # Ray's SIGTERM handler raises SystemExit; inside a weakref callback Python used to print it
    # as "Exception ignored ... SystemExit: 1" once an arm. Other unraisable errors still print.
    import subprocess
    import sys
    script = (
        "import weakref\n"
        "from tunekae.search.trainable import quiet_sigterm_in_finalizers\n"
        "quiet_sigterm_in_finalizers(); quiet_sigterm_in_finalizers()   # twice: installed once\n"
        "class O: pass\n"
        "def sigterm(_): raise SystemExit(1)\n"
        "def broken(_): raise ValueError('a real error')\n"
        "a, b = O(), O()\n"
        "refs = weakref.ref(a, sigterm), weakref.ref(b, broken)\n"
        "del a, b\n"
        "print('still running')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "still running", proc.stderr
    assert "SystemExit" not in proc.stderr
    assert proc.stderr.count("ValueError: a real error") == 1


def test_a_ray_job_without_output_says_where_its_results_go(run_cli, tmp_path, monkeypatch):
    """In `ray job submit` the entrypoint runs in Ray's temporary copy of the working dir (Ray's
    job supervisor sets RAY_JOB_CONFIG_JSON_ENV_VAR), so the default relative --output lands
    there: the search says so, with the absolute path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--samples", 1, "--epochs", 1, "--budgets", "1x",
                           "--quiet")
    assert code == 0, err
    line = next(line for line in err.splitlines() if "a Ray job without --output" in line)
    written = Path(line.split("writes to ")[1].split(",")[0])
    assert written.is_absolute() and written.parent == tmp_path / "results" and (written / "results.csv").exists()
    assert "give --output a path that outlives the job" in line


def test_a_second_search_into_the_same_output_exits_2_and_touches_nothing(run_cli, tmp_path):
    """While a search runs in DIR (it holds DIR/.search.lock), another search there exits 2:
    two searches would mix their trials in one set of studies and one table."""
    from tunekae.search.runner import exclusive
    out = tmp_path / "busy"
    out.mkdir()
    with exclusive(out):
        code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--samples", 1, "--epochs", 1, "--budgets", "1x",
                               "--output", out, "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{out} is in use by another search (pid " in err
    assert sorted(p.name for p in out.iterdir()) == [".search.lock"]


def test_tensorboard_and_mlflow_record_every_trial(run_cli, tmp_path):
    """--tensorboard and --mlflow are Tune's own TBXLoggerCallback and MLflowLoggerCallback: event
    files in each trial's folder hold its per-epoch val_loss; an MLflow store (sqlite, MLflow's
    local store) gets one run per trial with its metrics."""
    import glob
    import struct

    from mlflow.tracking import MlflowClient
    from tensorboardX.proto import event_pb2
    out, store = tmp_path / "tracked", f"sqlite:///{tmp_path / 'mlflow.db'}"
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--samples", 2, "--epochs", 2, "--budgets", "1x",
                           "--no-asha", "--tensorboard", "--mlflow", store, "--output", out, "--quiet")
    assert code == 0, err
    results = pd.read_csv(out / "results.csv")

    def scalars(path):   # TFRecord framing: length, its CRC, the Event proto, its CRC
        data, pos, found = Path(path).read_bytes(), 0, {}
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 16 + n
            for v in event.summary.value:
                found.setdefault(v.tag, []).append(v.simple_value)
        return found

    trial_dirs = sorted(p for p in (out / "ray" / "search").iterdir() if p.is_dir())
    assert len(trial_dirs) == 4
    for folder in trial_dirs:
        tags = scalars(glob.glob(str(folder / "events.out.tfevents.*"))[0])
        losses = tags["ray/tune/val_loss"]
        arm, number = folder.name.rsplit("-", 1)
        row = results[(results["arm"] == arm) & (results["study_trial"] == int(number))].iloc[0]
        assert len(losses) == 2 and losses[-1] == pytest.approx(row["val_loss"], rel=1e-6)
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 4
    assert sorted(r.data.metrics["val_loss"] for r in runs) == pytest.approx(sorted(results["val_loss"]), rel=1e-6)
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--optuna-storage", "nope://x", "--output",
                           tmp_path / "bad", "--quiet")
    assert code == 2 and "--optuna-storage nope://x" in err


def test_latent_and_training_size_axes_are_arms_of_their_own(run_cli, tmp_path):
    """--latents and --train-sizes cross the budgets: each combination is an arm with the same
    effort; rows carry latent_dim and train_size; a trial retrains exactly on its arm's subset."""
    out = tmp_path / "axes"
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--budgets", "4x", "--latents", 4, 8, "--train-sizes",
                           300, "full", "--samples", 2, "--epochs", 2, "--no-asha", "--output", out, "--quiet")
    assert code == 0, err
    results = pd.read_csv(out / "results.csv", dtype={"trial_id": str})
    assert (results.groupby("arm").size() == 2).all() and results["arm"].nunique() == 8
    from tunekae.budget import reference_mlp_params   # 4x is relative to each latent's single-layer MLP
    assert set(results["arm"]) == {f"{f}_b{4 * reference_mlp_params(64, z)}_z{z}{n}" for f in ("mlp", "kae")
                                   for z in (4, 8) for n in ("_n300", "")}
    assert set(results["latent_dim"]) == {4, 8} and set(results["train_size"]) == {300, 1293}
    for _, row in results.iterrows():
        assert json.loads(row["config_json"])["model"]["latent_dim"] == row["latent_dim"]
    small = results[results["train_size"] == 300].iloc[0]
    code, stdout, err = run_cli("train", "--from", out, "--trial", small["trial_id"], "--json")
    assert json.loads(stdout)["val_loss"] == small["val_loss"], err          # on the same 300 images
    for argv, says in ((["--latents", 65], "latent size 65 is larger than the 64 inputs of digits"),
                       (["--train-sizes", 99999], "training-set size 99,999 is more than the 1,293 training images"),
                       (["--train-sizes", "lots"], "a training-set size is a whole number of images or 'full'")):
        code, _, err = run_cli("search", "--space", "kae_vs_mlp", *argv, "--output", tmp_path / "bad")
        assert code == 2 and says in err and not (tmp_path / "bad").exists(), err


def _selection_space(tmp_path, fields: str):
    path = tmp_path / "space.py"
    path.write_text(f'''
from tunekae.spaces import Space
from search_spaces._arms import VAES
SPACE = Space(name="sel", description="selection", arms=VAES[:1], latent_dim=8, budgets=["4x"],
              samples_per_arm=6, epochs=4, {fields})
''')
    return path


def test_a_search_selects_on_the_spaces_metric_every_epoch(run_cli, tmp_path):
    """Space(metric="val_objective"): every epoch reports the variant's loss terms, ASHA and Optuna
    rank by the objective, and the arm's best and confirm's picks are the lowest objective."""
    from tunekae.confirm import pick_top
    from tunekae.selection import Selection
    out_dir = tmp_path / "obj"
    code, out, err = run_cli("search", "--space", _selection_space(tmp_path, 'metric="val_objective"'),
                             "--grace-period", 1, "--reduction-factor", 2, "--output", out_dir)
    assert code == 0, err
    meta = json.loads((out_dir / "run.json").read_text())
    assert meta["selection"] == {"objectives": [["val_objective", "min"]]}
    results = pd.read_csv(out_dir / "results.csv")
    full = results[results["status"].isin(["ok", "collapsed"]) & (results["epochs_completed"] == 4)]
    ok = full[full["status"] == "ok"] if (full["status"] == "ok").any() else full
    best = ok.loc[ok["val_objective"].idxmin()]
    summary = meta["summary"][best["arm"]]
    assert summary["best_trial"] == best["trial_id"] and summary["best_val_objective"] == best["val_objective"]
    assert "best val_objective" in out
    picks = pick_top(results, 3, Selection.from_dict(meta["selection"]))
    assert picks["trial_id"].iloc[0] == best["trial_id"]
    # the loss terms, every epoch, in the trial logs; Optuna's learning curves are the objective
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out_dir / "studies.journal")))
    study = optuna.load_study(study_name=best["arm"], storage=storage)
    for t in study.trials:
        log = [json.loads(line) for line in (out_dir / "trial_logs" / best["arm"] / f"{t.number}.jsonl").open()]
        epochs = [r for r in log if "epoch" in r]
        assert all({"train_kl", "train_objective", "val_kl", "val_objective"} <= set(r) for r in epochs)
        by_epoch = {r["epoch"]: r["val_objective"] for r in epochs}
        assert t.intermediate_values and all(by_epoch[e] == v for e, v in t.intermediate_values.items())


def test_two_objectives_search_without_asha_and_keep_the_pareto_set(run_cli, tmp_path):
    out_dir = tmp_path / "two"
    code, out, err = run_cli("search", "--space", _selection_space(
        tmp_path, 'objectives=[("val_loss", "min"), ("val_kl", "min")]'), "--output", out_dir, "--quiet")
    assert code == 0, err
    results = pd.read_csv(out_dir / "results.csv")
    assert (results["epochs_completed"] == 4).all()          # FIFO: ASHA ranks by one number
    done = results[results["status"].isin(["ok", "collapsed"])]
    points = list(zip(done["val_loss"], done["val_kl"]))

    def dominated(p):
        return any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)
    assert list(done["pareto_optimal"]) == [not dominated(p) for p in points]   # the non-dominated trials
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out_dir / "studies.journal")))
    study = optuna.load_study(study_name=results["arm"].iloc[0], storage=storage)
    assert len(study.directions) == 2
    n = int(done["pareto_optimal"].sum())
    assert n >= 1 and f"Pareto set of {n}" in out
    # the report answers with the Pareto set and draws it
    from tunekae.analysis.cli import main as analysis_main
    assert analysis_main(["report", str(out_dir), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    answer = report.split("## Answer")[1].split("##")[0]
    assert "Pareto sets over val_loss and val_kl" in answer and f"{n} trial" in answer
    assert len(pd.read_csv(tmp_path / "report" / "pareto_set.csv")) == n
    assert (tmp_path / "report" / "objectives.png").stat().st_size > 5_000
