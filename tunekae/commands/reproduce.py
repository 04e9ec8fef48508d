"""`reproduce`: the KAE paper's recipe on Fashion-MNIST, tunekae's figures beside the authors'."""
from __future__ import annotations

import math
import sys

from ..cli_support import DATA_DIR_HELP
from ..errors import UserError

NAME = "reproduce"
HELP = "train the KAE paper's models and recipe on Fashion-MNIST and print tunekae's test MSE beside the authors'"
EXAMPLES = """  python -m tunekae reproduce                          # 3 models x 3 seeds x 2 training splits, about 2 min on 2 CPUs
  python -m tunekae reproduce --reference-loop         # also the authors' own loop, re-run here (slow for KAE)
  python -m tunekae reproduce --models kae_p3 --seeds 2024 --train-split full
"""


def add_arguments(p):
    from ..reproduce import MODELS, SEEDS, TRAIN_SPLITS
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                   help="the paper's models to train (default all)")
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="default 2024 2025 2026")
    p.add_argument("--epochs", type=int, default=10, help="the paper's 10 (fewer only to try the command)")
    p.add_argument("--train-split", choices=[*TRAIN_SPLITS, "both"], default="both",
                   help="full: all 60,000 training images, as the authors; 90: the 54,000 a search trains on "
                        "(10%% is validation); both (default)")
    p.add_argument("--reference-loop", action="store_true",
                   help="also train each model with the authors' loop and layer (tunekae/reference_kae.py)")
    p.add_argument("--threads", type=int, help="torch threads (default: every available CPU)")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)


def run(args) -> int:
    from ..cli_support import check_seed
    if args.epochs < 1:
        raise UserError("--epochs must be >= 1")
    for seed in args.seeds:
        check_seed(seed)
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be >= 1")
    import torch

    from ..data import load_dataset
    from ..reproduce import MODELS, RECIPE, TARGET, TRAIN_SPLITS, compare, mean_std, run_one
    from ..train import resolve_threads
    threads = resolve_threads(args.threads)
    torch.set_num_threads(threads)
    train_splits = list(TRAIN_SPLITS) if args.train_split == "both" else [args.train_split]
    print(f"Fashion-MNIST, the KAE paper's recipe: adam lr {RECIPE['lr']:g}, weight decay {RECIPE['weight_decay']:g}, "
          f"batch {RECIPE['batch_size']}, {args.epochs} epochs; seeds {', '.join(map(str, args.seeds))}; "
          f"{threads} threads", flush=True)
    outcomes = {}
    for split in train_splits:
        for name in args.models:
            for seed in args.seeds:
                splits = load_dataset("fashion-mnist", data_dir=args.data_dir, seed=seed)
                o = run_one(MODELS[name], splits, split, seed, threads, args.epochs, args.reference_loop)
                outcomes.setdefault((split, name), []).append(o)
                ref = f", authors' loop {o.reference_loop_loss:.4f}" if args.reference_loop else ""
                print(f"  {name} ({split}) seed {seed}: test MSE {o.test_loss:.4f} ({o.status}){ref}",
                      file=sys.stderr, flush=True)

    head = ["model", "params", "training split", "tunekae test MSE", "per seed"]
    head += ["authors' loop here"] if args.reference_loop else []
    head += ["KAE authors' code", "tunekae / authors", f"within {TARGET:.0%}"]
    rows, misses = [], []
    for (split, name), runs in outcomes.items():
        model = MODELS[name]
        row = [model.label, f"{runs[0].params:,}", "all 60,000" if split == "full" else "54,000 (90%)",
               mean_std([o.test_loss for o in runs]) + f" ({len(runs)})",
               ", ".join(f"{o.test_loss:.4f}" + ("" if o.status == "ok" else f" {o.status}") for o in runs)]
        if args.reference_loop:
            row.append(mean_std([o.reference_loop_loss for o in runs]))
        ratio = compare(model, runs)
        if model.reference is None or ratio is None:
            row += [model.reference.describe() if model.reference else "not published", "–", "–"]
        else:
            ok = abs(ratio[1] - 1) <= TARGET
            row += [model.reference.describe(), f"{ratio[1]:.2f}", "yes" if ok else "no"]
            if split == "full" and not ok:
                misses.append(f"{model.label}: {ratio[0]:.4f} vs {model.reference.mean:.4f}")
        rows.append(row)
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    _print_split_effect(outcomes, args.models)
    if misses:
        print(f"\nnot within {TARGET:.0%} of the authors' figure on the full split: " + "; ".join(misses))
        return 1
    return 0


def _print_split_effect(outcomes: dict, models: list[str]) -> None:
    """How much the 10% validation carve-out moves each model's test MSE (same seeds)."""
    lines = []
    for name in models:
        full, ninety = outcomes.get(("full", name)), outcomes.get(("90", name))
        if not full or not ninety:
            continue
        a = sum(o.test_loss for o in full) / len(full)
        b = sum(o.test_loss for o in ninety) / len(ninety)
        if math.isfinite(a) and math.isfinite(b):
            lines.append(f"{name} {(b - a) / a:+.1%}")
    if lines:
        print("\ntraining on 90% instead of all training images changes the mean test MSE by: " + ", ".join(lines))
