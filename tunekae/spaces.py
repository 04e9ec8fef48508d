"""The search-space vocabulary used by search_spaces/*.py.

A comparison is one small module defining `SPACE = Space(...)`: its arms (one family each, with
a module-level define-by-run Optuna function), budgets, trials per arm, epochs and ASHA
settings. At search time each (arm, budget) pair becomes an ArmContext holding the shapes the
budget solver can actually fit, so the define-by-run function only samples feasible
architectures (feasibility by construction).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .budget import InfeasibleBudget, config_params, feasible_shapes, parse_budget, solve_widths
from .errors import UserError
from .models import ModelConfig

PAPER_RECIPE = {"optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-4, "batch_size": 256,
                "hidden_activation": "relu", "latent_activation": "relu", "output_activation": "sigmoid"}


@dataclass
class Arm:
    name: str                                   # label in tables: mlp, kae, kan, vae, ...
    family: str                                 # layer family
    define: Callable                            # define(trial, ctx) -> dict | None (module-level)
    variant: str = "ae"
    shapes: list[dict] = field(default_factory=lambda: [{}])   # order/grid options to fit
    depths: tuple[int, ...] = (0, 1, 2)
    start: dict | None = None                   # a starting point: recipe values + preferred shape
    fixed: dict = field(default_factory=dict)   # model options fixed for this arm
    # Fixed hidden widths instead of a budget (a hyperparameter study such as pykan's demo, KAN
    # [2,5,1]): every shape trains at these widths, and the parameter count follows the shape.
    hidden: tuple[int, ...] | None = None


@dataclass
class Space:
    name: str
    description: str
    arms: list[Arm]
    dataset: str = "digits"                     # embedded: every space runs offline by default
    latent_dim: int = 16                        # the KAE paper's
    budgets: list = field(default_factory=lambda: ["4x", "16x"])
    # More axes than the budget: every combination of budget, latent size and training-set size is
    # an arm of its own, with the same effort (None: the latent_dim above; the whole training split)
    latents: list[int] | None = None
    train_sizes: list | None = None             # numbers of training images, or "full"
    samples_per_arm: int = 12
    epochs: int = 30
    # ASHA: Ray's own defaults (a first rung after 1 epoch, the best quarter goes on). With a
    # grace period of 5 and factor 3, 30-epoch arms had one rung and ASHA saved 1.3x the epochs;
    # these saved 2.3-2.9x, at a best validation loss from 15% better to 15% worse than without
    # early stopping (benchmarks/search_overhead.py, digits).
    grace_period: int = 1
    reduction_factor: int = 4
    asha: bool = True                           # False: every trial runs every epoch (a demo to reproduce)
    # What trials are selected on (tunekae.selection): a validation metric and its direction, or
    # two (metric, mode) objectives for a Pareto set (those run without ASHA, which ranks by one)
    metric: str = "val_loss"
    mode: str = "min"
    objectives: list | None = None
    tolerance: float = 0.02
    source: str = ""                            # the module or file it came from
    source_sha256: str = ""                     # of that file: --resume refuses an edited space


    def selection(self):
        """The Selection these fields ask for; ValueError naming what is wrong."""
        from .selection import Selection
        return Selection.of(self.metric, self.mode, self.objectives)


@dataclass
class ArmContext:
    """One arm at one budget, with the feasible architectures the solver can fit."""
    arm: Arm
    budget: int
    budget_label: str
    feasible: dict[int, list[dict]]             # depth -> feasible shape options
    output_dim: int = 1                         # a regressor's outputs (the dataset's targets)
    latent_dim: int = 16
    train_size: int | None = None               # training images it trains on (None: all)
    default_latent: int = 16                    # the space's latent_dim: other latents show in the key

    @property
    def key(self) -> str:
        if self.arm.hidden is not None:
            key = f"{self.arm.name}_w{'-'.join(map(str, self.arm.hidden))}"
        else:
            key = f"{self.arm.name}_b{self.budget}"
        key += f"_z{self.latent_dim}" if self.latent_dim != self.default_latent else ""
        return key + (f"_n{self.train_size}" if self.train_size is not None else "")

    def spec(self):
        """What this arm's trials are told about it (tunekae.trial.ArmSpec)."""
        from .trial import ArmSpec
        return ArmSpec(self.key, self.arm.name, self.arm.family, self.arm.variant, self.budget, dict(self.arm.fixed),
                       self.arm.hidden, self.latent_dim, self.train_size)

    def to_dict(self) -> dict:
        return {"name": self.key, "family": self.arm.name, "layer": self.arm.family,
                "variant": self.arm.variant, "budget": self.budget, "budget_label": self.budget_label,
                "fixed": self.arm.fixed, "feasible": {str(d): s for d, s in self.feasible.items()},
                "start": self.arm.start, "latent_dim": self.latent_dim, "train_size": self.train_size}


