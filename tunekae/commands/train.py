"""`train`: one explicit training run (no Ray, no tuning), then every metric on the TEST split."""
from __future__ import annotations

import json
import math
import sys

from ..cli_support import DATA_DIR_HELP, check_seed, check_writable_file, option_defaults
from ..errors import UserError
from .model_options import add_model_arguments, comma_ints, model_config_from_args

NAME = "train"
HELP = "train one autoencoder (fixed widths or a parameter budget) and report test metrics"
EXAMPLES = """  python -m tunekae train                    # MLP 64-16-64 on digits with the KAE paper's recipe
  python -m tunekae train --family kae --order 3 --dataset fashion-mnist --epochs 10
  python -m tunekae train --family kan --grid 5 --order 3 --budget 4x --depth 1 --grid-update-epochs 2 --json
  python -m tunekae train --family mlp --hidden 256,64 --variant vae --optimizer adamw --lr 1e-3 --cosine
  python -m tunekae train --family cheby --order 4 --optimizer lbfgs --lr 1 --batch-size 0 --epochs 20
  python -m tunekae train --noise salt_pepper --noise-level 0.2 --save runs/dae.pt
  python -m tunekae train --dataset function:exp_sin --family kan --hidden 5 --grid 5 --order 3 --optimizer lbfgs \
      --lr 1 --batch-size 0 --epochs 20 --weight-decay 0 --grid-update-epochs 50 --grid-update-every 5   # pykan's demo
  python -m tunekae train --from results/my-search --trial e4eb0707   # one trial of a search, exactly
  python -m tunekae train --from results/my-search --trial kae_b8512:3 --epochs 60 --save runs/kae.pt
"""
# With --from, the trial's own configuration; only these may still be given.
FROM_MAY_SET = {"epochs", "device", "threads", "compile", "data_dir", "json", "save", "from_dir", "trial"}


def add_arguments(p):
    f = p.add_argument_group("a trial of a search (instead of the model and training flags)")
    f.add_argument("--from", dest="from_dir", metavar="DIR", help="a finished search's output dir")
    f.add_argument("--trial", help="with --from: the trial's id (results.csv's trial_id, Ray's output) or ARM:N "
                                   "(its number in the arm's Optuna study); retrained with its own widths, "
                                   "hyperparameters and seed on the search's data split")
    add_model_arguments(p)
    s = p.add_argument_group("shape (one of --hidden or --budget; neither: no hidden layer)")
    s.add_argument("--hidden", type=comma_ints, help="encoder hidden widths, comma list like 64,32")
    s.add_argument("--budget", help="parameters: 100000, 100k, 1.5M, or 4x the single-layer MLP; the widths are solved")
    s.add_argument("--depth", type=int, default=1, help="hidden layers when solving a --budget (default 1)")
    s.add_argument("--tolerance", type=float, default=0.02, help="allowed relative budget error (default 0.02)")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default="digits",
                   help="dataset name, options after a colon (cifar10:rgb=true); default digits. "
                        "See `python -m tunekae spaces --datasets`")
    d.add_argument("--data-dir", help=DATA_DIR_HELP)
    d.add_argument("--val-fraction", type=float, default=0.1, help="share of the training split held out (default 0.1)")
    t = p.add_argument_group("training (defaults: the KAE paper's recipe)")
    t.add_argument("--optimizer", default="adam", choices=("adam", "adamw", "sgd", "lbfgs"), help="default adam")
    t.add_argument("--lr", type=float, default=1e-4, help="learning rate (default 1e-4)")
    t.add_argument("--weight-decay", type=float, default=1e-4, help="default 1e-4")
    t.add_argument("--momentum", type=float, default=0.9, help="sgd momentum (default 0.9)")
    t.add_argument("--batch-size", type=int, default=256, help="default 256; 0: full batch (lbfgs)")
    t.add_argument("--epochs", type=int, help="default 10 (with --from: the search's)")
    t.add_argument("--cosine", action="store_true", help="cosine-anneal the learning rate to 0 over the run")
    t.add_argument("--grad-clip", type=float, default=0.0, help="max gradient norm (default 0: off)")
    t.add_argument("--seed", type=int, default=0, help="fixes the weights, data order, corruption and val split")
    t.add_argument("--device", help="auto (cuda when available; the default), cpu, cuda, cuda:1 ... "
                                    "(with --from: the trial's)")
    t.add_argument("--threads", type=int, help="torch CPU threads (default: every CPU available; never more)")
    t.add_argument("--compile", action="store_true", help="torch.compile the forward + loss (eager if it fails)")
    t.add_argument("--grid-update-epochs", type=int, default=0,
                   help="kan: refit the spline grids to the data at the start of the first N epochs ...")
    t.add_argument("--grid-update-every", type=int, default=1,
                   help="... every this many epochs (pykan's fit: --grid-update-epochs 50 --grid-update-every 5)")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    o.add_argument("--save", help="write {model_config, train_config, state_dict, metrics} to this .pt file")


