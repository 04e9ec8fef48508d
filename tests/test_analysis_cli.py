"""`python -m tunekae.analysis` on synthetic results dirs written here (no search, no Ray):
every command writes its promised files, figures decode, report.md's numbers equal the CSVs',
and bad input exits 2 with one line."""
import json
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from tunekae.analysis import recon
from tunekae.analysis.cli import main
from tunekae.analysis.style import fmt_loss, fmt_p, fmt_std
from tunekae.models import ModelConfig, build_model

EPOCHS = 6
BUDGETS = [("1x", 1000), ("4x", 4000)]
FAMILIES = {"mlp": "linear", "kae": "kae"}
SEEDS = [10000, 10001, 10002]
# Mean confirmed test loss of each arm's best configuration: mlp clearly better at 1x, a tie at 4x.
TEST_LOSS = {("mlp", 1000): 0.020, ("kae", 1000): 0.030, ("mlp", 4000): 0.0150, ("kae", 4000): 0.0151}


def _search_rows(rng):
    rows = []
    for label, budget in BUDGETS:
        for fam, layer in FAMILIES.items():
            arm = f"{fam}_b{budget}"
            for i in range(6):
                stopped = i >= 4                     # trials 4, 5: stopped early by ASHA
                loss = (0.05 if fam == "mlp" else 0.06) * (1000 / budget) ** 0.2 + 0.004 * i
                params = budget * (1 + 0.01 * (i - 2))
                rows.append({"space": "toy", "dataset": "toy8", "arm": arm, "family": fam, "layer": layer,
                             "variant": "ae", "budget": budget, "budget_label": label, "trial_id": f"{arm}_{i:05d}",
                             "status": "ok", "stopped_early": stopped, "epochs_completed": 2 if stopped else EPOCHS,
                             "epochs_budget": EPOCHS, "depth": 1, "hidden": "12", "params": int(params),
                             "flops": 2 * int(params), "val_loss": loss / 3 if stopped else loss,
                             "train_loss": loss, "train_seconds": (2 if stopped else EPOCHS) * (1 + i % 3) * budget / 1000,
                             "seconds_per_epoch": (1 + i % 3) * budget / 1000, "peak_mem_mb": 10.0,
                             "hp_lr": float(10 ** rng.uniform(-4, -2)), "hp_batch_size": int(rng.choice([32, 64])),
                             "hp_optimizer": "adam", "hp_order": 3 if fam == "kae" else np.nan,
                             "val_psnr": 20 + i, "val_knn_acc": 0.8, "val_recall_at_5": 0.4,
                             "val_denoise_sp_mse": 0.05, "val_denoise_gauss_mse": 0.04, "config_json": "{}"})
    rows.append({**rows[0], "trial_id": "mlp_b1000_00099", "status": "infeasible", "params": np.nan,
                 "val_loss": 1e6, "epochs_completed": 0, "stopped_early": False})
    rows.append({**rows[0], "trial_id": "mlp_b1000_00098", "status": "diverged", "val_loss": 1e6})
    return pd.DataFrame(rows)


