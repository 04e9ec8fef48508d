"""Pareto fronts and hypervolume on synthetic tables whose answers are known by hand."""
import numpy as np
import pandas as pd
import pytest

from tunekae.analysis.fronts import front_mask, hypervolume_2d, non_dominated, staircase


def mask(points):
    return non_dominated(np.array(points, dtype=float)).tolist()


def test_2d_known_front():
    # (3,4) is dominated by (2,3); (5,5) by everything; (1,5), (2,3), (4,1) trade off.
    assert mask([(1, 5), (2, 3), (3, 4), (4, 1), (5, 5)]) == [True, True, False, True, False]


def test_3d_front_keeps_points_dominated_in_a_2d_projection():
    pts = [(1, 1, 5),    # best loss and params, slow
           (2, 2, 1),    # fast: dominated in (loss, params) but not in 3-D
           (3, 3, 3),    # dominated by (2, 2, 1)
           (1, 2, 6)]    # dominated by (1, 1, 5)
    assert mask(pts) == [True, True, False, False]
    assert mask([p[:2] for p in pts]) == [True, False, False, False]


def test_duplicates_are_all_kept():
    # Identical points do not dominate each other (documented rule): both stay on the front.
    assert mask([(1, 1), (1, 1), (2, 0.5)]) == [True, True, True]
    # ...and both leave it when something better exists.
    assert mask([(1, 1), (1, 1), (0.5, 0.5)]) == [False, False, True]
    assert mask([(1, 2, 3), (1, 2, 3)]) == [True, True]


def test_points_equal_in_one_objective():
    assert mask([(1, 2), (1, 3)]) == [True, False]        # same loss, more params: dominated
    assert mask([(1, 2), (2, 2)]) == [True, False]        # same params, higher loss: dominated
    assert mask([(1, 2, 3), (1, 2, 4)]) == [True, False]


def test_single_point_and_empty():
    assert mask([(0.3, 1000, 5)]) == [True]
    assert non_dominated(np.zeros((0, 2))).tolist() == []


def test_all_points_on_front():
    pts = [(i, 10 - i) for i in range(10)]
    assert all(mask(pts))
    pts3 = [(i, 10 - i, (i * 7) % 10) for i in range(10)]
    assert all(mask([(i, 10 - i, 0) for i in range(10)]))
    assert sum(mask(pts3)) >= 1


def test_minimisation_in_every_objective():
    assert mask([(1, 1), (2, 2)]) == [True, False]
    assert mask([(-1, -1), (-2, -2)]) == [False, True]    # smaller is better, also below zero
    assert mask([(1, 5, 1), (1, 5, 0)]) == [False, True]  # the third objective counts too


def test_nan_rows_are_never_on_the_front():
    assert mask([(np.nan, 1), (2, 2), (3, 1)]) == [False, True, True]


def test_front_mask_by_group_and_where():
    df = pd.DataFrame({"loss": [1, 2, 3, 2.5, 0.5, 0.1], "params": [3, 2, 1, 2.5, 9, 0.1],
                       "family": ["a", "a", "a", "b", "b", "b"]})
    where = np.array([True] * 5 + [False])      # the last row did not run the full budget
    overall = front_mask(df, ["loss", "params"], where=where).tolist()
    assert overall == [True, True, True, False, True, False]   # (2.5, 2.5) is beaten by a's (2, 2)
    by_family = front_mask(df, ["loss", "params"], by="family", where=where).tolist()
    assert by_family == [True, True, True, True, True, False]  # ...but is on b's own front
    assert front_mask(df, ["loss", "params"]).tolist() == [False, False, False, False, False, True]


def test_staircase_is_sorted_front():
    xs, ys = staircase([3, 1, 2, 2.5], [1, 3, 2, 2.5])
    assert xs.tolist() == [1, 2, 3] and ys.tolist() == [3, 2, 1]


def test_hypervolume_hand_computed():
    # Union of [1,4]x[3,4], [2,4]x[2,4], [3,4]x[1,4]: slabs 3*1 + 2*1 + 1*1 = 6.
    assert hypervolume_2d([(1, 3), (2, 2), (3, 1)], (4, 4)) == pytest.approx(6.0)
    # A dominated point, a duplicate and a point outside the reference box add nothing.
    assert hypervolume_2d([(1, 3), (2, 2), (3, 1), (3, 3), (2, 2), (5, 0)], (4, 4)) == pytest.approx(6.0)
    assert hypervolume_2d([(1, 1)], (3, 2)) == pytest.approx(2.0)
    assert hypervolume_2d([(0.5, 0.25)], (1.0, 1.0)) == pytest.approx(0.375)
    assert hypervolume_2d([], (1, 1)) == 0.0
    assert hypervolume_2d([(2, 0)], (1, 1)) == 0.0


def test_hypervolume_of_a_better_front_is_larger():
    ref = (10, 10)
    worse = hypervolume_2d([(2, 6), (6, 2)], ref)
    better = hypervolume_2d([(2, 6), (6, 2), (4, 4)], ref)
    assert better == pytest.approx(worse + 2 * 2)   # the extra corner [4,6]x[4,6]


def test_blown_up_losses_are_clipped_to_the_full_budget_range():
    import pandas as pd

    from tunekae.analysis.pareto import _clip_outliers
    pts = pd.DataFrame({"loss": [0.02, 0.03, 0.05, 1e22], "loss_std": [0.0] * 4,
                        "full_budget": [True, True, False, False]})
    clipped, top, n = _clip_outliers(pts)
    assert top == pytest.approx(0.09) and n == 1
    assert list(clipped["loss"]) == [0.02, 0.03, 0.05, pytest.approx(0.09)]
    same, top, n = _clip_outliers(pts.iloc[:3])
    assert top is None and n == 0 and same["loss"].tolist() == [0.02, 0.03, 0.05]
