"""`search`: Ray Tune + Optuna (TPE) + ASHA over equal-budget arms of a comparison."""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from ..cli_support import DATA_DIR_HELP, check_seed, check_writable_dir, option_defaults
from ..errors import UserError
from ..provenance import provenance

# Set by Ray's job supervisor in the environment of a `ray job submit` entrypoint
RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"

NAME = "search"
HELP = "tune every arm (family x budget) of a comparison with equal trials, epochs and ASHA settings"
EXAMPLES = """  python -m tunekae search --space kae_vs_mlp                       # defaults, embedded digits data
  python -m tunekae search --space kae_vs_mlp --dataset fashion-mnist --budgets 25888 101152 410000 --samples 24 --epochs 10
  python -m tunekae search --space my_space.py --output runs/mine
  python -m tunekae search --output runs/mine --resume                # continue after Ctrl-C or kill -9
  ray start --head && python -m tunekae search --space kae_vs_mlp --address auto   # trials in the Ray dashboard
"""


def add_arguments(p):
    p.add_argument("--space", help="a built-in space (see `spaces`) or a path to a .py file defining SPACE")
    p.add_argument("--dataset", help="dataset name, options after a colon (cifar10:rgb=true); default: the space's. "
                                     "See `python -m tunekae spaces --datasets`")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--samples", type=int, help="trials per arm (default: the space's)")
    p.add_argument("--epochs", type=int, help="epochs per trial (default: the space's)")
    p.add_argument("--budgets", nargs="+", help="parameter budgets: 25888 100k 4x ... (default: the space's)")
    p.add_argument("--latents", nargs="+", type=int,
                   help="latent sizes: every budget at every one, each an arm of its own (default: the space's)")
    p.add_argument("--train-sizes", nargs="+",
                   help="training-set sizes (images, or 'full'): every arm at each, nested subsets of the training "
                        "split (default: the space's, else full)")
    p.add_argument("--tolerance", type=float, help="relative budget tolerance (default: the space's, 0.02)")
    p.add_argument("--grace-period", type=int, help="ASHA: epochs before a trial can be stopped (default: the space's, 1)")
    p.add_argument("--reduction-factor", type=int,
                   help="ASHA: 1 in this many trials goes on at each rung (default: the space's, 4)")
    p.add_argument("--seed", type=int, default=0, help="seeds the samplers, splits and trials (default 0)")
    p.add_argument("--output", help="output dir (default results/<space>-<dataset>-<time>)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial = its torch threads (default 1)")
    p.add_argument("--gpus-per-trial", type=float,
                   help="GPU share per trial (default 0.25 when the Ray cluster has GPUs, else 0)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as resources allow)")
    p.add_argument("--address", help="attach to a running Ray cluster ('auto' or host:port; also $RAY_ADDRESS)")
    p.add_argument("--storage", help="where Tune keeps its experiment folders (default OUTPUT/ray); on a multi-node "
                                     "cluster a path every node shares, or a cloud URI such as s3://bucket/runs")
    p.add_argument("--optuna-storage", help="a database URL for the arms' Optuna studies (sqlite:///runs/studies.db); "
                                            "default OUTPUT/studies.journal")
    p.add_argument("--resume", action="store_true", help="continue the interrupted search in --output")
    p.add_argument("--quiet", action="store_true", help="no line per finished trial: the summary only")
    p.add_argument("--verbose", action="store_true", help="Ray Tune's own progress tables instead of tunekae's lines")
    p.add_argument("--tensorboard", action="store_true",
                   help="TensorBoard event files in each trial's folder under OUTPUT/ray (needs tensorboardX)")
    p.add_argument("--mlflow", metavar="URI", help="log every trial to MLflow at this tracking URI (needs mlflow), "
                                                   "e.g. file:///abs/path/mlruns")
    p.add_argument("--no-asha", action="store_true", help="ablation: no early stopping (every trial runs every epoch)")


def _versions() -> dict:
    import optuna
    import ray
    import sklearn
    import torch
    return {"python": platform.python_version(), "torch": torch.__version__, "ray": ray.__version__,
            "optuna": optuna.__version__, "scikit-learn": sklearn.__version__}


def _hardware() -> dict:
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "gpu": gpu, "system": platform.system()}