def _confirmed(results, rng):
    full = results[(results["status"] == "ok") & ~results["stopped_early"]]
    picks = full.sort_values(["arm", "val_loss"]).groupby("arm").head(2).copy()
    picks["rank"] = picks.groupby("arm").cumcount() + 1
    runs = []
    for _, p in picks.iterrows():
        for s in SEEDS:
            base = TEST_LOSS[(p["family"], p["budget"])] * (1 + 0.1 * (p["rank"] - 1))
            noise = {1000: 0.0005, 4000: 0.0008}[p["budget"]]
            runs.append({**{k: p[k] for k in ("arm", "family", "budget", "budget_label", "trial_id", "rank",
                                              "params", "hidden", "depth", "hp_lr", "hp_batch_size",
                                              "hp_optimizer", "hp_order")},
                         "seed": s, "status": "ok", "train_seconds": p["train_seconds"] * (1 + 0.05 * rng.random()),
                         "seconds_per_epoch": p["seconds_per_epoch"], "test_loss": base + noise * rng.standard_normal(),
                         "psnr": 18 + rng.random(), "knn_acc": 0.9, "linear_acc": 0.85, "recall_at_5": 0.5,
                         "denoise_sp_mse": 0.06, "denoise_gauss_mse": 0.05, "label_agreement": 0.8, "class_sep": 1.0})
    runs = pd.DataFrame(runs)
    keys = ["arm", "family", "budget", "budget_label", "trial_id", "rank"]
    agg = []
    for key, g in runs.groupby(keys, sort=False):
        row = dict(zip(keys, key))
        row.update({c: g[c].iloc[0] for c in ("params", "hidden", "depth", "hp_lr", "hp_batch_size", "hp_optimizer",
                                              "hp_order")})
        row["n"] = len(g)
        for m in ("test_loss", "psnr", "knn_acc", "recall_at_5", "denoise_sp_mse", "denoise_gauss_mse",
                  "train_seconds", "seconds_per_epoch"):
            row[f"{m}_mean"], row[f"{m}_std"] = g[m].mean(), g[m].std(ddof=1)
        agg.append(row)
    return runs, pd.DataFrame(agg)


def _journal(path, arm, rng, n_trials=8, params=("lr", "batch_size", "order")):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=arm, direction="minimize",
                                storage=JournalStorage(JournalFileBackend(str(path))),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(n_trials):
        t = study.ask()
        lr = t.suggest_float("lr", 1e-4, 1e-2, log=True) if "lr" in params else 1e-3
        bs = t.suggest_categorical("batch_size", [32, 64]) if "batch_size" in params else 32
        order = t.suggest_int("order", 1, 4) if "order" in params else 1
        value = abs(np.log10(lr) + 3) + 0.01 * order + 0.001 * (bs == 64)
        steps = EPOCHS if i % 3 else 2           # every third trial stopped early by ASHA
        for step in range(1, steps + 1):
            t.report(value + 0.1 / step, step)
        study.tell(t, value)


def make_results_dir(root, confirmed=True, models=True, studies=True, input_dim=64):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    results = _search_rows(rng)
    arms = [{"name": f"{f}_b{b}", "family": f, "layer": l, "variant": "ae", "budget": b, "budget_label": lab}
            for lab, b in BUDGETS for f, l in FAMILIES.items()]
    run = {"space": "toy", "description": "Toy question: does kae beat mlp at equal parameters?",
           "dataset": "toy8", "input_dim": 64, "latent_dim": 2, "splits": {"train": 100, "val": 20, "test": 40},
           "budgets": [{"label": lab, "params": b} for lab, b in BUDGETS], "arms": arms, "samples_per_arm": 6,
           "epochs": EPOCHS, "asha": {"grace_period": 2, "reduction_factor": 3, "max_t": EPOCHS}, "seed": 0,
           "command": "python -m tunekae search --space toy", "versions": {"python": "3.11"},
           "hardware": {"cpus": 2, "gpu": None}, "started": "2026-01-01T00:00:00", "wall_seconds": 123.4}
    (root / "run.json").write_text(json.dumps(run))
    results.to_csv(root / "results.csv", index=False)
    if confirmed:
        runs, agg = _confirmed(results, rng)
        runs.to_csv(root / "confirmed_runs.csv", index=False)
        agg.to_csv(root / "confirmed.csv", index=False)
        if models:
            (root / "models").mkdir()
            torch.manual_seed(0)
            for r in agg[agg["rank"] == 1].itertuples():
                cfg = ModelConfig(family="linear", input_dim=input_dim, latent_dim=2, hidden=(12,))
                payload = {"model_config": cfg.to_dict(), "state_dict": build_model(cfg).state_dict()}
                torch.save(payload, root / "models" / f"{r.arm}__{r.trial_id}.pt")
    if studies:   # every arm's study in the search's one journal
        for a in arms:
            _journal(root / "studies.journal", a["name"], rng)
    return root


