"""Run the simulator's doctest examples (pytest's doctest collection covers planner/ only)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["simulator.units", "simulator.device", "simulator.engine", "simulator.timeline",
           "simulator.simulate"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
