"""The search layer, the only code that imports Ray: ONE Ray Tune experiment per search.

    runner.py     run_search: the Tuner, resume, results            (start here)
    disk_full.py  a full disk ends the search with one line
    searcher.py   ArmSearcher: one Optuna study per arm, trials round-robin over the arms
    scheduler.py  ArmScheduler: one ASHA per arm, trials ranked within their arm only
    trainable.py  the function every trial runs: tunekae.trial.run_trial, reported per epoch
    studies.py    the Optuna storage: the search's record, what a resume reads
    trial_log.py  each trial's reports, written before Tune sees them
    progress.py   what a person watching sees
    cluster.py, ray_address.py, ctrl_c.py   Ray start-up and attach, resources, Ctrl-C
"""
from .cluster import GPU_SHARE, check_trial_fits, connect, shutdown
from .runner import SearchOptions, run_search

__all__ = ["GPU_SHARE", "SearchOptions", "check_trial_fits", "connect", "run_search", "shutdown"]