def toy_splits(run, data_dir=None):
    g = torch.Generator().manual_seed(0)
    return SimpleNamespace(name="toy8", test_x=torch.rand(40, 64, generator=g), test_y=torch.arange(40) % 4,
                           image_shape=(8, 8), n_classes=4, input_dim=64)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return make_results_dir(tmp_path_factory.mktemp("toy") / "run")


def run_analysis(capsys, *argv):
    """(exit status, stdout, stderr) of `python -m tunekae.analysis ARGV`, in this process."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def cli(capsys, monkeypatch):
    monkeypatch.setattr(recon, "load_splits", toy_splits)
    return lambda *argv: run_analysis(capsys, *argv)


def assert_png(path):
    import matplotlib.image as mpimg
    assert path.stat().st_size > 5_000, f"{path.name} is suspiciously small"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 150 and img.shape[1] > 150
    assert img[..., :3].std() > 0.01, f"{path.name} is blank"


def test_pareto(cli, results_dir, tmp_path):
    code, out, err = cli("pareto", results_dir, "--out", tmp_path)
    assert code == 0, err
    for name in ("pareto.csv", "hypervolume.csv", "pareto_params.png", "pareto_time.png"):
        assert (tmp_path / name).exists(), name
    for png in ("pareto_params.png", "pareto_time.png"):
        assert_png(tmp_path / png)
    pts = pd.read_csv(tmp_path / "pareto.csv", dtype={"trial_id": str})
    search = pts[pts["source"] == "search"]
    assert len(search) == 24            # status ok only: infeasible and diverged trials have no loss to draw
    # ASHA-stopped trials have the lowest (truncated) losses but never define a front.
    stopped = search[search["stopped_early"]]
    assert len(stopped) == 8 and not stopped.filter(like="on_").any().any()
    fronts = search[search["on_front_params"]]
    assert fronts["full_budget"].all() and len(fronts) >= 1
    assert search.loc[search["loss"][search["full_budget"]].idxmin(), "on_front_params"]
    for col in ("on_front_3d", "on_front_time", "on_family_front_params", "on_family_front_3d"):
        assert col in pts
    # Each family's own front has at least one point per source.
    assert set(search[search["on_family_front_params"]]["family"]) == {"mlp", "kae"}
    conf = pts[pts["source"] == "confirmed"]
    assert len(conf) == 8 and conf["loss_metric"].eq("test_loss_mean").all()
    hv = pd.read_csv(tmp_path / "hypervolume.csv")
    assert set(hv["family"]) == {"all", "mlp", "kae"} and set(hv["source"]) == {"search", "confirmed"}
    assert (hv.groupby("source")["ref_loss"].nunique() == 1).all()   # one reference point per source
    for src, g in hv.groupby("source"):
        assert g.set_index("family")["hypervolume"]["all"] >= g[g["family"] != "all"]["hypervolume"].max() - 1e-12
    assert hv["hypervolume_normalised"].between(0, 1).all()


def test_pareto_val_only(cli, results_dir, tmp_path):
    code, _, err = cli("pareto", results_dir, "--out", tmp_path, "--loss", "val")
    assert code == 0, err
    assert set(pd.read_csv(tmp_path / "pareto.csv")["source"]) == {"search"}


def test_table(cli, results_dir, tmp_path):
    code, out, err = cli("table", results_dir, "--out", tmp_path)
    assert code == 0, err
    md = (tmp_path / "table.md").read_text()
    tab = pd.read_csv(tmp_path / "table.csv")
    assert len(tab) == 4 and "mean ± std over 3 seeds" in md
    assert "hidden 12" in md and "lr" in md and "order 3" in md
    for r in tab.itertuples():                        # every row's numbers appear as formatted
        assert f"{fmt_loss(r.loss)} ± {fmt_std(r.loss_std)}" in md
    assert "| budget | family | key hyperparameters | params |" in md


def test_table_without_confirmation_falls_back_to_validation(cli, tmp_path):
    d = make_results_dir(tmp_path / "run", confirmed=False, studies=False)
    code, out, err = cli("table", d)
    assert code == 0, err
    md = (d / "analysis" / "table.md").read_text()
    assert "VALIDATION" in md and "python -m tunekae confirm" in md
    tab = pd.read_csv(d / "analysis" / "table.csv", dtype={"trial_id": str})
    assert tab["source"].eq("search validation").all()
    assert not tab["trial_id"].str.endswith(("00004", "00005")).any()   # stopped-early trials are not "best"


def test_compare(cli, results_dir, tmp_path):
    code, out, err = cli("compare", results_dir, "--out", tmp_path)
    assert code == 0, err
    cmp = pd.read_csv(tmp_path / "compare.csv")
    md = (tmp_path / "compare.md").read_text()
    assert len(cmp) == 4 and cmp["n"].eq(3).all()
    at1 = cmp[cmp["budget"] == 1000].set_index("family")
    assert at1.loc["mlp", "is_best"] and at1.loc["kae", "significant"]
    assert at1.loc["kae", "ci_low"] > 0 and at1.loc["kae", "p_value"] < 0.05
    # The Welch p-value is scipy's, over the seeds of confirmed_runs.csv.
    from scipy import stats
    runs = pd.read_csv(results_dir / "confirmed_runs.csv", dtype={"trial_id": str})
    a = runs[runs["trial_id"] == at1.loc["kae", "trial_id"]]["test_loss"]
    b = runs[runs["trial_id"] == at1.loc["mlp", "trial_id"]]["test_loss"]
    assert at1.loc["kae", "p_value"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert at1.loc["kae", "diff_vs_best"] == pytest.approx(a.mean() - b.mean())
    at4 = cmp[cmp["budget"] == 4000]
    assert not at4["significant"].any()
    assert "Significant at p < 0.05" in md and "kae vs mlp at 1x" in md
    assert f"p={fmt_p(at1.loc['kae', 'p_value'])}" in md


def test_compare_needs_confirmation(cli, tmp_path):
    d = make_results_dir(tmp_path / "run", confirmed=False, studies=False)
    code, out, err = cli("compare", d)
    assert code == 2
    assert err.count("\n") == 1 and "python -m tunekae confirm" in err and "Traceback" not in err
    assert not (d / "analysis").exists()


def test_recon(cli, results_dir, tmp_path):
    code, out, err = cli("recon", results_dir, "--out", tmp_path, "--n", "4")
    assert code == 0, err
    for name in ("recon_1x.png", "recon_4x.png", "latent_1x.png", "latent_4x.png"):  # latent_dim 2: scatters too
        assert_png(tmp_path / name)


def test_recon_point_data_and_missing_models(cli, monkeypatch, tmp_path):
    d = make_results_dir(tmp_path / "moons", studies=False, input_dim=2)
    g = torch.Generator().manual_seed(0)
    moons = SimpleNamespace(test_x=torch.rand(50, 2, generator=g), test_y=torch.arange(50) % 2, image_shape=None)
    monkeypatch.setattr(recon, "load_splits", lambda run, data_dir=None: moons)
    code, _, err = cli("recon", d)
    assert code == 0, err
    for name in ("recon_1x.png", "latent_1x.png", "recon_4x.png", "latent_4x.png"):
        assert_png(d / "analysis" / name)
    code, _, err = cli("recon", make_results_dir(tmp_path / "no_models", models=False, studies=False))
    assert code == 2 and err.count("\n") == 1 and "models/*.pt" in err


def test_recon_picks_one_per_class():
    idx = recon.pick_examples(np.array([3, 1, 1, 0, 2, 3, 0]), 5)
    assert idx.tolist() == [3, 1, 4, 0, 2]


def test_importance(cli, results_dir, tmp_path):
    code, out, err = cli("importance", results_dir, "--out", tmp_path)
    assert code == 0, err
    imp = pd.read_csv(tmp_path / "importance.csv")
    assert set(imp["arm"]) == {"mlp_b1000", "kae_b1000", "mlp_b4000", "kae_b4000"}
    assert set(imp["param"]) == {"lr", "batch_size", "order"}
    assert imp.groupby("arm")["importance"].sum().round(6).eq(1).all()
    assert imp["n_stopped_early"].eq(3).all()      # trials 0, 3, 6 of 8 stopped at step 2 < 6 epochs
    assert_png(tmp_path / "importance.png")
    code, _, err = cli("importance", results_dir, "--out", tmp_path, "--full-only")
    assert code == 0, err
    assert pd.read_csv(tmp_path / "importance.csv")["n_trials"].eq(5).all()


def test_importance_too_few_trials_or_one_param(cli, tmp_path):
    d = make_results_dir(tmp_path / "run", confirmed=False, studies=False)
    rng = np.random.default_rng(1)
    _journal(d / "studies.journal", "mlp_b1000", rng, n_trials=2)
    _journal(d / "studies.journal", "kae_b1000", rng, n_trials=6, params=("lr",))
    code, _, err = cli("importance", d)
    assert code == 0, err
    imp = pd.read_csv(d / "analysis" / "importance.csv").set_index("arm")
    assert "too few" in imp.loc["mlp_b1000", "note"] and np.isnan(imp.loc["mlp_b1000", "importance"])
    assert imp.loc["kae_b1000", "param"] == "lr" and "single" in imp.loc["kae_b1000", "note"]
    assert_png(d / "analysis" / "importance.png")


def _section(md, title):
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_report_numbers_equal_the_csvs(cli, results_dir):
    code, out, err = cli("report", results_dir)
    assert code == 0, err
    a = results_dir / "analysis"
    md = (a / "report.md").read_text()
    for name in ("pareto.csv", "hypervolume.csv", "table.md", "table.csv", "compare.md", "compare.csv",
                 "importance.csv", "pareto_params.png", "pareto_time.png", "importance.png", "recon_1x.png"):
        assert (a / name).exists(), name
        if name.endswith((".png", ".csv")):
            assert f"({name})" in md, f"report.md does not link {name}"
    assert "Toy question" in _section(md, "Question")
    proto = _section(md, "Protocol")
    for text in ("toy8", "train 100", "1x = 1,000", "4x = 4,000", "6 trials per arm", "6 epochs",
                 "grace period 2", "reduction factor 3", "3 fresh seeds", "search 123 s", "cpus 2"):
        assert text in proto, text
    # The answer: parse each budget's clause back and compare with compare.csv.
    answer = _section(md, "Answer").strip()
    cmp = pd.read_csv(a / "compare.csv")
    num = r"([0-9.e+-]+)"
    clauses = re.findall(rf"[Aa]t ([0-9,]+) parameters the best (\w+) reaches test MSE {num} ± {num} vs "
                         rf"(\w+) {num} ± {num} \((difference (?:not )?significant), p={num}\)", answer)
    assert len(clauses) == 2, answer
    for budget, best, m, s, other, om, os_, verdict, p in clauses:
        at = cmp[cmp["budget"] == int(budget.replace(",", ""))].set_index("family")
        assert at.loc[best, "is_best"]
        for fam, mean, std in ((best, m, s), (other, om, os_)):   # 4 and 2 significant digits
            assert float(mean) == pytest.approx(at.loc[fam, "test_loss_mean"], rel=5e-4)
            assert float(std) == pytest.approx(at.loc[fam, "test_loss_std"], rel=5e-2)
        assert float(p) == pytest.approx(at.loc[other, "p_value"], rel=5e-2)
        assert (verdict == "difference significant") == bool(at.loc[other, "significant"])
    wins = cmp[cmp["is_best"]]["family"].value_counts()
    said = re.search(r"(\w+(?: and \w+)*) (?:is the best family|are each best) at (\d) of 2 budgets", answer)
    assert said and int(said.group(2)) == wins.max()
    assert set(said.group(1).split(" and ")) == set(wins[wins == wins.max()].index)
    n_sig = int(re.search(r"and (\d) of 2 differences", answer).group(1))
    assert n_sig == int(cmp["significant"].sum())
    assert answer.count(". ") + answer.endswith(".") == 2          # two sentences


def test_report_without_confirmation(cli, tmp_path):
    d = make_results_dir(tmp_path / "run", confirmed=False)
    code, out, err = cli("report", d)
    assert code == 0, err
    md = (d / "analysis" / "report.md").read_text()
    assert "provisional" in _section(md, "Answer") and "compare skipped" in md and "recon skipped" in md
    assert (d / "analysis" / "importance.png").exists() and not (d / "analysis" / "compare.csv").exists()


@pytest.mark.parametrize("case", ["missing", "no_run_json", "empty_results", "header_only", "no_full_budget",
                                  "bad_json"])
def test_bad_dirs_exit_2_with_one_line(cli, tmp_path, case):
    d = tmp_path / "run"
    if case != "missing":
        d.mkdir()
        (d / "run.json").write_text(json.dumps({"epochs": 6}))
        pd.DataFrame({"arm": ["a"], "family": ["mlp"], "status": ["ok"], "val_loss": [0.1], "params": [10],
                      "stopped_early": [True], "epochs_completed": [2], "epochs_budget": [6]}).to_csv(
            d / "results.csv", index=False)
    if case == "no_run_json":
        (d / "run.json").unlink()
    if case == "empty_results":
        (d / "results.csv").write_text("")
    if case == "header_only":
        (d / "results.csv").write_text("arm,family,status,val_loss,params\n")
    if case == "bad_json":
        (d / "run.json").write_text("{not json")
    for command in ("pareto", "report", "table"):
        code, out, err = cli(command, d)
        assert code == 2, (command, err)
        assert err.count("\n") == 1 and err.startswith(f"tunekae.analysis {command}: error: "), err
        assert "Traceback" not in err
    if case == "no_full_budget":
        assert "full epoch budget" in err


def test_help_lists_commands_with_examples(cli):
    code, out, _ = cli("--help")
    assert code == 0
    for command in ("pareto", "table", "compare", "recon", "importance", "report"):
        assert command in out and f"python -m tunekae.analysis {command} " in out
        code, sub, _ = cli(command, "--help")
        assert code == 0 and "examples:" in sub and "--out" in sub


def test_analysis_does_not_import_ray():
    import subprocess
    import sys
    code = ("import sys, tunekae.analysis.cli, tunekae.analysis.report; "
            "assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules), 'ray imported'; "
            "assert 'torch' not in sys.modules, 'torch imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_report_says_what_changed_since_a_previous_run(cli, tmp_path):
    """`report DIR --previous OLD`: each family's confirmed test MSE then and now, and whether each
    budget's best family changed (a study rerun after a fix to the tool)."""
    old = make_results_dir(tmp_path / "old", studies=False)
    new = make_results_dir(tmp_path / "new", studies=False)
    runs = pd.read_csv(new / "confirmed_runs.csv")
    runs.loc[runs["arm"] == "kae_b4000", "test_loss"] *= 2.0          # kae, best at 4x before, now worse
    runs.to_csv(new / "confirmed_runs.csv", index=False)
    code, _, err = cli("report", new, "--previous", old)
    assert code == 0, err
    md = (new / "analysis" / "report.md").read_text()
    assert "### What changed since the previous run" in md
    assert "at 1,000 parameters the best family was mlp and is mlp (unchanged)" in md
    assert "at 4,000 parameters the best family was kae and is mlp (changed)" in md
    changes = pd.read_csv(new / "analysis" / "changes.csv").set_index(["budget", "family"])
    assert changes.loc[(4000, "kae"), "ratio"] == pytest.approx(2.0, rel=1e-6)
    assert changes.loc[(1000, "mlp"), "ratio"] == pytest.approx(1.0)
    code, _, err = cli("report", new, "--previous", tmp_path / "nowhere")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_axes_draws_loss_against_latent_and_training_size(cli, tmp_path):
    d = make_results_dir(tmp_path / "run", studies=False)
    code, _, err = cli("axes", d)
    assert code == 2 and "crossed no latent sizes or training-set sizes" in err     # a plain search
    results = pd.read_csv(d / "results.csv")
    results["latent_dim"] = results["budget"].map({1000: 8, 4000: 32})   # as if the budgets were latents
    results["train_size"] = results["budget"].map({1000: 500, 4000: 2000})
    results.to_csv(d / "results.csv", index=False)
    code, _, err = cli("axes", d)
    assert code == 0, err
    table = pd.read_csv(d / "analysis" / "axes.csv")
    assert sorted(table["latent_dim"]) == [8, 8, 32, 32] and set(table["source"]) == {"test"}
    confirmed = pd.read_csv(d / "confirmed.csv")
    best = confirmed.sort_values("test_loss_mean").drop_duplicates("arm").set_index("arm")["test_loss_mean"]
    assert dict(zip(table["arm"], table["loss"])) == pytest.approx(best.to_dict())
    for png in ("loss_vs_latent.png", "loss_vs_train_size.png"):
        assert_png(d / "analysis" / png)
    code, _, err = cli("report", d)
    assert code == 0 and "![loss_vs_latent.png](loss_vs_latent.png)" in (d / "analysis" / "report.md").read_text()


