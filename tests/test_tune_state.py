"""tune_state: which of Tune's saved files a kill left damaged, and setting them aside."""
import json
import pickle

from tunekae.tune_state import damaged, is_whole, out_of_step, set_aside


def test_whole_json_and_pickles_pass_and_empty_or_cut_short_files_do_not():
    state = {"trial_data": [1, 2, 3], "name": "mlp_b2128"}
    as_json, as_pickle = json.dumps(state).encode(), pickle.dumps(state)
    assert is_whole(as_json) and is_whole(as_pickle)
    assert not is_whole(b"")
    assert not is_whole(as_json[:-1])
    assert not is_whole(as_pickle[:-1])          # every byte but the STOP opcode
    assert not is_whole(as_pickle[: len(as_pickle) // 2])


def test_damaged_names_the_newest_file_of_each_kind_that_tune_would_read(tmp_path):
    (tmp_path / "experiment_state-2026-12-03_17-38-59.json").write_text('{"trial_data": []}')
    (tmp_path / "searcher-state-2026-12-03_17-38-59.pkl").write_bytes(b"")           # older session: unread
    (tmp_path / "searcher-state-2026-12-03_18-00-00.pkl").write_bytes(pickle.dumps({"a": 1})[:5])
    (tmp_path / "search_gen_state-2026-12-03_18-00-00.json").write_bytes(pickle.dumps({"counter": 3}))
    (tmp_path / "tuner.pkl").write_bytes(pickle.dumps({"x": 1}))
    (tmp_path / ".validate_storage_marker").write_bytes(b"")
    (tmp_path / "trainable_1234").mkdir()
    (tmp_path / "trainable_1234" / "result.json").write_text("{cut")                 # a trial's file
    assert damaged(str(tmp_path)) == ["searcher-state-2026-12-03_18-00-00.pkl (cut short at 5 bytes)"]
    assert damaged(f"file://{tmp_path}") == damaged(str(tmp_path))   # --storage URIs, as pyarrow opens them
    (tmp_path / "tuner.pkl").write_bytes(b"")
    assert "tuner.pkl (empty)" in damaged(str(tmp_path))
    assert damaged(str(tmp_path / "no such arm")) == []


def test_set_aside_moves_every_state_file_and_deletes_nothing(tmp_path):
    files = {"experiment_state-2026-12-03_17-38-59.json": b"{}", "searcher-state-2026-12-03_17-38-59.pkl": b"",
             "tuner.pkl": pickle.dumps(1)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "trainable_1234").mkdir()
    aside = set_aside(str(tmp_path))
    assert aside.startswith(str(tmp_path) + "/damaged-state-")
    assert {p.name: p.read_bytes() for p in (tmp_path / aside.rsplit("/", 1)[1]).iterdir()} == files
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["trainable_1234", aside.rsplit("/", 1)[1]])
    assert damaged(str(tmp_path)) == []          # Tune starts afresh there


def _save(folder, trials, counter, live, known):
    """State files as one Tune save writes them (only the attributes out_of_step reads)."""
    stamp = "2026-12-03_17-38-59"
    data = [[json.dumps({"trial_id": t, "status": "RUNNING"}), "{}"] for t in trials]
    (folder / f"experiment_state-{stamp}.json").write_text(json.dumps({"trial_data": data}))
    (folder / f"search_gen_state-{stamp}.json").write_bytes(
        pickle.dumps({"counter": counter, "name:ConcurrencyLimiter": {"live_trials": set(live)}}))
    (folder / f"searcher-state-{stamp}.pkl").write_bytes(pickle.dumps({"_ot_trials": {t: None for t in known}}))


def test_out_of_step_finds_files_from_different_saves(tmp_path):
    _save(tmp_path, ["a", "b"], 2, ["b"], ["a", "b"])
    assert out_of_step(str(tmp_path)) == []                                   # one save
    _save(tmp_path, ["a"], 2, ["b"], ["a", "b"])                               # experiment a save behind
    problems = out_of_step(str(tmp_path))
    assert len(problems) == 3 and "counts 2 trials" in problems[0] and "holds 1 trial(s)" in problems[1]
    _save(tmp_path, ["a", "b"], 2, [], ["a"])                                  # searcher a save behind
    assert out_of_step(str(tmp_path)) == ["searcher-state-2026-12-03_17-38-59.pkl knows 1 trials, 1 of the "
                                          "experiment's 2"]
    (tmp_path / "searcher-state-2026-12-03_17-38-59.pkl").unlink()
    assert out_of_step(str(tmp_path)) == ["no searcher-state file"]