def shape_label(shape: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(shape.items())) or "default"


# ---- helpers for define-by-run functions -------------------------------------------------

def suggest_architecture(trial, ctx: ArmContext) -> dict:
    """Depth from the feasible depths, then a shape feasible at that depth. Shape parameters
    are named per depth because their choice sets differ (Optuna needs fixed choice sets)."""
    depths = sorted(ctx.feasible)
    depth = trial.suggest_categorical("depth", depths) if len(depths) > 1 else depths[0]
    shapes = ctx.feasible[depth]
    labels = [shape_label(s) for s in shapes]
    label = trial.suggest_categorical(f"shape_d{depth}", labels) if len(labels) > 1 else labels[0]
    return {"depth": depth, **shapes[labels.index(label)]}


# Ranges every arm searches alike. They reach the configurations that won in the KAE review's
# tables (lr 1e-5, batch 512, relu6 in the latent and output positions).
LATENT_ACTIVATIONS = ("relu", "relu6", "none")
OUTPUT_ACTIVATIONS = ("sigmoid", "relu6", "none")


def suggest_activations(trial, latent=LATENT_ACTIVATIONS, output=OUTPUT_ACTIVATIONS) -> None:
    """The code's and the output's activations (the paper's: relu and sigmoid)."""
    if latent:
        trial.suggest_categorical("latent_activation", list(latent))
    trial.suggest_categorical("output_activation", list(output))


def suggest_training(trial, optimizers=("adam", "adamw"), lr=(1e-5, 1e-2), batch_sizes=(32, 64, 128, 256, 512),
                     weight_decay=(1e-6, 1e-3)) -> None:
    trial.suggest_categorical("optimizer", list(optimizers))
    trial.suggest_float("lr", *lr, log=True)
    trial.suggest_categorical("batch_size", list(batch_sizes))
    trial.suggest_float("weight_decay", *weight_decay, log=True)


# ---- contexts, starting points, loading ---------------------------------------------------

def arm_contexts(space: Space, input_dim: int, budgets: list | None = None, output_dim: int = 1,
                 latents: list | None = None, train_sizes: list | None = None) -> list[ArmContext]:
    """Every arm at every budget, latent size and training-set size (budgets, latents and
    train_sizes: the command's, else the space's). A budget relative to the single-layer MLP
    ('4x') is relative to the one of its latent size."""
    contexts = []
    sizes = [parse_train_size(s) for s in (train_sizes or space.train_sizes or ["full"])]
    for latent in latents or space.latents or [space.latent_dim]:
        for size in sizes:
            extra = {"latent_dim": latent, "train_size": size, "default_latent": space.latent_dim}
            for arm in (a for a in space.arms if a.hidden is not None):   # no budget: one context each
                base = ModelConfig(family=arm.family, input_dim=input_dim, latent_dim=latent,
                                   output_dim=output_dim, variant=arm.variant, hidden=arm.hidden, **arm.fixed)
                wanted = {k: v for k, v in (arm.start or {}).items() if k in ("order", "grid")}
                shape = next((s for s in arm.shapes if all(s.get(k) == v for k, v in wanted.items())), arm.shapes[0])
                nominal = config_params(base.replace(**shape))   # its count at the start's shape: a label only
                contexts.append(ArmContext(arm, nominal, "fixed", {len(arm.hidden): list(arm.shapes)}, output_dim,
                                           **extra))
            for label in budgets or space.budgets:
                budget = parse_budget(label, input_dim, latent)
                for arm in (a for a in space.arms if a.hidden is None):
                    base = ModelConfig(family=arm.family, input_dim=input_dim, latent_dim=latent,
                                       output_dim=output_dim, variant=arm.variant, **arm.fixed)
                    feasible = {d: ok for d in arm.depths
                                if (ok := feasible_shapes(base, budget, d, arm.shapes, space.tolerance))}
                    contexts.append(ArmContext(arm, budget, str(label), feasible, output_dim, **extra))
    return contexts


def parse_train_size(size) -> int | None:
    """'full' -> None (every training image); a whole number >= 1 as it is."""
    if str(size).strip().lower() == "full":
        return None
    try:
        n = int(str(size).strip())
    except ValueError:
        raise UserError(f"a training-set size is a whole number of images or 'full'; got {size!r}") from None
    if n < 1:
        raise UserError(f"a training-set size must be >= 1; got {n}")
    return n