def test_pareto_of_pruned_models(cli, results_dir, tmp_path):
    """--params pruned draws each model at its pruned size and loss after pruning: the KAE trial
    with the worst loss, pruned to 10 parameters, joins the front; models never pruned (the
    MLP rows here) are left out; the trained fronts' files are not touched."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(results_dir, run)
    results = pd.read_csv(run / "results.csv", dtype={"trial_id": str})
    kae = results["family"] == "kae"
    results["pruned_params"] = np.where(kae, results["params"], np.nan)
    results["pruned_val_loss"] = np.where(kae, results["val_loss"], np.nan)
    full_kae = results.index[kae & (results["status"] == "ok") & ~results["stopped_early"]]
    worst = results.loc[full_kae, "val_loss"].idxmax()
    results.loc[worst, ["pruned_params", "pruned_val_loss"]] = [10, 0.5]
    results.to_csv(run / "results.csv", index=False)
    confirmed = pd.read_csv(run / "confirmed.csv", dtype={"trial_id": str})
    confirmed["pruned_params_mean"] = np.where(confirmed["family"] == "kae", confirmed["params"] // 2, np.nan)
    confirmed["pruned_test_loss_mean"] = confirmed["test_loss_mean"] * 1.1
    confirmed.to_csv(run / "confirmed.csv", index=False)

    code, _, err = cli("pareto", run, "--out", tmp_path / "a", "--params", "pruned")
    assert code == 0, err
    assert not (tmp_path / "a" / "pareto.csv").exists()
    for name in ("pareto_pruned.csv", "hypervolume_pruned.csv", "pareto_pruned_params.png", "pareto_pruned_time.png"):
        assert (tmp_path / "a" / name).exists(), name
    pts = pd.read_csv(tmp_path / "a" / "pareto_pruned.csv", dtype={"trial_id": str})
    assert set(pts["family"]) == {"kae"}
    search = pts[pts["source"] == "search"].set_index("trial_id")
    assert len(search) == int(kae.sum()) and search.loc[results.loc[worst, "trial_id"], "params"] == 10
    assert search.loc[results.loc[worst, "trial_id"], ["loss", "on_front_params"]].tolist() == [0.5, True]
    conf = pts[pts["source"] == "confirmed"]
    kae_conf = confirmed[confirmed["family"] == "kae"]
    assert sorted(conf["params"]) == sorted(kae_conf["pruned_params_mean"])
    assert np.allclose(sorted(conf["loss"]), sorted(kae_conf["pruned_test_loss_mean"]))

    code, _, err = cli("pareto", results_dir, "--out", tmp_path / "b", "--params", "pruned")
    assert code == 2 and "pruned_params" in err and "prune=True" in err and len(err.strip().splitlines()) == 1, err


def test_a_function_fitting_report_speaks_of_fitting_and_shows_rmse(cli, results_dir, tmp_path):
    """A regression run (function:NAME) is judged by test MSE and pykan's RMSE, with no image
    metrics, no reconstructions and no latent size in its protocol."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(results_dir, run)
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "dataset": "function:exp_sin", "input_dim": 2}))
    results = pd.read_csv(run / "results.csv", dtype={"trial_id": str})
    results["val_rmse"] = np.sqrt(results["val_loss"])
    results.to_csv(run / "results.csv", index=False)
    confirmed = pd.read_csv(run / "confirmed.csv", dtype={"trial_id": str})
    confirmed["rmse_mean"] = np.sqrt(confirmed["test_loss_mean"])
    confirmed.to_csv(run / "confirmed.csv", index=False)

    code, _, err = cli("report", run, "--out", tmp_path / "a")
    assert code == 0, err
    md = (tmp_path / "a" / "report.md").read_text()
    assert "which family fits the function best" in md and "reconstructs best" not in md
    assert "2 input(s), a regression" in md and "latent dim" not in md
    header = next(line for line in md.splitlines() if line.startswith("| budget | family"))
    assert "| RMSE |" in header and "after pruning" not in header     # nothing was pruned here
    assert "kNN acc" not in md and "PSNR" not in md
    assert "recon skipped" in md and "no images" in md
    table = pd.read_csv(tmp_path / "a" / "table.csv")
    best = table.loc[table["loss"].idxmin()]
    assert np.isclose(best["rmse"], np.sqrt(best["loss"]))


