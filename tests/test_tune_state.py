"""tune_state: which of Tune's saved files a kill left damaged, and setting them aside."""
import json
import pickle

from tunekae.tune_state import damaged, is_whole, set_aside


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