def nearest_reachable(ctx: ArmContext, input_dim: int, tolerance: float) -> list[int]:
    """For an arm that cannot be built at its budget: the reachable counts closest to the budget
    over every depth and shape option it has, at most one below and one above."""
    base = ModelConfig(family=ctx.arm.family, input_dim=input_dim, latent_dim=ctx.latent_dim, output_dim=ctx.output_dim,
                       variant=ctx.arm.variant, **ctx.arm.fixed)
    counts = set()
    for depth in ctx.arm.depths:
        for shape in ctx.arm.shapes:
            try:
                counts.add(solve_widths(base.replace(**shape), ctx.budget, depth, tolerance).params)
            except InfeasibleBudget as e:
                counts.update(e.nearest)
    below = [n for n in counts if n <= ctx.budget]
    above = [n for n in counts if n > ctx.budget]
    return ([max(below)] if below else []) + ([min(above)] if above else [])


def starting_point(ctx: ArmContext, define: Callable) -> dict | None:
    """The arm's `start` (e.g. the paper's recipe) as Optuna parameter values: its preferred
    shape at the shallowest depth that fits, else the first feasible shape. Only parameters the
    define-by-run function really suggests are kept (probed with a recording trial)."""
    if ctx.arm.start is None or not ctx.feasible:
        return None
    start = dict(ctx.arm.start)
    wanted = {k: start.pop(k) for k in ("order", "grid") if k in start}
    depth, shape = next(((d, s) for d in sorted(ctx.feasible) for s in ctx.feasible[d]
                         if all(s.get(k) == v for k, v in wanted.items())),
                        (min(ctx.feasible), ctx.feasible[min(ctx.feasible)][0]))
    point = {"depth": depth, f"shape_d{depth}": shape_label(shape), **start}
    names = _suggested_names(define, ctx, point)
    return {k: v for k, v in point.items() if k in names}


class _RecordingTrial:
    """Answers suggest_* from a given point (or the first choice) and records the names."""

    def __init__(self, point):
        self.point, self.names = point, set()

    def _get(self, name, default):
        self.names.add(name)
        return self.point.get(name, default)

    def suggest_categorical(self, name, choices):
        return self._get(name, choices[0])

    def suggest_float(self, name, low, high, **kw):
        return self._get(name, low)

    def suggest_int(self, name, low, high, **kw):
        return self._get(name, low)


def _suggested_names(define, ctx, point) -> set[str]:
    trial = _RecordingTrial(point)
    define(trial, ctx)
    return trial.names


def builtin_spaces() -> dict[str, str]:
    """name -> module path of every module in the search_spaces package."""
    import search_spaces
    return {m.name: f"search_spaces.{m.name}" for m in pkgutil.iter_modules(search_spaces.__path__)
            if not m.name.startswith("_")}


def lines_in(error: BaseException, file) -> list[int]:
    """The lines of `file` (a user's space file) that the error's traceback went through."""
    return [f.lineno for f in traceback.extract_tb(error.__traceback__) if Path(f.filename) == Path(file)]


def load_space(name_or_path: str) -> Space:
    """A built-in space by name, or a user's module by file path."""
    if name_or_path.endswith(".py") or "/" in name_or_path:
        path = Path(name_or_path)
        if path.is_dir():
            raise UserError(f"--space {path} is a directory; give a .py file that defines SPACE, or a built-in space")
        if not path.is_file():
            raise UserError(f"space file {path} does not exist")
        if path.suffix != ".py":
            raise UserError(f"space file {path} must be a Python file ending in .py (Python imports only those)")
        spec = importlib.util.spec_from_file_location(f"tunekae_user_space_{path.stem}", path.resolve())
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # define-by-run functions must be importable to pickle
        try:
            spec.loader.exec_module(module)
        except Exception as e:   # the user's file, not tunekae: point at their line, not our stack
            sys.modules.pop(spec.name, None)
            lines = lines_in(e, path.resolve())
            if isinstance(e, SyntaxError):
                lines.append(e.lineno)
            where = f", line {lines[-1]}" if lines else ""
            raise UserError(f"space file {path}{where} failed to load: {type(e).__name__}: {e}") from None
        source = str(path.resolve())
    else:
        spaces = builtin_spaces()
        if name_or_path not in spaces:
            raise UserError(f"unknown space {name_or_path!r}; valid spaces: {', '.join(sorted(spaces))} "
                            f"(or a path to your own .py file)")
        module = importlib.import_module(spaces[name_or_path])
        source = spaces[name_or_path]
    space = getattr(module, "SPACE", None)
    if not isinstance(space, Space):
        raise UserError(f"{name_or_path} defines no SPACE = tunekae.spaces.Space(...)")
    space.source = source
    space.source_sha256 = hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()
    from .space_checks import check_space   # its own module: it needs spaces' classes
    check_space(space)
    return space
