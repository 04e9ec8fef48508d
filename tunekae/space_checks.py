"""Checks of a comparison module (search_spaces/*.py, or a user's file given to --space) before a
search writes anything.

A mistake in a space is the user's input: it must exit 2 with one line naming the arm and what
to change. Unchecked, it showed up as a traceback halfway into the search after the output dir
was written (an unknown layer family, a lambda that OptunaSearch cannot pickle, a define that
raises), as a search of nothing reported as done (no arms), or, worst, not at all: a sampled
name that is no option (`learning_rate`) was recorded in every row and changed nothing.
"""
from __future__ import annotations

import pickle

from .errors import UserError
from .models import ModelConfig
from .spaces import Arm, ArmContext, Space, lines_in
from .trial import RESERVED, RunSpec, misnamed_params, tunable_names, unsolved_configs

PROBES = 16   # random trials per arm and budget that each define-by-run function is run on
_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def check_space(space: Space) -> None:
    """What can be checked without a dataset: the space's numbers and each arm's declaration."""
    where = _where(space)
    if not isinstance(space.arms, (list, tuple)) or not space.arms:
        raise UserError(f"{where}: arms is empty; a comparison needs at least one Arm(...)")
    for name, least in (("samples_per_arm", 1), ("epochs", 1), ("latent_dim", 1), ("grace_period", 1),
                        ("reduction_factor", 2)):
        value = getattr(space, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise UserError(f"{where}: {name} must be a whole number >= {least}, got {value!r}")
    if not 0 < space.tolerance < 1:
        raise UserError(f"{where}: tolerance must be between 0 and 1 (0.02 = 2%), got {space.tolerance!r}")
    if not isinstance(space.budgets, (list, tuple)) or not space.budgets:
        raise UserError(f"{where}: budgets must be a non-empty list such as ['4x', '16x'] or [25888]")
    try:
        space.selection()
    except ValueError as e:
        raise UserError(f"{where}: {e}") from None
    seen = set()
    for arm in space.arms:
        if not isinstance(arm, Arm):
            raise UserError(f"{where}: arms must hold Arm(...) objects, got {type(arm).__name__}")
        _check_arm(arm, where)
        if arm.name in seen:   # an arm is one Tune experiment and one Optuna study, by name
            raise UserError(f"{where}: two arms are named {arm.name!r}; give each its own name")
        seen.add(arm.name)


def _check_arm(arm: Arm, where: str) -> None:
    from .layers import LAYERS
    at = f"{where}: arm {arm.name!r}"
    if not isinstance(arm.name, str) or not arm.name or not set(arm.name) <= _SAFE:
        raise UserError(f"{where}: arm name {arm.name!r} must be letters, digits, '_', '-' or '.' "
                        f"(it names the arm's files)")
    if arm.family not in LAYERS:
        raise UserError(f"{at}: unknown layer family {arm.family!r}; choose from {', '.join(sorted(LAYERS))}")
    if not callable(arm.define):
        raise UserError(f"{at}: define must be a function define(trial, ctx), got {type(arm.define).__name__}")
    try:
        pickle.dumps(arm.define)
    except (pickle.PicklingError, AttributeError, TypeError):
        raise UserError(f"{at}: define must be a function defined at the top level of the module (OptunaSearch "
                        f"saves it by name for --resume), not a lambda or a nested function") from None
    if arm.hidden is not None and (not isinstance(arm.hidden, tuple) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in arm.hidden)):
        raise UserError(f"{at}: hidden must be a tuple of fixed widths >= 1, such as (5,), or None; got {arm.hidden!r}")
    if not arm.depths or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in arm.depths):
        raise UserError(f"{at}: depths must be hidden-layer counts >= 0, such as (0, 1, 2); got {arm.depths!r}")
    for what, options in [("fixed", arm.fixed)] + [("a shape", s) for s in arm.shapes]:
        if not isinstance(options, dict):
            raise UserError(f"{at}: {what} must be a dict of model options, got {options!r}")
        problems = [_not_a_model_option(k) for k in options if k not in _model_options()]
        if problems:
            raise UserError(f"{at}: {what} {options}: {'; '.join(problems)}")
        try:
            ModelConfig(family=arm.family, variant=arm.variant, **options)
        except (TypeError, ValueError) as e:
            raise UserError(f"{at}: {e}") from None
    if arm.start is not None and not isinstance(arm.start, dict):
        raise UserError(f"{at}: start must be a dict of parameter values or None, got {arm.start!r}")