def test_a_one_family_study_reports_what_each_hyperparameter_value_does(cli, results_dir, tmp_path):
    """A search of one family is a hyperparameter study: its report gives, per sampled value, the
    full-budget trials that used it and their median and best validation loss, as computed here
    by hand; stopped-early trials and ranges of many values (lr) are left out."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(results_dir, run)
    results = pd.read_csv(run / "results.csv", dtype={"trial_id": str})
    results = results[results["family"] == "mlp"]
    results.to_csv(run / "results.csv", index=False)
    for name in ("confirmed.csv", "confirmed_runs.csv"):
        table = pd.read_csv(run / name, dtype={"trial_id": str})
        table[table["family"] == "mlp"].to_csv(run / name, index=False)
    meta = json.loads((run / "run.json").read_text())
    meta["arms"] = [a for a in meta["arms"] if a["family"] == "mlp"]
    (run / "run.json").write_text(json.dumps(meta))

    code, _, err = cli("report", run, "--out", tmp_path / "a")
    assert code == 0, err
    assert "What each hyperparameter does" in (tmp_path / "a" / "report.md").read_text()
    got = pd.read_csv(tmp_path / "a" / "marginals.csv")
    assert set(got["hyperparameter"]) == {"batch_size"}          # lr: a range, a value per trial
    full = results[(results["status"] == "ok") & ~results["stopped_early"]]
    for (arm, size), used in full.groupby(["arm", "hp_batch_size"]):
        row = got[(got["arm"] == arm) & (got["value"] == size)].iloc[0]
        assert row["trials"] == len(used)
        assert np.isclose(row["median_val_loss"], used["val_loss"].median())
        assert np.isclose(row["best_val_loss"], used["val_loss"].min())
