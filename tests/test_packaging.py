"""pyproject.toml's pins for ./venv-run ([tool.tunekae] tested) agree with its dependency ranges."""
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
DEPENDENCIES = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["test"]


def _pins() -> dict[str, str]:
    pins = {}
    for line in PYPROJECT["tool"]["tunekae"]["tested"]:
        req = Requirement(line)
        (spec,) = req.specifier                    # exactly one "==version" each
        assert spec.operator == "==", line
        pins[req.name.lower()] = spec.version
    return pins


def test_every_pin_lies_in_the_range_pip_users_get():
    # a pin outside its range makes pip fail to resolve when ./venv-run builds a fresh venv
    pins = _pins()
    for line in DEPENDENCIES:
        req = Requirement(line)
        if req.name.lower() in pins:
            assert req.specifier.contains(pins[req.name.lower()]), (line, pins[req.name.lower()])


def test_every_direct_dependency_but_torch_is_pinned():
    # torch and torchvision are pinned by ./venv-run itself (the releases on the machine's disk)
    pins = _pins()
    unpinned = {Requirement(d).name.lower() for d in DEPENDENCIES} - set(pins) - {"torch", "torchvision"}
    assert not unpinned, unpinned