def check_defines(space: Space, contexts: list[ArmContext], input_dim: int,
                  probes: int = PROBES) -> dict[str, list[str]]:
    """Runs every arm's define-by-run function on `probes` random Optuna trials at each budget
    it can be built at (in memory, a few ms each): it must not raise, must return a dict of
    constants or None, may only sample model and training options the search does not reserve,
    and the values it samples must make valid configurations (an activation spelled wrong in a
    choice list). Branches that random trials miss are still checked at trial time: such a
    trial becomes an `error` row. Returns, per arm, the names its probes sampled."""
    import optuna
    where = _where(space)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)   # no "A new study created" per arm
    sampled_by_arm: dict[str, set[str]] = {}
    try:
        for ctx in (c for c in contexts if c.feasible):
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            names: set[str] = set()
            sampled: list[dict] = []
            for _ in range(probes):
                trial = study.ask()
                try:
                    constants = ctx.arm.define(trial, ctx)
                except Exception as e:  # the user's function: point at their line, not our stack
                    raise UserError(f"{where}: arm {ctx.arm.name!r}: define(trial, ctx) raised at budget "
                                    f"{ctx.budget:,}{_line_in(e, ctx.arm.define)}: {type(e).__name__}: {e}") from None
                if constants is not None and not isinstance(constants, dict):
                    raise UserError(f"{where}: arm {ctx.arm.name!r}: define(trial, ctx) must return a dict of "
                                    f"constants (e.g. suggest_architecture's) or None, got {type(constants).__name__}")
                names |= set(trial.params) | set(constants or {})
                sampled.append({**trial.params, **(constants or {})})
            sampled_by_arm.setdefault(ctx.arm.name, set()).update(names)
            problems = misnamed_params(names)
            if problems:
                raise UserError(f"{where}: arm {ctx.arm.name!r}: define(trial, ctx) samples " + "; ".join(problems))
            run = RunSpec(input_dim=input_dim, latent_dim=space.latent_dim, epochs=1, tolerance=space.tolerance,
                          output_dim=ctx.output_dim)
            for params in sampled:
                try:   # values only: whether widths fit the budget is the trial's finding
                    unsolved_configs(params, ctx.spec(), run, seed=0)
                except (TypeError, ValueError) as e:
                    shown = ", ".join(f"{k}={v!r}" for k, v in params.items() if not k.startswith("shape_d"))
                    raise UserError(f"{where}: arm {ctx.arm.name!r}: define(trial, ctx) sampled an invalid "
                                    f"configuration ({shown}): {e}") from None
    finally:
        optuna.logging.set_verbosity(verbosity)
    return {arm: sorted(names) for arm, names in sampled_by_arm.items()}


def _model_options() -> set[str]:
    """What an arm's `fixed` and `shapes` may set: ModelConfig fields the search leaves to it."""
    from dataclasses import fields
    return {f.name for f in fields(ModelConfig)} - set(RESERVED)


def _not_a_model_option(name: str) -> str:
    if name in RESERVED:
        return f"{name!r} is {RESERVED[name]}, not for a space to set"
    if name in tunable_names():
        return f"{name!r} is a training option: the arm's define samples those"
    return f"{name!r} is no model option (they are: {', '.join(sorted(_model_options()))})"


def _where(space: Space) -> str:
    return f"space file {space.source}" if space.source.endswith(".py") else f"space {space.name}"


def _line_in(error: Exception, define) -> str:
    """' (line N)': the last line of the define's own file that the error went through, else ''."""
    source = getattr(getattr(define, "__code__", None), "co_filename", None)
    lines = lines_in(error, source) if source else []
    return f" (line {lines[-1]})" if lines else ""


def check_budgets_fit(contexts, space, input_dim: int) -> None:
    """A budget that no arm can be built at would run nothing and report nothing: say so
    (the usual slip is a bare number meant as a multiple, `4` for `4x`). A budget that only
    some arms miss is a finding, recorded as their infeasible rows."""
    from .budget import reference_mlp_params
    from .spaces import nearest_reachable
    for label, latent in dict.fromkeys((c.budget_label, c.latent_dim) for c in contexts):
        arms = [c for c in contexts if (c.budget_label, c.latent_dim) == (label, latent)]
        if not any(c.feasible for c in arms):
            budget = arms[0].budget
            # what each arm can reach instead: a space of few shapes (a user's) often just misses
            off = lambda n: f" ({(n - budget) / budget:+.1%})" if abs(n - budget) < budget else ""  # noqa: E731
            nearest = "; ".join(f"{c.arm.name} " + " or ".join(
                f"{n:,}{off(n)}" for n in nearest_reachable(c, input_dim, space.tolerance))
                for c in arms)
            raise UserError(
                f"budget {label} = {budget:,} parameters: no arm of {space.name} can be built with that many "
                f"(within {space.tolerance:.0%}; nearest: {nearest}); budgets are parameter counts (25888, 100k, "
                f"1.5M) or multiples of the single-layer MLP, which has "
                f"{reference_mlp_params(input_dim, latent):,} parameters here (4x)")


def check_task(space: Space, splits, dataset: str) -> None:
    """Regressor arms fit a function dataset's targets; autoencoder arms reconstruct their input:
    each needs its kind of dataset."""
    for arm in space.arms:
        if (arm.variant == "regressor") != splits.regression:
            need = "a function dataset (function:NAME)" if arm.variant == "regressor" else "a dataset of inputs to reconstruct"
            raise UserError(f"{_where(space)}: arm {arm.name!r} is {'a regressor' if arm.variant == 'regressor' else 'an autoencoder'} "
                            f"and needs {need}; {dataset} is {'a function' if splits.regression else 'not a function'}: "
                            f"give another --dataset")


def check_axes(contexts, splits, dataset: str) -> None:
    """A code wider than its input compresses nothing, and a training set cannot be larger than
    the training split: each says so."""
    for c in contexts:
        if c.arm.variant != "regressor" and c.latent_dim > splits.input_dim:
            raise UserError(f"latent size {c.latent_dim} is larger than the {splits.input_dim} inputs of {dataset}: an "
                            f"autoencoder's code cannot be wider than what it codes; give smaller --latents")
        if c.train_size is not None and c.train_size > len(splits.train_x):
            raise UserError(f"training-set size {c.train_size:,} is more than the {len(splits.train_x):,} training "
                            f"images of {dataset} (after its validation split); give smaller --train-sizes or 'full'")


def check_selection(space: Space, contexts, asha: bool) -> None:
    """Every arm's trials record what the space selects on, when the scheduler needs it."""
    from .selection import check_arms
    problems = check_arms(space.selection(), {c.key: c.arm.variant for c in contexts}, asha)
    if problems:
        raise UserError(f"{_where(space)}: " + "; ".join(problems))
