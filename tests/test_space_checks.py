"""A comparison module's mistakes exit 2 with one line naming the arm, before a search writes
anything; the shipped spaces pass the same checks. No Ray: the checks run before it starts."""
import pytest

from tunekae.data import load_dataset
from tunekae.errors import UserError
from tunekae.space_checks import check_defines, check_space
from tunekae.spaces import Arm, Space, arm_contexts, builtin_spaces, load_space, suggest_architecture, \
    suggest_training


def define(trial, ctx):                       # module-level, as OptunaSearch needs
    arch = suggest_architecture(trial, ctx)
    suggest_training(trial)
    return arch


def define_typo(trial, ctx):
    arch = suggest_architecture(trial, ctx)
    trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    return arch


def define_epochs_sometimes(trial, ctx):      # a branch: only some random trials take it
    arch = suggest_architecture(trial, ctx)
    if trial.suggest_categorical("long", [False, True]):
        return {**arch, "epochs": 100}
    return arch


def define_bad_range(trial, ctx):
    trial.suggest_float("lr", 1e-2, 1e-4, log=True)


def define_misspelt_choice(trial, ctx):
    arch = suggest_architecture(trial, ctx)
    trial.suggest_categorical("hidden_activation", ["relu", "selu"])
    return arch


def define_returns_list(trial, ctx):
    return [suggest_architecture(trial, ctx)]


def space(*arms, **kw):
    return Space(name="case", description="a test case", arms=list(arms), budgets=["1x"], **kw)


@pytest.mark.parametrize("bad, message", [
    (space(), "arms is empty"),
    (space(Arm("m", "linear", define), epochs=0), "epochs must be a whole number >= 1, got 0"),
    (space(Arm("m", "linear", define), samples_per_arm=2.5), "samples_per_arm must be a whole number >= 1"),
    (space(Arm("m", "linear", define), reduction_factor=1), "reduction_factor must be a whole number >= 2"),
    (space(Arm("m", "linear", define), tolerance=2), "tolerance must be between 0 and 1"),
    (Space(name="case", description="", arms=[Arm("m", "linear", define)], budgets=[]), "budgets must be a non-empty"),
    (space("mlp"), "arms must hold Arm(...) objects, got str"),
    (space(Arm("m", "nope", define)), "arm 'm': unknown layer family 'nope'; choose from cheby, kae, kan"),
    (space(Arm("m", "linear", define, variant="vea")), "arm 'm': variant must be one of ae, vae"),
    (space(Arm("m/x", "linear", define)), "arm name 'm/x' must be letters, digits"),
    (space(Arm("m", "linear", define), Arm("m", "kae", define)), "two arms are named 'm'"),
    (space(Arm("m", "linear", lambda trial, ctx: None)), "arm 'm': define must be a function defined at the top"),
    (space(Arm("m", "linear", "define")), "arm 'm': define must be a function define(trial, ctx), got str"),
    (space(Arm("m", "linear", define, depths=())), "arm 'm': depths must be hidden-layer counts >= 0"),
    (space(Arm("m", "linear", define, depths=(1, -1))), "depths must be hidden-layer counts >= 0"),
    (space(Arm("m", "linear", define, fixed={"bogus": 1})), "fixed {'bogus': 1}: 'bogus' is no model option"),
    (space(Arm("m", "linear", define, fixed={"lr": 1e-3})), "'lr' is a training option: the arm's define samples"),
    (space(Arm("m", "linear", define, fixed={"hidden": (64,)})), "'hidden' is solved from the budget"),
    (space(Arm("m", "linear", define, fixed={"latent_dim": 8})), "'latent_dim' is the space's latent_dim"),
    (space(Arm("k", "kae", define, shapes=[{"ordr": 3}])), "arm 'k': a shape {'ordr': 3}: 'ordr' is no model"),
    (space(Arm("m", "linear", define, fixed={"hidden_activation": "rleu"})), "hidden_activation must be one of"),
    (space(Arm("m", "linear", define, start=3)), "start must be a dict of parameter values or None, got 3"),
])
def test_a_mistaken_space_declaration_is_refused_naming_the_arm(bad, message):
    with pytest.raises(UserError) as e:
        check_space(bad)
    assert message in str(e.value) and str(e.value).startswith("space case: ")


@pytest.mark.parametrize("fn, message", [
    (define_typo, "arm 'm': define(trial, ctx) samples 'learning_rate', which is no model or training option"),
    (define_epochs_sometimes, "samples 'epochs', which is the search's --epochs, the same for every arm"),
    (define_bad_range, "define(trial, ctx) raised at budget 2,128 (line 32): ValueError: `low <= high` must hold"),
    (define_misspelt_choice, "hidden_activation='selu'): hidden_activation must be one of relu, relu6"),
    (define_returns_list, "must return a dict of constants (e.g. suggest_architecture's) or None, got list"),
])
def test_a_define_that_samples_what_it_may_not_or_raises_is_refused(fn, message):
    s = space(Arm("m", "linear", fn))
    check_space(s)                             # the declaration itself is fine
    with pytest.raises(UserError) as e:
        check_defines(s, arm_contexts(s, 64), 64)
    assert message in str(e.value)


def test_every_shipped_space_passes_the_checks():
    digits = load_dataset("digits")
    for name in builtin_spaces():
        s = load_space(name)                   # runs check_space
        check_defines(s, arm_contexts(s, digits.input_dim), digits.input_dim)