def _check_storage_uri(uri: str) -> None:
    import pyarrow.fs
    try:
        pyarrow.fs.FileSystem.from_uri(uri)
    except Exception as e:  # pyarrow says ArrowInvalid, ValueError, OSError... for the same mistake
        raise UserError(f"--storage {uri}: {str(e).splitlines()[0]} (use a local path, or a URI such as "
                        f"s3://bucket/dir or gs://bucket/dir with that filesystem's credentials set up)") from None


# Options that change where or how loudly a resumed search runs, not what it searches.
RESUME_MAY_CHANGE = ("address", "quiet", "verbose")


def _check_resume_options(args, saved: dict) -> None:
    """--resume finishes the search as it was started; an option given again with another
    value (a different space, more samples, other budgets) would mix two searches in one
    table, so it is refused rather than silently ignored."""
    defaults = option_defaults(add_arguments)

    def same(k, given, was) -> bool:
        if given == was:
            return True
        return k in ("space", "storage", "data_dir") and isinstance(given, str) and isinstance(was, str) \
            and Path(given).resolve() == Path(was).resolve()

    def show(v) -> str:
        if v is None:
            return "the default"
        if isinstance(v, bool):
            return "on" if v else "off"
        return " ".join(map(str, v)) if isinstance(v, list) else f"{v:g}" if isinstance(v, float) else str(v)

    differ = [f"--{k.replace('_', '-')}: {show(v)} here, {show(saved[k])} in the search"
              for k in saved if k not in RESUME_MAY_CHANGE and (v := getattr(args, k, None)) != defaults.get(k)
              and not same(k, v, saved[k])]
    if differ:
        raise UserError(f"--resume continues {args.output} with the options it was started with; these differ: "
                        f"{'; '.join(differ)}. Leave them out, or start a new search with another --output")


def command_line() -> str:
    """The command as the user can run it again: `python -m tunekae search ...`, where Python
    sees (and sys.argv holds) the path of tunekae/__main__.py."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "__main__.py" and Path(argv[0]).parent.name == "tunekae":
        argv = ["python", "-m", "tunekae"] + argv[1:]
    return " ".join(shlex.quote(a) for a in argv)


def rerun_command(space, dataset: str, contexts, samples: int, epochs: int, seed: int, asha: bool,
                  output: Path) -> str:
    """The search with every setting that decides its trials spelt out (budgets, effort, ASHA,
    tolerance, seed), so that it reruns as it ran even after a space's defaults change."""
    budgets = list(dict.fromkeys(c.budget_label for c in contexts if c.arm.hidden is None))   # fixed arms have none
    latents = [str(n) for n in dict.fromkeys(c.latent_dim for c in contexts)]
    sizes = [str(n or "full") for n in dict.fromkeys(c.train_size for c in contexts)]
    argv = ["python", "-m", "tunekae", "search", "--space", space.source if space.source.endswith(".py") else space.name,
            "--dataset", dataset, *(["--budgets", *budgets] if budgets else []), "--latents", *latents,
            *(["--train-sizes", *sizes] if sizes != ["full"] else []),
            "--samples", str(samples), "--epochs", str(epochs), "--seed", str(seed), "--tolerance", f"{space.tolerance:g}"]
    argv += (["--grace-period", str(min(space.grace_period, epochs)), "--reduction-factor", str(space.reduction_factor)]
             if asha else ["--no-asha"])
    return " ".join(shlex.quote(a) for a in argv + ["--output", str(output)])


def _check_resume_space(saved: dict, space, contexts) -> None:
    """The same options are not enough for --resume: a space file edited since the search
    started (another lr range, one more arm) would run its remaining trials from another space
    into the same studies and table; and a tunekae whose solver fits other shapes would do so too."""
    if saved.get("space_sha256", space.source_sha256) != space.source_sha256:
        raise UserError(f"{space.source} has changed since this search started, so its remaining trials would "
                        f"come from another space than its finished ones; put the file back as it was, or start a "
                        f"new search with another --output")
    now = {c.key: c.to_dict() for c in contexts}
    was = {a["name"]: a for a in saved.get("arms", [])}
    differ = sorted(k for k in now.keys() | was.keys() if json.loads(json.dumps(now.get(k))) != was.get(k))
    if was and differ:
        raise UserError(f"the arms of this search differ from those it started with ({', '.join(differ)}): the "
                        f"budget solver or the space has changed since; finish it with the tunekae that started it, "
                        f"or start a new search with another --output")


