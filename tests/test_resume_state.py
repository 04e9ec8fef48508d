"""The search's record and its resume, piece by piece, without a Ray cluster: trial logs, the
Optuna journal (and a cut-off last line), the dispatching searcher (round-robin, exactly
`samples` per arm, reruns of cut-off trials) and the per-arm ASHA replayed on resume."""
import json
import threading

import optuna
import pytest
from optuna.trial import TrialState

from tunekae.search.runner import plan_arm, replay_finished
from tunekae.search.scheduler import ArmScheduler
from tunekae.search.searcher import ArmSearcher
from tunekae.search.studies import open_storage, open_studies, repair_journal_tail
from tunekae.search.trial_log import ARM, STUDY_TRIAL, TrialLog, is_final, log_dir
from tunekae.spaces import arm_contexts, load_space, starting_point

EPOCHS = 4


# ----------------------------------------------------------------------------- trial logs
def test_a_finished_trial_log_replays_its_final_report(tmp_path):
    log = TrialLog(str(tmp_path), 7, epochs=3)
    assert log.finished_report() is None                     # never ran
    log.restart()
    for epoch in (1, 2, 3):
        log.append({"status": "ok", "epochs_completed": epoch, "val_loss": 1.0 / epoch})
    log.close()
    assert TrialLog(str(tmp_path), 7, epochs=3).finished_report() == {"status": "ok", "epochs_completed": 3,
                                                                       "val_loss": 1.0 / 3}


def test_a_cut_off_trial_log_is_not_replayed_and_restarts_empty(tmp_path):
    log = TrialLog(str(tmp_path), 0, epochs=5)
    log.restart()
    log.append({"status": "ok", "epochs_completed": 1, "val_loss": 0.5})
    log.close()
    assert TrialLog(str(tmp_path), 0, epochs=5).finished_report() is None     # stopped mid-way
    (tmp_path / "0.jsonl").write_text(json.dumps({"status": "ok", "epochs_completed": 5}) + "\n{\"stat")
    assert TrialLog(str(tmp_path), 0, epochs=5).finished_report() is None     # a line cut by the kill
    fresh = TrialLog(str(tmp_path), 0, epochs=5)
    fresh.restart()
    fresh.close()
    assert (tmp_path / "0.jsonl").read_text() == ""


@pytest.mark.parametrize("report, final", [({"status": "infeasible", "epochs_completed": 0}, True),
                                           ({"status": "diverged", "epochs_completed": 2}, True),
                                           ({"status": "collapsed", "epochs_completed": 5}, True),
                                           ({"status": "ok", "epochs_completed": 4}, False),
                                           ({"status": "ok", "epochs_completed": 5}, True)])
def test_which_report_ends_a_trial(report, final):
    assert is_final(report, 5) is final


