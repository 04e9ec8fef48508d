"""Resume after kill -9, piece by piece: the trial log that replays a finished trial, and the
Optuna searcher whose journal may be ahead of Tune's saved state (no Ray cluster needed)."""
import json

import optuna
import pytest

from tunekae.trial_log import TrialLog, is_final


def test_a_finished_trial_log_replays_its_final_report(tmp_path):
    log = TrialLog(str(tmp_path), 7, epochs=3)
    assert log.finished_report() is None                     # never ran
    log.restart()
    for epoch in (1, 2, 3):
        log.append({"status": "ok", "epochs_completed": epoch, "val_loss": 1.0 / epoch, "train_seconds": 0.1 * epoch})
    log.close()
    again = TrialLog(str(tmp_path), 7, epochs=3).finished_report()
    assert again == {"status": "ok", "epochs_completed": 3, "val_loss": 1.0 / 3, "train_seconds": 0.1 * 3}


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


def test_a_trial_stopped_early_replays_the_report_of_the_epoch_it_ended_at(tmp_path):
    log = TrialLog(str(tmp_path), 3, epochs=5)
    log.restart()
    for epoch in (1, 2, 3):   # training runs ahead of Tune: epoch 3 was logged after the stop at 2
        log.append({"status": "ok", "epoch": epoch, "epochs_completed": epoch, "val_loss": 1.0 / epoch})
    log.close()
    assert TrialLog(str(tmp_path), 3, epochs=5).finished_report() is None    # cut off, or stopped?
    TrialLog(str(tmp_path), 3, epochs=5).mark_ended(2)                        # the driver: stopped at 2
    assert TrialLog(str(tmp_path), 3, epochs=5).finished_report() == {
        "status": "ok", "epoch": 2, "epochs_completed": 2, "val_loss": 0.5}
    rerun = TrialLog(str(tmp_path), 3, epochs=5)
    rerun.restart()                  # a run that retrains has not reached that end (yet)
    rerun.close()
    assert not (tmp_path / "3.ended").exists() and rerun.finished_report() is None


@pytest.mark.parametrize("report, final", [({"status": "infeasible", "epochs_completed": 0}, True),
                                           ({"status": "diverged", "epochs_completed": 2}, True),
                                           ({"status": "error", "epochs_completed": 1}, True),
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


def _define(trial):
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    trial.suggest_categorical("batch_size", [32, 64])


def _searcher(path, **kwargs):
    from tunekae.searcher import ResumableOptunaSearch
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return ResumableOptunaSearch(space=_define, metric="val_loss", mode="min", study_name="arm",
                                 sampler=optuna.samplers.TPESampler(seed=0), storage=storage, **kwargs)


def _finish(searcher, trial_id, value, epochs=2):
    for epoch in range(1, epochs + 1):
        searcher.on_trial_result(trial_id, {"val_loss": value + 1 / epoch, "epoch": epoch, "training_iteration": epoch})
    searcher.on_trial_complete(trial_id, {"val_loss": value, "epoch": epochs})


def test_a_restored_searcher_survives_a_journal_ahead_of_its_checkpoint(tmp_path):
    """Tune saved the searcher when t0 had finished and t1 was running; before the kill, t1
    finished and t2 and t3 were asked (t2 also finished) in the journal only."""
    journal, saved = tmp_path / "arm.journal", tmp_path / "searcher.pkl"
    before = _searcher(journal)
    configs = {t: before.suggest(t) for t in ("t0", "t1")}
    _finish(before, "t0", 0.30)
    before.save(str(saved))                                  # Tune's checkpoint
    _finish(before, "t1", 0.20)
    configs["t2"] = before.suggest("t2")
    _finish(before, "t2", 0.10)
    configs["t3"] = before.suggest("t3")                     # asked, running at the kill
    assert [configs[t]["study_trial"] for t in ("t0", "t1", "t2", "t3")] == [0, 1, 2, 3]

    after = _searcher(journal)
    after.restore(str(saved))
    # t1 reruns (its log replays the final report with epoch 2): nothing raises, nothing changes
    after.on_trial_result("t1", {"val_loss": 0.20, "epoch": 2, "training_iteration": 1})
    after.on_trial_complete("t1", {"val_loss": 0.20, "epoch": 2})
    # Tune knows nothing of t2, t3: its next trials adopt them, with their parameters and numbers
    adopted = [after.suggest(t) for t in ("n2", "n3")]
    assert adopted == [configs["t2"], configs["t3"]]
    after.on_trial_result("n2", {"val_loss": 0.10, "epoch": 2})
    after.on_trial_complete("n2", {"val_loss": 0.10, "epoch": 2})
    _finish(after, "n3", 0.05)
    new = after.suggest("n4")                                # then the sampler goes on
    assert new["study_trial"] == 4
    _finish(after, "n4", 0.40)

    study = optuna.load_study(study_name="arm", storage=after._ot_study._storage)
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]               # one Optuna trial per Tune trial
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert [t.value for t in study.trials] == [0.30, 0.20, 0.10, 0.05, 0.40]
    assert study.trials[1].intermediate_values == {1: 1.2, 2: 0.7}         # the replay did not overwrite step 1


def test_the_searcher_records_where_a_trial_stopped_early_before_optuna_hears_of_it(tmp_path):
    logs = tmp_path / "logs"
    searcher = _searcher(tmp_path / "arm.journal", log_dir=str(logs), epochs=4)
    for t in ("t0", "t1"):
        searcher.suggest(t)
    searcher.on_trial_result("t0", {"val_loss": 0.9, "epoch": 1})
    searcher.on_trial_complete("t0", {"val_loss": 0.9, "epoch": 1, "status": "ok", "epochs_completed": 1})  # ASHA
    _finish(searcher, "t1", 0.2, epochs=4)                                                  # ran every epoch
    assert json.loads((logs / "0.ended").read_text()) == {"epoch": 1}
    assert not (logs / "1.ended").exists()   # its log's last report is final already


def test_a_fresh_searcher_over_a_journal_with_trials_adopts_them_in_order(tmp_path):
    """Tune's saved state was damaged: the arm's new Tune experiment starts with a fresh
    searcher over the same journal, whose first trials must be the journal's, not new ones."""
    journal = tmp_path / "arm.journal"
    before = _searcher(journal)
    configs = [before.suggest(t) for t in ("t0", "t1", "t2")]
    _finish(before, "t0", 0.3)
    _finish(before, "t1", 0.2)                               # t2: running at the kill
    after = _searcher(journal)
    after.adopt_journal()
    assert [after.suggest(t) for t in ("n0", "n1", "n2")] == configs
    after.on_trial_complete("n0", {"val_loss": 0.3, "epoch": 2})   # replayed: already told, skipped
    _finish(after, "n2", 0.1)
    assert after.suggest("n3")["study_trial"] == 3
    study = optuna.load_study(study_name="arm", storage=after._ot_study._storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "COMPLETE", "RUNNING"]
    assert [t.value for t in study.trials[:3]] == [0.3, 0.2, 0.1]
