"""What a search selects on: one validation metric and its direction (the default: reconstruction
MSE, val_loss, lower is better), or two objectives for which Optuna keeps a Pareto set.

    Space(..., metric="val_objective")                       # the variant's own loss
    Space(..., objectives=[("val_loss", "min"), ("val_kl", "min")])   # reconstruction vs KL

A single metric reported every epoch can drive ASHA (it ranks trials at early epochs); a metric
that only the final evaluation measures (val_linear_acc, val_silhouette, ...) can select only
when every trial runs every epoch (Space(asha=False)). Two objectives always run without ASHA,
which ranks by one number: FIFO scheduling, and Optuna's multi-objective TPE.

Trials that did not finish (diverged, infeasible, erroneous) get the worst finite value of each
objective, so that samplers and schedulers can rank them and never pick them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .status import DIVERGED_LOSS, FINISHED

MODES = ("min", "max")
# Reported after every epoch (trial.term_metrics): what ASHA can rank trials by. Each needs the
# variants named; None: every model reports it.
PER_EPOCH = {"val_loss": None, "val_objective": None,
             "val_kl": ("vae", "beta_vae", "derp_vae"), "val_ks": ("derp_vae",), "val_mmd": ("wae_mmd",)}
# Measured once, on the trial's last epoch (metrics.evaluate on val).
FINAL_ONLY = ("val_psnr", "val_knn_acc", "val_linear_acc", "val_recall_at_5", "val_denoise_sp_mse",
              "val_denoise_gauss_mse", "val_label_agreement", "val_class_sep", "val_silhouette",
              "val_active_units", "val_ks_distance")


@dataclass(frozen=True)
class Objective:
    metric: str = "val_loss"
    mode: str = "min"

    @property
    def worst(self) -> float:
        return DIVERGED_LOSS if self.mode == "min" else -DIVERGED_LOSS

    def value(self, result: dict) -> float:
        """The metric of a trial's report, or the worst value where the trial did not finish or
        the report lacks a finite one."""
        v = result.get(self.metric)
        if result.get("status") not in FINISHED or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or abs(v) >= DIVERGED_LOSS:
            return self.worst
        return float(v)

    def describe(self) -> str:
        return f"{self.metric}, {'lower' if self.mode == 'min' else 'higher'} is better"


@dataclass(frozen=True)
class Selection:
    objectives: tuple[Objective, ...] = (Objective(),)

    @classmethod
    def of(cls, metric: str = "val_loss", mode: str = "min", objectives=None) -> "Selection":
        """From a Space's fields; ValueError naming what is wrong."""
        pairs = [(metric, mode)] if not objectives else [tuple(o) for o in objectives]
        if objectives is not None and len(pairs) != 2:
            raise ValueError(f"objectives takes two (metric, mode) pairs; got {len(pairs)}")
        out = []
        for pair in pairs:
            if len(pair) != 2:
                raise ValueError(f"an objective is a (metric, mode) pair; got {pair!r}")
            m, d = pair
            if d not in MODES:
                raise ValueError(f"the mode of {m!r} must be 'min' or 'max'; got {d!r}")
            if not isinstance(m, str) or not m.startswith("val_"):
                raise ValueError(f"a search selects on a validation metric (val_...), never on test or training "
                                 f"numbers; got {m!r}; per-epoch ones: {', '.join(PER_EPOCH)}")
            if m in PER_EPOCH and d == "max":
                raise ValueError(f"{m} is a loss (lower is better): mode 'max' would prefer diverged trials")
            out.append(Objective(m, d))
        if len(out) == 2 and out[0].metric == out[1].metric:
            raise ValueError(f"the two objectives are the same metric, {out[0].metric}")
        return cls(tuple(out))

    @property
    def primary(self) -> Objective:
        return self.objectives[0]

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    @property
    def per_epoch(self) -> bool:
        """Whether every epoch's report carries what is selected on (ASHA needs that)."""
        return all(o.metric in PER_EPOCH for o in self.objectives)

    def values(self, result: dict) -> list[float]:
        return [o.value(result) for o in self.objectives]

    def is_default(self) -> bool:
        return self == Selection()

    def to_dict(self) -> dict:
        return {"objectives": [[o.metric, o.mode] for o in self.objectives]}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Selection":
        """run.json's record; a search from before selections were recorded selected on val_loss."""
        if not d:
            return cls()
        return cls(tuple(Objective(m, mode) for m, mode in d["objectives"]))

    def describe(self) -> str:
        if self.multi:
            return "two objectives, " + " and ".join(o.describe() for o in self.objectives) + ": the Pareto set"
        return self.primary.describe()


def check_arms(selection: Selection, variants: dict[str, str], asha: bool) -> list[str]:
    """Why `selection` cannot select every arm's trials (arm -> variant), one line each."""
    problems = []
    for o in selection.objectives:
        if o.metric in PER_EPOCH:
            needs = PER_EPOCH[o.metric]
            missing = [arm for arm, v in variants.items() if needs is not None and v not in needs]
            if missing:
                problems.append(f"{o.metric} is reported only by {', '.join(needs)} models, not by arm(s) "
                                f"{', '.join(missing)}")
        elif o.metric in FINAL_ONLY or o.metric.startswith("val_"):
            if asha and not selection.multi:
                problems.append(f"{o.metric} is measured only after a trial's last epoch, while ASHA ranks trials at "
                                f"earlier ones: select it with Space(asha=False), or on a per-epoch metric "
                                f"({', '.join(PER_EPOCH)})")
            if o.metric not in FINAL_ONLY:
                problems.append(f"{o.metric} is no metric a trial records; per-epoch: {', '.join(PER_EPOCH)}; "
                                f"after the last epoch: {', '.join(FINAL_ONLY)}")
    return problems


def rank(rows, selection: Selection):
    """Trials best first by what the search selected on: ok before collapsed (a collapsed trial
    is best only where every trial collapsed), then the Pareto set first where there are two
    objectives, then the first objective in its direction. `rows`: a results.csv frame."""
    import pandas as pd
    o = selection.primary
    if o.metric not in rows:
        return rows.iloc[:0]
    value = pd.to_numeric(rows[o.metric], errors="coerce")
    keys = pd.DataFrame({"collapsed": rows["status"].astype(str) != "ok",
                         "off_front": ~rows["pareto_optimal"].fillna(False).astype(bool)
                         if "pareto_optimal" in rows else False,
                         "value": value if o.mode == "min" else -value}, index=rows.index)
    order = keys.sort_values(["collapsed", "off_front", "value"], kind="stable", na_position="last").index
    return rows.loc[order]