def test_a_misnamed_parameter_that_reaches_a_trial_is_its_error_row():
    """A branch the checks' random trials missed still never trains with an ignored name."""
    from tunekae.trial import ArmSpec, RunSpec, run_trial
    arm = ArmSpec("mlp_b2128", "mlp", "linear", "ae", 2128)
    run = RunSpec(input_dim=64, latent_dim=16, epochs=1)
    reports = []
    final = run_trial({"depth": 0, "learning_rate": 0.1, "seed": 3}, arm, run, load_dataset("digits"),
                      reports.append, seed=0)
    assert final["status"] == "error" and reports == [final]
    assert "'learning_rate', which is no model or training option" in final["error"]
    assert "'seed', which is the search's --seed" in final["error"]


def test_a_users_space_file_with_a_typo_exits_2_and_writes_nothing(run_cli, tmp_path):
    space_file = tmp_path / "typo_space.py"
    space_file.write_text('''from tunekae.spaces import Arm, Space, suggest_architecture


def define(trial, ctx):
    arch = suggest_architecture(trial, ctx)
    trial.suggest_float("weight_decy", 1e-6, 1e-3, log=True)
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    return arch


SPACE = Space(name="typo", description="a typo", arms=[Arm("mlp", "linear", define)], budgets=["1x"])
''')
    out_dir = tmp_path / "out"
    code, _, err = run_cli("search", "--space", space_file, "--output", out_dir)
    assert code == 2 and len(err.strip().splitlines()) == 1 and not out_dir.exists()
    assert f"space file {space_file}: arm 'mlp': define(trial, ctx) samples 'weight_decy'" in err


def test_spaces_shows_one_space_as_a_search_would_run_it(run_cli):
    code, out, err = run_cli("spaces", "kae_vs_mlp")
    assert code == 0, err
    assert "dataset digits (64 inputs), latent 16; 12 trials x 30 epochs per arm" in out
    assert ("arm mlp: layer linear; samples batch_size, depth, hidden_activation, latent_activation, lr, optimizer, "
            "output_activation, "
            "weight_decay; first trial optimizer=adam, lr=0.0001") in out
    # the 1x MLP is depth 0; one hidden layer costs 162 parameters a unit here: 2,024 or 2,186 miss 2,128 by > 2%
    assert "mlp_b2128        depth 0 | depth 2\n" in out
    assert "kae_b2128        depth 2 (order=1, order=2)\n" in out


def test_spaces_checks_a_users_file_and_shows_arms_that_cannot_be_built(run_cli, tmp_path):
    space_file = tmp_path / "mine.py"
    space_file.write_text('''from tunekae.spaces import Arm, Space, suggest_architecture


def define(trial, ctx):
    return suggest_architecture(trial, ctx)


SPACE = Space(name="mine", description="order-3 KAE", arms=[Arm("kae3", "kae", define, shapes=[{"order": 3}]),
                                                              Arm("mlp", "linear", define)])
''')
    code, out, err = run_cli("spaces", space_file, "--budgets", "1x", "100k")
    assert code == 0, err
    assert "arm kae3: layer kae; shapes order=3; samples depth, order\n" in out
    assert "kae3_b2128       cannot be built (nearest 2,084 or 2,648): the search records it as one infeasible row" in out
    assert "kae3_b100000     depth 1 (order=3) | depth 2 (order=3)" in out
    # a budget no arm can be built at: `spaces` refuses it as `search` does, in the same words
    space_file.write_text(space_file.read_text().replace(',\n                                                              Arm("mlp", "linear", define)', ""))
    code, _, err = run_cli("spaces", space_file, "--budgets", "1x")
    assert code == 2 and "budget 1x = 2,128 parameters: no arm of mine can be built with that many" in err, err
    space_file.write_text(space_file.read_text().replace('"kae", define', '"kea", define'))
    code, _, err = run_cli("spaces", space_file)
    assert code == 2 and f"space file {space_file}: arm 'kae3': unknown layer family 'kea'" in err
    code, _, err = run_cli("spaces", "--budgets", "4x")
    assert code == 2 and "describe one space: give it" in err


def _distributions(arm_name: str, space_name: str = "all_families", depth: int = 1) -> dict:
    """Every distribution an arm's define samples at `depth` (an in-memory Optuna trial)."""
    import optuna

    from tunekae.spaces import arm_contexts, load_space
    space = load_space(space_name)
    ctx = next(c for c in arm_contexts(space, 784, ["410000"]) if c.arm.name == arm_name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    dists = {}
    for _ in range(40):   # conditional parameters (lamb_entropy) appear in some trials only
        trial = study.ask()
        ctx.arm.define(trial, ctx)
        if trial.params.get("depth", depth) == depth:
            dists.update(trial.distributions)
        study.tell(trial, 0.0)
    return dists


def _reaches(dist, value) -> bool:
    import optuna
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return value in dist.choices
    return dist.low <= value <= dist.high


@pytest.mark.parametrize("arm", ["mlp", "kae", "kan", "cheby", "rbf"])
def test_every_arm_reaches_the_kae_reviews_winning_configurations(arm):
    """relu6 in the latent and output positions, lr 1e-5, batch 512 (the KAE review's tables)."""
    d = _distributions(arm)
    for name, value in [("latent_activation", "relu6"), ("output_activation", "relu6"), ("lr", 1e-5),
                        ("batch_size", 512), ("latent_activation", "relu"), ("output_activation", "sigmoid")]:
        assert _reaches(d[name], value), (arm, name, value)


def test_kae_samples_the_papers_relu_between_layers_and_kan_pykans_ranges():
    kae = _distributions("kae")
    assert kae["hidden_activation"].choices == ("relu", "none")
    kan = _distributions("kan")
    assert {0.0, 0.01, 0.1, 1.0} <= set(kan["lamb"].choices)
    assert {0.0, 10.0, 100.0} <= set(kan["lamb_entropy"].choices)
    assert {3, 5} <= set(_distributions("derp_vae")["derp_probes"].choices)