def _finite(value):
    """JSON has no NaN/inf: such metrics (a diverged model's) become null."""
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _from_flags(args):
    """(ModelConfig, TrainConfig, Splits, Match or None, family label) from the model and training flags."""
    from ..budget import parse_budget, solve_widths
    from ..data import load_dataset
    from ..train import TrainConfig

    if args.hidden is not None and args.budget is not None:
        raise UserError("give --hidden (fixed widths) or --budget (solved widths), not both")
    if args.depth < 0 or not 0 < args.tolerance < 1:
        raise UserError("--depth must be >= 0 and --tolerance between 0 and 1")
    check_seed(args.seed)
    try:
        train_cfg = TrainConfig(optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
                                momentum=args.momentum, batch_size=args.batch_size,
                                epochs=10 if args.epochs is None else args.epochs, cosine=args.cosine,
                                grad_clip=args.grad_clip, seed=args.seed, device=args.device or "auto",
                                threads=args.threads, compile=args.compile, grid_update_epochs=args.grid_update_epochs,
                                grid_update_every=args.grid_update_every)
    except ValueError as e:
        raise UserError(f"{e} (see --help)") from None
    splits = load_dataset(args.dataset, data_dir=args.data_dir, seed=args.seed, val_fraction=args.val_fraction)
    cfg = model_config_from_args(args, splits.input_dim, tuple(args.hidden or ()),
                                 splits.output_dim if splits.regression else None).replace(seed=args.seed)
    match = None
    if args.budget is not None:
        budget = parse_budget(args.budget, cfg.input_dim, cfg.latent_dim)
        match = solve_widths(cfg, budget, args.depth, args.tolerance)
        cfg = cfg.replace(hidden=match.hidden)
    return cfg, train_cfg, splits, match, args.family


