"""What a search selects on: Space(metric, mode) and two objectives (tunekae.selection)."""
import math

import pandas as pd
import pytest

from tunekae.selection import FINAL_ONLY, Objective, Selection, check_arms, rank
from tunekae.train import DIVERGED_LOSS


def test_the_default_is_reconstruction_mse_lower_is_better():
    s = Selection.of()
    assert s.is_default() and s.primary == Objective("val_loss", "min") and not s.multi and s.per_epoch
    assert Selection.from_dict(None) == s and Selection.from_dict(s.to_dict()) == s


@pytest.mark.parametrize("kwargs, fragment", [
    ({"metric": "test_loss"}, "validation metric"),
    ({"metric": "val_loss", "mode": "up"}, "'min' or 'max'"),
    ({"metric": "val_kl", "mode": "max"}, "would prefer diverged"),
    ({"objectives": [("val_loss", "min")]}, "two (metric, mode) pairs"),
    ({"objectives": [("val_loss", "min"), ("val_loss", "min")]}, "the same metric"),
    ({"objectives": [("val_loss", "min"), ("val_kl",)]}, "(metric, mode) pair"),
])
def test_a_bad_selection_says_what_is_wrong(kwargs, fragment):
    with pytest.raises(ValueError, match=None) as e:
        Selection.of(**kwargs)
    assert fragment in str(e.value)


def test_unfinished_trials_get_the_worst_value_in_the_metrics_direction():
    lower, higher = Objective("val_kl", "min"), Objective("val_linear_acc", "max")
    assert lower.value({"status": "ok", "val_kl": 3.5}) == 3.5
    assert lower.value({"status": "diverged", "val_kl": 0.0}) == DIVERGED_LOSS
    assert lower.value({"status": "ok"}) == DIVERGED_LOSS                       # not recorded
    assert higher.value({"status": "error"}) == -DIVERGED_LOSS
    assert higher.value({"status": "collapsed", "val_linear_acc": 0.1}) == 0.1   # a real outcome
    assert lower.value({"status": "ok", "val_kl": math.nan}) == DIVERGED_LOSS


def test_each_arm_must_record_what_is_selected_on():
    variants = {"vae_b1": "vae", "mlp_b1": "ae"}
    [problem] = check_arms(Selection.of("val_kl"), variants, asha=True)
    assert "mlp_b1" in problem and "vae" in problem and "vae_b1" not in problem.split("arm(s)")[1]
    assert check_arms(Selection.of("val_objective"), variants, asha=True) == []   # every model has an objective
    [problem] = check_arms(Selection.of("val_linear_acc", "max"), variants, asha=True)
    assert "asha=False" in problem and "last epoch" in problem
    assert check_arms(Selection.of("val_linear_acc", "max"), variants, asha=False) == []
    [problem] = check_arms(Selection.of("val_typo"), variants, asha=False)
    assert "no metric" in problem and FINAL_ONLY[0] in problem


def test_rank_puts_ok_before_collapsed_then_the_pareto_set_then_the_direction():
    rows = pd.DataFrame({"trial_id": list("abcde"), "status": ["ok", "collapsed", "ok", "ok", "ok"],
                         "val_linear_acc": [0.5, 0.99, 0.7, 0.9, math.nan]})
    assert list(rank(rows, Selection.of("val_linear_acc", "max"))["trial_id"]) == ["d", "c", "a", "e", "b"]
    rows["val_kl"] = [1.0, 0.0, 3.0, 2.0, 0.5]
    assert list(rank(rows, Selection.of("val_kl"))["trial_id"]) == ["e", "a", "d", "c", "b"]
    rows["pareto_optimal"] = [False, False, True, False, True]
    two = Selection.of(objectives=[("val_kl", "min"), ("val_loss", "min")])
    assert list(rank(rows, two)["trial_id"]) == ["e", "c", "a", "d", "b"]


def _space_file(tmp_path, fields: str, arms: str = "VAES[:1]"):
    path = tmp_path / "space.py"
    path.write_text(f'''
from tunekae.spaces import Space
from search_spaces._arms import MLP, VAES
SPACE = Space(name="sel", description="selection", arms={arms}, latent_dim=8, budgets=["4x"], {fields})
''')
    return path


@pytest.mark.parametrize("fields, arms, fragment", [
    ('metric="val_kl"', "[MLP, VAES[0]]", "val_kl is reported only by vae, beta_vae, derp_vae models, not by arm(s) "
                                          "mlp_b"),
    ('metric="val_knn_acc", mode="max"', "VAES[:1]", "measured only after a trial's last epoch"),
    ('metric="val_loss", mode="best"', "VAES[:1]", "must be 'min' or 'max'"),
])
def test_a_space_that_selects_on_what_its_arms_cannot_record_exits_2_before_anything_runs(
        fields, arms, fragment, run_cli, tmp_path):
    code, out, err = run_cli("search", "--space", _space_file(tmp_path, fields, arms), "--output", tmp_path / "o")
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
