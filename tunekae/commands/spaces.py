"""`spaces`: list the built-in comparisons, or show one (built-in or a user's file) in full."""
from __future__ import annotations

from ..cli_support import DATA_DIR_HELP
from ..errors import UserError

NAME = "spaces"
HELP = "list the built-in search spaces (comparisons), or show what one compares and tunes"
EXAMPLES = """  python -m tunekae spaces
  python -m tunekae spaces --verbose
  python -m tunekae spaces kae_vs_mlp                 # its arms, what each samples, what fits each budget
  python -m tunekae spaces my_comparison.py --budgets 4x 100k   # check your own file without a search
  python -m tunekae spaces --datasets
"""


def add_arguments(p):
    p.add_argument("space", nargs="?", help="a built-in space or a .py file: show it in full (it is checked as "
                                            "`search` checks it, exit 2 on a mistake)")
    p.add_argument("--dataset", help="with SPACE: the dataset whose input size sets the budgets (default: the space's)")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--budgets", nargs="+", help="with SPACE: budgets to show instead of the space's")
    p.add_argument("--verbose", action="store_true", help="also show arms, budgets, trials and epochs")
    p.add_argument("--datasets", action="store_true", help="list the datasets (names for --dataset) instead")


def run(args) -> int:
    from ..spaces import builtin_spaces, load_space
    if args.datasets:
        from ..data import describe_datasets
        print(describe_datasets())
        return 0
    if not args.space and (args.dataset or args.data_dir or args.budgets):
        raise UserError("--dataset, --data-dir and --budgets describe one space: give it, e.g. "
                        "`python -m tunekae spaces kae_vs_mlp --dataset fashion-mnist`")
    if args.space:
        print(describe_space(load_space(args.space), args.dataset, args.data_dir, args.budgets))
        return 0
    for name in sorted(builtin_spaces()):
        space = load_space(name)
        print(f"{name:14} {space.description}")
        if args.verbose:
            print(f"{'':14} arms: {', '.join(a.name for a in space.arms)}; budgets: {', '.join(map(str, space.budgets))}; "
                  f"{space.samples_per_arm} trials/arm, {space.epochs} epochs, dataset {space.dataset}, latent {space.latent_dim}")
    return 0


def describe_space(space, dataset: str | None, data_dir, budgets) -> str:
    """The space as a search would run it: per arm, what it samples (from the same random probes
    that `search` checks it with), and per budget, the depths and shapes each arm can be built at."""
    from ..data import load_dataset
    from ..space_checks import check_budgets_fit, check_defines, check_task
    from ..spaces import arm_contexts, nearest_reachable, shape_label
    dataset = dataset or space.dataset
    splits = load_dataset(dataset, data_dir=data_dir)
    input_dim = splits.input_dim
    contexts = arm_contexts(space, input_dim, budgets, splits.output_dim)
    check_task(space, splits, dataset)
    check_budgets_fit(contexts, space, input_dim)   # what `search` refuses, this refuses alike
    sampled = check_defines(space, contexts, input_dim)
    lines = [f"{space.name}: {space.description}",
             f"  from {space.source}; dataset {dataset} ({input_dim:,} inputs), latent {space.latent_dim}; "
             f"{space.samples_per_arm} trials x {space.epochs} epochs per arm; "
             + (f"ASHA grace period {space.grace_period}, reduction factor {space.reduction_factor}" if space.asha
                else "no early stopping") + f"; widths within {space.tolerance:.0%} of each budget"]
    for arm in space.arms:
        options = [f"layer {arm.family}"] + ([f"variant {arm.variant}"] if arm.variant != "ae" else [])
        options += [f"fixed {_pairs(arm.fixed)}"] if arm.fixed else []
        options += [f"shapes {', '.join(shape_label(s) for s in arm.shapes)}"] if arm.shapes != [{}] else []
        names = [n for n in sampled.get(arm.name, []) if not n.startswith("shape_d")]
        # the first trial takes of `start` only what the define samples (spaces.starting_point)
        start = {k: v for k, v in (arm.start or {}).items() if k in names}
        lines.append(f"  arm {arm.name}: {'; '.join(options)}; samples {', '.join(names) or 'nothing'}"
                     + (f"; first trial {_pairs(start)}" if start else ""))
    for label in dict.fromkeys(c.budget_label for c in contexts):
        at = [c for c in contexts if c.budget_label == label]
        lines.append(f"  budget {label} = {at[0].budget:,} parameters:")
        for c in at:
            if c.feasible:
                fits = " | ".join(f"depth {d}" + (f" ({', '.join(shape_label(s) for s in shapes)})"
                                                  if c.arm.shapes != [{}] else "")
                                  for d, shapes in sorted(c.feasible.items()))
            else:
                near = " or ".join(f"{n:,}" for n in nearest_reachable(c, input_dim, space.tolerance))
                fits = f"cannot be built (nearest {near}): the search records it as one infeasible row"
            lines.append(f"    {c.key:<16} {fits}")
    return "\n".join(lines)


def _pairs(values: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