def _from_search(args):
    """(ModelConfig, TrainConfig, Splits, None, family label) of a search's trial (search_trial.py):
    its configuration as it trained, on the search's split. The flags in FROM_MAY_SET (epochs,
    device, threads, ...) may still be given; every other model or training flag is refused,
    since the run would no longer be that trial."""
    from dataclasses import replace
    from pathlib import Path

    from ..data import load_dataset, subset_train
    from ..search_trial import describe, find_trial, trial_configs, trial_train_size
    if not (args.from_dir and args.trial):
        raise UserError("--from DIR and --trial ID go together: the search's output dir and one of its trials")
    defaults = option_defaults(add_arguments)
    given = sorted(k for k, v in vars(args).items() if k in defaults and k not in FROM_MAY_SET and v != defaults[k])
    if given:
        raise UserError(f"--from retrains the trial's own configuration, so {', '.join(_flag(k) for k in given)} "
                        f"cannot change it; only --epochs, --device, --threads, --compile, --data-dir, --json and "
                        f"--save apply")
    row, run = find_trial(Path(args.from_dir), args.trial)
    cfg, train_cfg = trial_configs(row)
    train_cfg = replace(train_cfg, epochs=args.epochs or train_cfg.epochs, device=args.device or train_cfg.device,
                        threads=args.threads or train_cfg.threads, compile=args.compile or train_cfg.compile)
    print(describe(row, Path(args.from_dir)), file=sys.stderr if args.json else sys.stdout)
    data_dir = args.data_dir or run.get("options", {}).get("data_dir")
    splits = load_dataset(run["dataset"], data_dir=data_dir, seed=run["seed"])
    return cfg, train_cfg, subset_train(splits, trial_train_size(row), run["seed"]), None, row["family"]


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def run(args) -> int:
    import torch

    from ..budget import count_flops, count_params
    from ..metrics import evaluate, run_status
    from ..status import COLLAPSE_MARGIN
    from ..train import resolve_device, resolve_threads, train_model

    if args.epochs is not None and args.epochs < 1:
        raise UserError("--epochs must be >= 1")
    if args.save:   # before training: a model trained and then not saved is lost
        check_writable_file(args.save, "--save")
    cfg, train_cfg, splits, match, family = _from_search(args) if args.from_dir or args.trial else _from_flags(args)
    try:
        device = resolve_device(train_cfg.device)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"{e} (see --help)") from None
    try:
        from ..models import build_model
        with torch.device("meta"):
            build_model(cfg)          # bad shape options (kae order 0, ...) fail here, not mid-run
    except ValueError as e:
        raise UserError(str(e)) from None

    log = sys.stderr if args.json else sys.stdout
    shape = " -> ".join(map(str, [cfg.input_dim, *cfg.hidden, cfg.latent_dim, *reversed(cfg.hidden), cfg.input_dim]))
    threads = resolve_threads(train_cfg.threads)
    print(f"{splits.name}: {family} {cfg.variant} {shape} on {device} ({threads} threads); "
          f"{train_cfg.optimizer} lr {train_cfg.lr:g}, batch {train_cfg.batch_size}, {train_cfg.epochs} epochs",
          file=log, flush=True)

    def on_epoch(r):
        flag = "" if r.status == "ok" else f"  {r.status}"
        print(f"epoch {r.epoch:>3}/{train_cfg.epochs}  train_loss {r.train_loss:.6f}  val_loss {r.val_loss:.6f}  "
              f"{r.epoch_seconds:.2f} s{flag}", file=log, flush=True)

    result = train_model(cfg, splits, train_cfg, on_epoch=on_epoch)
    model = result.model
    torch.set_num_threads(threads)      # the metrics get the same CPU share as the training
    metrics = evaluate(model, splits, split="test", seed=train_cfg.seed) if result.status == "ok" else {}
    status, baseline = run_status(result.status, metrics.get("test_loss", math.nan), splits, "test")
    out = {"dataset": splits.name, "family": family, "layer": cfg.family, "variant": cfg.variant,
           "hidden": list(cfg.hidden), "latent": cfg.latent_dim, "order": cfg.order, "grid": cfg.grid,
           "params": count_params(model), "flops": count_flops(model, cfg.input_dim),
           "budget": match.budget if match else None, "budget_rel_error": match.rel_error if match else None,
           "status": status, "mean_image_mse": baseline, "epochs": result.epochs_completed, "train_seconds": result.train_seconds,
           "seconds_per_epoch": result.seconds_per_epoch, "peak_mem_mb": result.peak_mem_mb,
           "device": result.device, "threads": threads, "train_loss": result.train_loss, "val_loss": result.val_loss,
           "test_loss": None, **metrics, "model_config": cfg.to_dict(), "train_config": train_cfg.to_dict(),
           "history": [{"epoch": r.epoch, "train_loss": r.train_loss, "val_loss": r.val_loss,
                        "epoch_seconds": r.epoch_seconds} for r in result.history]}
    out = {k: _finite(v) for k, v in out.items()}
    if args.save:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        blob = {"model_config": cfg.to_dict(), "train_config": train_cfg.to_dict(), "state_dict": state,
                "metrics": {k: v for k, v in out.items() if k not in ("model_config", "train_config")}}
        try:
            from pathlib import Path
            Path(args.save).expanduser().parent.mkdir(parents=True, exist_ok=True)
            torch.save(blob, Path(args.save).expanduser())
        except OSError as e:
            raise UserError(f"cannot write --save {args.save}: {e.strerror or e}") from None

    if args.json:
        print(json.dumps(out))
    else:
        print(f"status {status}: {result.epochs_completed} epochs, {result.train_seconds:.2f} s training "
              f"({result.seconds_per_epoch:.3f} s/epoch), params {out['params']:,}, forward FLOPs/sample "
              f"{out['flops']:,}, peak memory {result.peak_mem_mb:.0f} MB")
        if status == "collapsed":
            print(f"collapsed: test MSE {metrics['test_loss']:.4g} is within {COLLAPSE_MARGIN:.0%} of predicting the training set's "
                  f"mean image ({baseline:.4g}) or above it; the model learned nothing more")
        if metrics:
            print("test metrics: " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        else:
            print("no test metrics: the run diverged (try a smaller --lr or --grad-clip)")
        if args.save:
            print(f"saved {args.save}")
    return 0 if status == "ok" else 1
