"""`match`: solve the hidden widths that bring a family to a parameter budget."""
from __future__ import annotations

import json

from ..budget import parse_budget, solve_widths
from .model_options import add_model_arguments, build_on_meta, input_dim_from_args, model_config_from_args

NAME = "match"
HELP = "find hidden widths that give a family a parameter budget (absolute or like 4x the 1-layer MLP)"
EXAMPLES = """  python -m tunekae match --family kan --budget 100000 --input-dim 784 --latent 16 --grid 5 --order 3 --depth 2
  python -m tunekae match --family kae --order 3 --budget 4x --depth 1 --json
  python -m tunekae match --family mlp --budget 410k --tolerance 0.01
"""


def add_arguments(p):
    add_model_arguments(p)
    p.add_argument("--budget", required=True, help="parameters: 100000, 100k, 1.5M, or 4x the single-layer MLP")
    p.add_argument("--depth", type=int, default=1, help="number of hidden layers (default 1)")
    p.add_argument("--tolerance", type=float, default=0.02, help="allowed relative error (default 0.02)")
    p.add_argument("--input-dim", type=int, help="input dimension (default 784)")
    p.add_argument("--dataset", help="take the input dimension from a dataset (digits: 64; list: `spaces --datasets`)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    from ..errors import UserError
    if args.depth < 0 or not 0 < args.tolerance < 1:
        raise UserError("--depth must be >= 0 and --tolerance between 0 and 1")
    cfg = model_config_from_args(args, input_dim_from_args(args))
    build_on_meta(cfg)   # a shape option the layer refuses says so here, before the solver
    budget = parse_budget(args.budget, cfg.input_dim, cfg.latent_dim)
    match = solve_widths(cfg, budget, args.depth, args.tolerance)
    out = {"family": args.family, "depth": args.depth, **match.to_dict(), "tolerance": args.tolerance}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.family} depth {args.depth}: hidden {','.join(map(str, match.hidden)) or '(none)'} -> "
              f"{match.params:,} params for budget {budget:,} ({match.rel_error:+.2%})")
    return 0
