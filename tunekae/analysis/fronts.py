"""Pure Pareto-front arithmetic (numpy only). Every objective is MINIMISED.

Rules, chosen so that a front is easy to reason about:
- a dominates b  iff  a <= b in every objective and a < b in at least one;
- a point is on the front iff no other point dominates it. Duplicate points therefore never
  dominate each other: identical points are ALL kept (a tie is reported, not broken silently);
- a point with a NaN objective is never on the front and dominates nothing.
"""
from __future__ import annotations

import numpy as np


def non_dominated(points) -> np.ndarray:
    """Boolean mask of the non-dominated rows of an (n, k) array (minimisation in every column).
    O(n^2 k) time, O(n k) memory: fine for the few thousand trials of a search."""
    pts = np.asarray(points, dtype=float)
    if pts.ndim == 1:
        pts = pts.reshape(-1, 1)
    n = len(pts)
    valid = ~np.isnan(pts).any(axis=1)
    mask = valid.copy()
    cand = pts[valid]
    for i in np.flatnonzero(valid):
        p = pts[i]
        dominated_by = (cand <= p).all(axis=1) & (cand < p).any(axis=1)
        if dominated_by.any():
            mask[i] = False
    return mask if n else np.zeros(0, dtype=bool)


def front_mask(df, columns, by=None, where=None) -> np.ndarray:
    """non_dominated over df[columns], optionally within groups `by` and only among rows where
    the boolean mask `where` holds (rows outside it are never on the front)."""
    where = np.ones(len(df), dtype=bool) if where is None else np.asarray(where, dtype=bool)
    values = df[list(columns)].to_numpy(dtype=float)
    out = np.zeros(len(df), dtype=bool)
    groups = [np.ones(len(df), dtype=bool)] if by is None else \
        [(df[by] == g).to_numpy() for g in df.loc[where, by].dropna().unique()]
    for g in groups:
        idx = np.flatnonzero(g & where)
        if len(idx):
            out[idx] = non_dominated(values[idx])
    return out


def staircase(x, y) -> tuple[np.ndarray, np.ndarray]:
    """The 2-D front of (x, y) sorted by x ascending (y then descends), for a step plot with
    where="post": the boundary of the region the front dominates."""
    pts = np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    pts = pts[non_dominated(pts)]
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    return pts[order, 0], pts[order, 1]


def hypervolume_2d(points, ref) -> float:
    """Area dominated by `points` (n, 2) and bounded by the reference point `ref` (minimisation).
    Points that do not strictly dominate ref in both coordinates add nothing."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    rx, ry = float(ref[0]), float(ref[1])
    pts = pts[~np.isnan(pts).any(axis=1)]
    pts = pts[(pts[:, 0] < rx) & (pts[:, 1] < ry)]
    if not len(pts):
        return 0.0
    xs, ys = staircase(pts[:, 0], pts[:, 1])
    area, prev_y = 0.0, ry
    for x, y in zip(xs, ys):        # x ascending, y descending: slabs between consecutive y levels
        if y < prev_y:
            area += (rx - x) * (prev_y - y)
            prev_y = y
    return area
