"""What an independent fault and bad-input run broke (issue 27), one case per test, no Ray: a
results table cut short is refused, damaged run.json files and bad paths exit 2 with one line
and write nothing, and messages say what holds."""
import json

import pandas as pd
import pytest

from tunekae.results import summarize_arm
from test_analysis_cli import EPOCHS, make_results_dir


@pytest.fixture
def recorded(tmp_path):
    """A results dir whose run.json carries the per-arm summary the search records at its end."""
    d = make_results_dir(tmp_path / "run", studies=False)
    run = json.loads((d / "run.json").read_text())
    results = pd.read_csv(d / "results.csv")
    run["summary"] = {arm: summarize_arm(rows, EPOCHS) for arm, rows in results.groupby("arm")}
    run["options"] = {"space": "toy"}
    (d / "run.json").write_text(json.dumps(run))
    return d


def _every_reader(run_cli, d):
    """(exit code, stderr) of each command that reads a search's results."""
    from tunekae.analysis.cli import main as analysis
    out = []
    for argv in (["table", d], ["pareto", d]):
        code = analysis([str(a) for a in argv])
        out.append(("analysis " + argv[0], code))
    code, _, err = run_cli("confirm", d)
    out.append(("confirm", code))
    code, _, err2 = run_cli("train", "--from", d, "--trial", "mlp_b1000:0")
    out.append(("train --from", code))
    return out, err + err2


