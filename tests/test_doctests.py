"""Run the doctest examples of every installed trainplan module (planners, validator, simulator).

The examples are run on the installed package, so they exercise exactly what users import.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

STAGES = ("planner", "simulator", "runtime", "experiments")


def _modules() -> list[str]:
    names = []
    for stage in STAGES:
        package = importlib.import_module(f"trainplan.{stage}")
        names += [m.name for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]
    return sorted(names)


MODULES = _modules() + ["trainplan.api"]
WITH_EXAMPLES = [m for m in MODULES if ">>>" in (importlib.util.find_spec(m).loader
                                                  .get_source(m) or "")]


def test_every_stage_has_examples():
    stages = {m.split(".")[1] for m in WITH_EXAMPLES}
    assert {"planner", "simulator", "runtime"} <= stages


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
