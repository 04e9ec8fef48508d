"""`confirm`: multi-seed retraining of the best configurations, evaluated on the test split."""
from __future__ import annotations

from pathlib import Path

from ..cli_support import DATA_DIR_HELP
from ..errors import UserError

NAME = "confirm"
HELP = "retrain each arm's top-k full-budget configurations with fresh seeds and evaluate them on test"
EXAMPLES = """  python -m tunekae confirm results/kae_vs_mlp-digits-20261124-101500
  python -m tunekae confirm runs/mine --top 3 --seeds 5 --cpus-per-trial 1
"""


def add_arguments(p):
    p.add_argument("dir", help="a search output dir (holds run.json and results.csv)")
    p.add_argument("--top", type=int, default=3, help="configurations per arm (default 3)")
    p.add_argument("--seeds", type=int, default=5, help="fresh seeds per configuration (default 5)")
    p.add_argument("--cpus-per-trial", type=int, default=1, help="CPUs (torch threads) per run (default 1)")
    p.add_argument("--gpus-per-trial", type=float,
                   help="GPU share per run (default: 0.25 when the search trained on GPUs and the cluster has "
                        "them, else 0: the runs train where the search's trials did)")
    p.add_argument("--address", help="attach to a running Ray cluster")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)


def run(args) -> int:
    from ..results import check_search_output
    output = Path(args.dir)
    check_search_output(output)
    if args.top < 1 or args.seeds < 1 or args.cpus_per_trial < 1:
        raise UserError("--top, --seeds and --cpus-per-trial must be >= 1")
    if args.gpus_per_trial is not None and args.gpus_per_trial < 0:
        raise UserError("--gpus-per-trial must be >= 0")
    from ..confirm import pick_top, run_confirm
    from ..results import read_results, read_run_json
    results = read_results(output, read_run_json(output))
    if not len(pick_top(results, args.top)):
        raise UserError(f"{output} has no trial that ran the full epoch budget; nothing to confirm")
    confirmed = run_confirm(output, args.top, args.seeds, args.cpus_per_trial, args.address, args.data_dir,
                            args.gpus_per_trial)
    cols = [c for c in ("arm", "rank", "params", "n", "test_loss_mean", "test_loss_std") if c in confirmed]
    print(confirmed[cols].to_string(index=False))
    print(f"wrote {output / 'confirmed.csv'} and {output / 'confirmed_runs.csv'}")
    return 0