@pytest.mark.parametrize("cut", ["a row boundary", "inside a value"])
def test_a_results_table_cut_short_is_refused_by_every_reader(recorded, run_cli, capsys, cut):
    text = (recorded / "results.csv").read_text()
    lines = text.splitlines(keepends=True)
    if cut == "a row boundary":   # the last rows gone: one arm loses trials
        (recorded / "results.csv").write_text("".join(lines[:-3]))
        says = "rows of arm"
    else:                         # the file ends in the middle of a row
        (recorded / "results.csv").write_text(text[:len(text) - len(lines[-1]) // 2])
        says = "ends in the middle of a row"
    codes, err = _every_reader(run_cli, recorded)
    err += capsys.readouterr().err
    assert all(code == 2 for _, code in codes), codes
    assert err.count(says) >= 4 and "Traceback" not in err, err
    assert f"python -m tunekae search --output {recorded} --resume" in err
    assert not (recorded / "analysis").exists()


def test_an_edited_best_value_is_refused(recorded, run_cli):
    results = pd.read_csv(recorded / "results.csv")
    full = results[(results["arm"] == "kae_b1000") & ~results["stopped_early"] & (results["status"] == "ok")]
    best = full["val_loss"].idxmin()
    results.loc[best, "val_loss"] = 0.001                      # a value cut to fewer digits, say
    results.to_csv(recorded / "results.csv", index=False)
    code, _, err = run_cli("confirm", recorded)
    assert code == 2 and "gives arm kae_b1000 a best val_loss of 0.001" in err, err


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", json.dumps({"space": "x"})])
def test_a_damaged_run_json_exits_2_for_resume_and_confirm(tmp_path, run_cli, content):
    d = tmp_path / "run"
    d.mkdir()
    (d / "run.json").write_text(content)
    (d / "results.csv").write_text("arm,status\n")
    code, _, err = run_cli("search", "--output", d, "--resume")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "run.json" in err, err
    if content != json.dumps({"space": "x"}):   # confirm needs no options, but a readable record
        code, _, err = run_cli("confirm", d)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "run.json" in err, err
    assert sorted(p.name for p in d.iterdir()) == ["results.csv", "run.json"]


def test_a_space_path_that_is_no_python_file_exits_2(run_cli, tmp_path):
    plain = tmp_path / "my_space"
    plain.write_text("SPACE = 1\n")
    for target, says in ((plain, "must be a Python file ending in .py"), (tmp_path, "is a directory")):
        for command in (["spaces", target], ["search", "--space", target, "--output", tmp_path / "o"]):
            code, _, err = run_cli(*command)
            assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("where", ["a directory", "/proc"])
def test_train_refuses_a_save_path_before_training(run_cli, tmp_path, where):
    target = tmp_path if where == "a directory" else "/proc/x.pt"
    code, out, err = run_cli("train", "--dataset", "digits", "--epochs", "1", "--save", target)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--save" in err, err
    assert "epoch" not in out                          # refused before anything trained


@pytest.mark.parametrize("where", ["a file", "/proc"])
def test_analysis_refuses_an_out_it_cannot_write(tmp_path, capsys, where):
    from tunekae.analysis.cli import main as analysis
    d = make_results_dir(tmp_path / "run", confirmed=False, studies=False)
    target = d / "results.csv" if where == "a file" else "/proc/x"
    assert analysis(["table", str(d), "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--out" in err and "Traceback" not in err, err


def test_describe_and_match_refuse_what_train_refuses(run_cli):
    for argv, says in ((["describe", "--input-dim", "0"], "--input-dim must be >= 1"),
                       (["describe", "--family", "kae", "--order", "0"], "kae order must be >= 1"),
                       (["match", "--family", "kan", "--grid", "0", "--budget", "4x"], "grid >= 1"),
                       (["describe", "--family", "rbf", "--grid", "0"], "rbf grid must be >= 2"),
                       (["match", "--family", "mlp", "--budget", "0.0001x", "--dataset", "digits"],
                        "budget '0.0001x' is 0.213 parameters (0.0001 x the single-layer MLP's 2,128)")):
        code, _, err = run_cli(*argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, (argv, err)
    code, out, _ = run_cli("describe", "--hidden", "100000000", "--json")   # counted, never allocated
    assert code == 0 and json.loads(out)["params"] == 100_000_000 * (784 + 16 + 1) * 2 + 16 + 784
    code, out, _ = run_cli("match", "--family", "mlp", "--budget", "1e5", "--json")
    assert code == 0 and json.loads(out)["budget"] == 100_000


def test_trials_left_out_and_an_interrupted_confirm_are_said(tmp_path, capsys):
    """A NaN/inf validation loss drops a trial from tables and fronts: the counts must say so.
    A confirm killed mid-way left models.partial/: the report says its results are the last
    finished confirm's."""
    from tunekae.analysis.cli import main as analysis
    d = make_results_dir(tmp_path / "run with space", studies=False)
    results = pd.read_csv(d / "results.csv")
    results.loc[results.index[:2], "val_loss"] = [float("nan"), float("inf")]
    results.to_csv(d / "results.csv", index=False)
    assert analysis(["table", str(d)]) == 0
    out = capsys.readouterr().out
    assert "note: 2 trial(s) ended with a validation loss that is not a number (mlp_b1000 2)" in out
    (d / "models.partial").mkdir()
    assert analysis(["report", str(d)]) == 0
    report = (d / "analysis" / "report.md").read_text()
    assert "2 trial(s) ended with a validation loss that is not a number" in report
    assert "a confirm was interrupted (models.partial/ holds its unfinished models)" in report
    (d / "confirmed.csv").unlink()
    (d / "confirmed_runs.csv").unlink()
    assert analysis(["pareto", str(d), "--loss", "test"]) == 2
    assert f"python -m tunekae confirm '{d}'" in capsys.readouterr().err       # shell-quoted


@pytest.mark.parametrize("written", [False, True])
def test_ctrl_c_offers_a_resume_only_when_there_is_something_to_resume(run_cli, tmp_path, monkeypatch, written):
    """Ctrl-C while Ray starts leaves nothing behind, and `--resume` would fail there: the line
    says nothing was written. Once run.json exists, it gives the resume command."""
    import tunekae.search as search

    def interrupted(space, contexts, splits, opts, output, meta, resume):
        if written:
            output.mkdir(parents=True)
            (output / "run.json").write_text(json.dumps(meta))
        raise KeyboardInterrupt
    monkeypatch.setattr(search, "run_search", interrupted)
    out = tmp_path / "run"
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 1, "--epochs", 1,
                           "--output", out)
    assert code == 130
    if written:
        assert f"continue with: python -m tunekae search --output {out} --resume" in err, err
    else:
        assert "nothing was written" in err and "--resume" not in err and not out.exists(), err


def test_spaces_and_search_agree_on_a_budget_no_arm_fits_and_read_big_numbers(run_cli, tmp_path):
    """`spaces --budgets 4` refuses the budget as `search` does (it once called the trials
    'recorded as infeasible'); 1e12 is a number, far above what any arm reaches, not 'not a number'."""
    for argv in (["spaces", "kae_vs_mlp", "--budgets", "4"],
                 ["search", "--space", "kae_vs_mlp", "--budgets", "4", "--output", tmp_path / "a"]):
        code, _, err = run_cli(*argv)
        assert code == 2 and "budget 4 = 4 parameters: no arm of kae_vs_mlp can be built" in err, err
        assert "recorded as infeasible" not in err
    code, _, err = run_cli("search", "--space", "kae_vs_mlp", "--budgets", "1e12", "--output", tmp_path / "b")
    assert code == 2 and "budget 1e12 = 1,000,000,000,000 parameters" in err and "not a number" not in err, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
