"""`spaces`: list the built-in comparisons."""
from __future__ import annotations

NAME = "spaces"
HELP = "list the built-in search spaces (comparisons) with their descriptions, and the datasets"
EXAMPLES = """  python -m tunekae spaces
  python -m tunekae spaces --verbose
  python -m tunekae spaces --datasets
"""


def add_arguments(p):
    p.add_argument("--verbose", action="store_true", help="also show arms, budgets, trials and epochs")
    p.add_argument("--datasets", action="store_true", help="list the datasets (names for --dataset) instead")


def run(args) -> int:
    from ..spaces import builtin_spaces, load_space
    if args.datasets:
        from ..data import describe_datasets
        print(describe_datasets())
        return 0
    for name in sorted(builtin_spaces()):
        space = load_space(name)
        print(f"{name:14} {space.description}")
        if args.verbose:
            print(f"{'':14} arms: {', '.join(a.name for a in space.arms)}; budgets: {', '.join(map(str, space.budgets))}; "
                  f"{space.samples_per_arm} trials/arm, {space.epochs} epochs, dataset {space.dataset}, latent {space.latent_dim}")
    return 0