def _check_arms_unique(contexts) -> None:
    """Each arm is one Tune experiment and one Optuna study, named by its key: a budget given
    twice (`1x 1x`, or `1x` and `2128` on digits) would run them into each other. (Two arms of
    one name are refused with the space, by space_checks.check_space.)"""
    seen: dict[str, object] = {}
    for c in contexts:
        if c.key in seen:
            first = seen[c.key]
            why = (f"budgets {first.budget_label} and {c.budget_label} are both {c.budget:,} parameters"
                   if first.budget_label != c.budget_label else f"budget {c.budget_label} is given twice")
            raise UserError(f"arm {c.key} would run twice: {why}; give each budget once")
        seen[c.key] = c


def _check_tracking(args) -> None:
    """--tensorboard and --mlflow use Tune's callbacks, which need their libraries installed."""
    import importlib.util
    for flag, module, package in (("--tensorboard", "tensorboardX", "tensorboardX"), ("--mlflow", "mlflow", "mlflow")):
        if getattr(args, flag[2:]) and importlib.util.find_spec(module) is None:
            raise UserError(f"{flag} needs the {package} package: pip install {package}")


def run(args) -> int:
    from ..data import load_dataset
    from ..space_checks import check_axes, check_budgets_fit, check_defines, check_selection, check_task
    from ..spaces import arm_contexts, load_space

    saved_run: dict = {}   # run.json of the search that --resume continues
    if args.resume:
        if not args.output:
            raise UserError("--resume needs --output DIR of the interrupted search")
        if not (Path(args.output) / "run.json").exists():
            raise UserError(f"{args.output} is not a tunekae search output (no run.json); nothing to resume")
        from ..results import read_run_json
        saved_run = read_run_json(Path(args.output), to_resume=True)
        saved = saved_run["options"]
        _check_resume_options(args, saved)
        for k, v in saved.items():   # the interrupted search's options, except where it runs and how loudly
            if k not in RESUME_MAY_CHANGE or getattr(args, k) in (None, False):
                setattr(args, k, v)
        for k in ("grace_period", "reduction_factor"):   # searches from before these options existed
            if getattr(args, k) is None and saved_run.get("asha"):
                setattr(args, k, saved_run["asha"][k])
        args.resume = True
    if not args.space:
        raise UserError("--space is required (see `python -m tunekae spaces`)")
    for name, least in (("samples", 1), ("epochs", 1), ("max_concurrent", 1), ("grace_period", 1),
                        ("reduction_factor", 2)):
        if getattr(args, name) is not None and getattr(args, name) < least:
            raise UserError(f"--{name.replace('_', '-')} must be >= {least}")
    if args.cpus_per_trial <= 0:
        raise UserError("--cpus-per-trial must be > 0")
    if args.gpus_per_trial is not None and args.gpus_per_trial < 0:
        raise UserError("--gpus-per-trial must be >= 0")
    check_seed(args.seed)
    if args.storage and "://" in args.storage:
        _check_storage_uri(args.storage)
    elif args.storage:
        args.storage = str(Path(args.storage).resolve())   # Tune wants absolute paths
        check_writable_dir(Path(args.storage), "--storage")

    space = load_space(args.space)
    if args.tolerance is not None:
        if not 0 < args.tolerance < 1:
            raise UserError("--tolerance must be between 0 and 1 (0.02 = 2%)")
        space.tolerance = args.tolerance
    space.grace_period = args.grace_period or space.grace_period
    space.reduction_factor = args.reduction_factor or space.reduction_factor
    dataset = args.dataset or space.dataset
    splits = load_dataset(dataset, data_dir=args.data_dir, seed=args.seed)
    contexts = arm_contexts(space, splits.input_dim, args.budgets, splits.output_dim, args.latents, args.train_sizes)
    check_task(space, splits, dataset)
    check_axes(contexts, splits, dataset)
    _check_arms_unique(contexts)
    check_budgets_fit(contexts, space, splits.input_dim)
    check_defines(space, contexts, splits.input_dim)
    selection = space.selection()
    # a space may reproduce a demo that ran every epoch; two objectives have no one number to rank by
    asha = space.asha and not args.no_asha and not selection.multi
    check_selection(space, contexts, asha)
    if args.resume:
        _check_resume_space(saved_run, space, contexts)
    samples, epochs = args.samples or space.samples_per_arm, args.epochs or space.epochs
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset)
    output = Path(args.output or f"results/{space.name}-{safe}-{time.strftime('%Y%m%d-%H%M%S')}")
    if not args.resume and (output / "run.json").exists():
        raise UserError(f"{output} already holds a search; use --resume to continue it or choose another --output")
    check_writable_dir(output)
    if not args.output and os.environ.get(RAY_JOB_ENV):
        print(f"tunekae: a Ray job without --output writes to {output.resolve()}, inside Ray's temporary copy of "
              f"the job's working dir; give --output a path that outlives the job", file=sys.stderr)

    from ..results import format_summary_line, resume_command
    from ..search import SearchOptions, run_search, shutdown
    from ..search.disk_full import disk_full
    _check_tracking(args)
    opts = SearchOptions(samples=samples, epochs=epochs, seed=args.seed, cpus_per_trial=args.cpus_per_trial,
                         gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent, address=args.address,
                         verbose=args.verbose, quiet=args.quiet, asha=asha, storage=args.storage,
                         optuna_storage=args.optuna_storage, tensorboard=args.tensorboard, mlflow=args.mlflow,
                         selection=selection)
    options = {k: getattr(args, k) for k in ("space", "dataset", "data_dir", "samples", "epochs", "budgets", "latents",
                                             "train_sizes", "seed",
                                             "tolerance", "grace_period", "reduction_factor", "cpus_per_trial",
                                             "gpus_per_trial", "max_concurrent", "address", "storage",
                                             "optuna_storage", "quiet", "verbose", "tensorboard", "mlflow",
                                             "no_asha")}
    options["space"] = space.source if space.source.endswith(".py") else space.name
    meta = {"space": space.name, "space_sha256": space.source_sha256, "description": space.description,
            "dataset": dataset,
            "latent_dim": space.latent_dim, "input_dim": splits.input_dim, "tolerance": space.tolerance,
            "splits": {"train": len(splits.train_x), "val": len(splits.val_x), "test": len(splits.test_x)},
            "budgets": sorted({(c.budget_label, c.budget) for c in contexts}, key=lambda b: b[1]),
            "arms": [c.to_dict() for c in contexts], "samples_per_arm": samples, "epochs": epochs,
            "asha": {"grace_period": min(space.grace_period, epochs), "reduction_factor": space.reduction_factor,
                     "max_t": epochs} if asha else None,
            "selection": selection.to_dict(),
            "seed": args.seed, "command": command_line(),
            "rerun_command": rerun_command(space, dataset, contexts, samples, epochs, args.seed, asha, output),
            "options": options,
            "versions": _versions(), "tunekae": provenance(), "hardware": _hardware(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if args.resume:
        meta.update(started=saved_run.get("started"), summary=saved_run.get("summary", {}),
                    wall_seconds=saved_run.get("wall_seconds", 0), sessions=saved_run.get("sessions", []))
        if saved_run.get("tunekae", meta["tunekae"]) != meta["tunekae"]:   # the code that began it, and this one
            meta.update(tunekae=saved_run["tunekae"], tunekae_resumed=meta["tunekae"])
    meta["budgets"] = [{"label": label, "params": n} for label, n in meta["budgets"]]
    try:
        run_search(space, contexts, splits, opts, output, meta, resume=args.resume)
    except KeyboardInterrupt:
        shutdown()
        if (output / "run.json").exists():
            print(f"tunekae search: interrupted; continue with: {resume_command(output)}", file=sys.stderr)
        else:   # stopped while Ray started: there is nothing to resume
            print("tunekae search: interrupted before the search began; nothing was written", file=sys.stderr)
        return 130
    except Exception as e:   # noqa: BLE001 - only a full disk is the user's to fix; the rest is re-raised
        full = disk_full(e)
        if full is None:
            raise
        raise UserError(f"the disk is full ({full.filename or output}); free some space, then continue with: "
                        f"{resume_command(output)}") from None
    final = json.loads((output / "run.json").read_text())
    print(f"\n{space.name} on {dataset}: {samples} trials x {epochs} epochs per arm, wall {final['wall_seconds']:.0f} s")
    for key, summary in final["summary"].items():
        print("  " + format_summary_line(key, summary))
    studies = args.optuna_storage or shlex.quote(str(output / "studies.journal"))
    print(f"results: {output / 'results.csv'}   studies: {studies} (optuna-dashboard opens it)")
    quoted = shlex.quote(str(output))
    print(f"next: python -m tunekae confirm {quoted}   then   python -m tunekae.analysis report {quoted}")
    return 0