def test_an_unwritable_log_costs_the_replay_not_the_trial(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = TrialLog(str(blocker / "logs"), 1, epochs=2)      # a file where the folder should be
    log.restart()
    log.append({"status": "ok", "epochs_completed": 1})     # no error
    log.close()
    assert "cannot write the trial log" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the journal
def test_a_journal_cut_mid_line_is_mended_and_the_cut_kept(tmp_path):
    """A full disk or a kill in the middle of a write leaves a partial last line: Optuna would fail
    to load it, and appending after it buries the damage mid-file."""
    storage = open_storage(tmp_path)
    study = optuna.create_study(study_name="arm", storage=storage)
    trial = study.ask()
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    study.tell(trial, 0.5)
    journal = tmp_path / "studies.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 5, "worker_id": "x", "trial_id": 0, "st')
    aside = repair_journal_tail(journal)
    assert journal.read_bytes() == whole and aside and open(aside, "rb").read().startswith(b'{"op_code": 5')
    assert repair_journal_tail(journal) is None                       # whole now: nothing to do
    again = optuna.load_study(study_name="arm", storage=open_storage(tmp_path))
    assert [t.value for t in again.trials] == [0.5]
    again.tell(again.ask(), 0.25)                                     # and it takes new trials
    assert [t.value for t in optuna.load_study(study_name="arm", storage=open_storage(tmp_path)).trials] == [0.5, 0.25]



@pytest.mark.parametrize("target", ["moved-away/studies.journal", "studies.journal"])
def test_a_journal_lock_a_killed_search_left_is_cleared(tmp_path, target):
    """A kill -9 while the searcher holds the journal's lock leaves Optuna's `.lock` symlink. Once
    the dir is moved its target is gone, and Optuna would spin on it forever (and else wait 30 s):
    the resume, which holds the output dir alone, clears it."""
    optuna.create_study(study_name="arm", storage=open_storage(tmp_path))
    lock = tmp_path / "studies.journal.lock"
    lock.symlink_to(tmp_path / target)

    def write():
        study = optuna.load_study(study_name="arm", storage=open_storage(tmp_path))
        study.tell(study.ask(), 0.5)
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(timeout=10)
    assert not writer.is_alive(), "the journal's write waited on the dead search's lock"
    assert [t.value for t in optuna.load_study(study_name="arm", storage=open_storage(tmp_path)).trials] == [0.5]
    assert not lock.exists() and not lock.is_symlink()


# ----------------------------------------------------------------------------- the searcher
def _contexts():
    space = load_space("kae_vs_mlp")
    return space, arm_contexts(space, 64, ["4x"])


def _search(tmp_path, samples=3, seed=0):
    """A searcher over the journal in tmp_path, as runner.py builds it (no Ray cluster)."""
    space, contexts = _contexts()
    tmp_path.mkdir(exist_ok=True)
    studies = open_studies(open_storage(tmp_path), [c.key for c in contexts],
                           {c.key: starting_point(c, c.arm.define) for c in contexts})
    plans = [plan_arm(i, c, studies[c.key], samples, tmp_path, EPOCHS) for i, c in enumerate(contexts)]
    scheduler = ArmScheduler([p.key for p in plans], EPOCHS, grace_period=1, reduction_factor=2)
    for plan in plans:
        replay_finished(scheduler, plan.key, plan.study)
    return ArmSearcher(plans, seed, EPOCHS, scheduler.stopped_early), plans, studies


def _final(config, epochs=EPOCHS):
    """A deterministic final report for a configuration."""
    return {"status": "ok", "epoch": epochs, "epochs_completed": epochs, "val_loss": 1.0 / (1 + config["lr"] * 100),
            "trial_id": "x"}


def test_trials_go_round_robin_exactly_samples_per_arm_recipe_first(tmp_path):
    searcher, plans, studies = _search(tmp_path, samples=3)
    configs = [searcher.suggest(f"t{i}") for i in range(6)]
    assert searcher.suggest("t6") == searcher.FINISHED
    assert [c[ARM] for c in configs] == ["mlp_b8512", "kae_b8512"] * 3
    assert [c[STUDY_TRIAL] for c in configs] == [0, 0, 1, 1, 2, 2]
    for first in configs[:2]:   # each arm's first trial is the paper's recipe
        assert (first["optimizer"], first["lr"], first["batch_size"], first["weight_decay"]) == ("adam", 1e-4, 256, 1e-4)
    assert configs[1]["order"] == 3
    for i, config in enumerate(configs):
        searcher.on_trial_result(f"t{i}", {"epoch": 1, "val_loss": 0.9})
        searcher.on_trial_complete(f"t{i}", _final(config))
    assert searcher.finished()
    for key, study in studies.items():
        trials = study.trials()
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
        # every epoch ASHA saw, the last one included (Tune passes a result that ends a trial
        # to on_trial_complete only)
        assert trials[0].intermediate_values == {1: 0.9, EPOCHS: trials[0].value}
        assert trials[0].user_attrs["result"]["status"] == "ok" and trials[0].user_attrs["config"][ARM] == key


def test_a_resumed_search_reruns_cut_off_trials_and_samples_as_an_uninterrupted_one(tmp_path):
    """Interrupted after 2 trials had ended and 2 were under way (one of which had in fact
    finished: its log says so, the journal had not heard) and a fifth had just been asked (its
    configuration not yet sampled), then resumed: the same configurations, numbers and values as
    a search never interrupted, exactly `samples` Optuna trials per arm."""
    samples = 5

    def run_all(searcher, names):
        out = {}
        while (config := searcher.suggest(f"{names}{len(out)}")) not in (None, searcher.FINISHED):
            out[f"{names}{len(out)}"] = config
            searcher.on_trial_complete(f"{names}{len(out) - 1}", _final(config))
        return out

    whole, _, _ = _search(tmp_path / "whole", samples)
    expected = {(c[ARM], c[STUDY_TRIAL]): c for c in run_all(whole, "w").values()}

    first, _, _ = _search(tmp_path / "cut", samples)
    configs = {f"t{i}": first.suggest(f"t{i}") for i in range(4)}
    for name in ("t0", "t1"):
        first.on_trial_complete(name, _final(configs[name]))
    finished_unheard = configs["t2"]            # its last report reached the log, not the driver
    log = TrialLog(log_dir(tmp_path / "cut", finished_unheard[ARM]), finished_unheard[STUDY_TRIAL], EPOCHS)
    log.restart()
    log.append(_final(finished_unheard))
    log.close()
    cut_off = configs["t3"]                     # mid-way at the interruption
    mlp = first.plans["mlp_b8512"]
    mlp.study.ask(first._sampler_seed(mlp, 2))  # asked; the kill came before its define ran

    again, plans, studies = _search(tmp_path / "cut", samples)
    assert [[(n, c) for _, n, c in p.reruns] for p in plans] == [[(2, None)], [(cut_off[STUDY_TRIAL], cut_off)]]
    assert studies[finished_unheard[ARM]].trials()[finished_unheard[STUDY_TRIAL]].state == TrialState.COMPLETE
    resumed = run_all(again, "r")
    assert list(resumed.values())[0] == cut_off            # the cut-off trials first, in the order asked
    got = {**{(c[ARM], c[STUDY_TRIAL]): c for c in configs.values()},
           **{(c[ARM], c[STUDY_TRIAL]): c for c in resumed.values()}}
    assert got == expected
    for study in studies.values():
        assert [t.state for t in study.trials()] == [TrialState.COMPLETE] * samples


def test_a_trial_tune_stopped_at_an_interruption_is_left_to_train_again(tmp_path):
    searcher, plans, studies = _search(tmp_path, samples=2)
    config = searcher.suggest("t0")
    # Ctrl-C: Tune ends the trial at epoch 2 of 4; ASHA did not stop it
    searcher.on_trial_complete("t0", {"status": "ok", "epoch": 2, "epochs_completed": 2, "val_loss": 0.5})
    assert studies[config[ARM]].trials()[0].state == TrialState.RUNNING
    assert not searcher.finished()


# ----------------------------------------------------------------------------- ASHA, replayed
def test_asha_replayed_on_resume_decides_as_it_would_have(tmp_path):
    """Eight trials one at a time; after the fifth the search is interrupted. A scheduler rebuilt
    from the studies (each finished trial's epochs replayed) stops exactly the trials the
    uninterrupted scheduler stops."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler
    curves = [[0.9 - 0.1 * e + 0.05 * ((7 * i) % 5) for e in range(EPOCHS)] for i in range(8)]

    def run(scheduler, trials, on_end=None):
        decisions = []
        for i in trials:
            t = Trial("x", config={ARM: "a"}, trial_id=f"a{i}", stub=True)
            scheduler.on_trial_add(None, t)
            for epoch, loss in enumerate(curves[i], 1):
                result = {"epoch": epoch, "val_loss": loss}
                if scheduler.on_trial_result(None, t, result) == TrialScheduler.STOP:
                    break
            scheduler.on_trial_complete(None, t, result)
            decisions.append(epoch)
            if on_end:
                on_end(i, epoch)
        return decisions

    whole = run(ArmScheduler(["a"], EPOCHS, grace_period=1, reduction_factor=2), range(8))
    assert 1 in whole and EPOCHS in whole                    # some stopped early, some ran on
    study = optuna.create_study(storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j"))), study_name="a")

    def record(i, end):
        trial = study.ask()
        for epoch, loss in enumerate(curves[i][:end], 1):
            trial.report(loss, epoch)
        trial.set_user_attr("result", {"epoch": end})
        study.tell(trial, curves[i][end - 1])

    first = run(ArmScheduler(["a"], EPOCHS, grace_period=1, reduction_factor=2), range(5), on_end=record)
    resumed = ArmScheduler(["a"], EPOCHS, grace_period=1, reduction_factor=2)
    from tunekae.search.studies import ArmStudy
    replay_finished(resumed, "a", ArmStudy("a", study, None))
    assert first + run(resumed, range(5, 8)) == whole


# ----------------------------------------------------------------------------- what Tune is sent
def test_tune_sees_the_rungs_the_epoch_after_each_the_last_and_every_non_ok_report():
    """ASHA (grace 1, factor 4, 30 epochs) decides at epochs 1, 4 and 16: those and the last are
    sent, and the epoch after each, whose report is where a stopped trial learns it was stopped."""
    from tunekae.search.scheduler import decision_epochs
    from tunekae.search.trainable import SearchSpec
    from tunekae.trial import RunSpec
    rungs = decision_epochs(30, 1, 4)
    assert rungs == {1, 4, 16, 30}
    spec = SearchSpec(RunSpec(input_dim=64, latent_dim=16, epochs=30), {}, "/x", rungs)
    sent = [e for e in range(1, 31) if spec.must_report({"status": "ok", "epoch": e})]
    assert sent == [1, 2, 4, 5, 16, 17, 30]
    assert spec.must_report({"status": "diverged", "epoch": 7}) and spec.must_report({"status": "infeasible"})
    every = SearchSpec(RunSpec(input_dim=64, latent_dim=16, epochs=30), {}, "/x", None)
    assert all(every.must_report({"status": "ok", "epoch": e}) for e in range(1, 31))
    assert decision_epochs(10, 5, 3) == {5, 10} and decision_epochs(3, 5, 3) == {3}


def test_a_trial_log_on_a_full_disk_ends_the_record_not_the_trial(tmp_path):
    """/dev/full answers every write with ENOSPC: the trial goes on (append raises nothing) and the
    record ends there (the file is closed; later reports are not attempted)."""
    (tmp_path / "3.jsonl").symlink_to("/dev/full")
    log = TrialLog(tmp_path, 3, EPOCHS)
    log.restart()
    assert log._file is not None
    for epoch in range(1, EPOCHS + 1):
        log.append({"status": "ok", "epoch": epoch, "epochs_completed": epoch, "val_loss": 0.1})
        assert log._file is None
    log.close()


def test_a_trials_record_keeps_its_own_report_not_tunes_flattened_config():
    from tunekae.search.searcher import metrics_of
    result = {"val_loss": 0.1, "status": "ok", "config/lr": 0.01, "config/arm": "mlp_b1", "time_total_s": 3.0}
    assert metrics_of(result) == {"val_loss": 0.1, "status": "ok"}
