"""One trial of a finished search, as `tunekae train --from DIR --trial ID` retrains it: its row of
results.csv, its exact configuration (config_json: solved widths, every hyperparameter, its own
seed) and the search's data split. No Ray: it reads the search's files only."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .errors import UserError
from .results import check_search_output, read_results, read_run_json


def find_trial(output: Path, trial: str) -> tuple[pd.Series, dict]:
    """(the trial's row, run.json) for `trial`: Tune's trial id as results.csv and Ray's output
    show it (e4eb0707), or ARM:N, the arm and the trial's number in its Optuna study."""
    check_search_output(output)
    run = read_run_json(output)
    results = read_results(output, run)
    arm, _, number = trial.rpartition(":")
    if arm and number.isdigit():
        rows = results[(results["arm"] == arm) & (results["study_trial"] == int(number))]
    else:
        rows = results[results["trial_id"] == trial]
    if rows.empty:
        examples = ", ".join(results["trial_id"].head(2).tolist() + [f"{results['arm'].iloc[0]}:0"])
        raise UserError(f"no trial {trial!r} in {output}/results.csv; give a trial_id or ARM:N (its number in the "
                        f"arm's Optuna study), e.g. {examples}")
    row = rows.iloc[0]
    if not isinstance(row.get("config_json"), str):
        raise UserError(f"trial {trial} of {row['arm']} has no configuration to retrain (status {row['status']}: "
                        f"{row.get('error', 'it was never built')})")
    return row, run


def trial_configs(row: pd.Series):
    """The trial's ModelConfig and TrainConfig exactly as it trained (widths, seed, epochs)."""
    from .models import ModelConfig
    from .train import TrainConfig
    config = json.loads(row["config_json"])
    return ModelConfig.from_dict(config["model"]), TrainConfig(**config["train"])


def describe(row: pd.Series, output: Path) -> str:
    """One line: which trial, and what the search measured for it."""
    stopped = f", stopped early by ASHA at epoch {int(row['epochs_completed'])}" if row["stopped_early"] else ""
    return (f"trial {row['trial_id']} ({row['arm']}:{int(row['study_trial'])}) of {output}: the search's val_loss "
            f"{row['val_loss']:.6f} after {int(row['epochs_completed'])} of {int(row['epochs_budget'])} epochs"
            f"{stopped}, status {row['status']}")


def trial_train_size(row: pd.Series) -> int | None:
    """How many training images the trial trained on (None: all of them, or a search from
    before training-set sizes were recorded)."""
    n = row.get("train_size")
    return int(n) if n is not None and n == n else None
