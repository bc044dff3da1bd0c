"""The planner registry and run_planner: names, door checks, timing, search options."""

from __future__ import annotations

import pytest

from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.errors import Infeasible, UnknownName
from trainplan.planner.offsets import PLANNERS, PlannerSpec, planner_names, run_planner
from trainplan.planner.offsets._common import greedy_plan

P = AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 4), Buffer("c", 2, 4, 4)))


def test_registry_lists_the_planners_with_descriptions():
    assert {
        "basic",
        "nntrainer_v1",
        "nntrainer_v2",
        "nntrainer_v3",
        "greedy_size",
        "greedy_breadth",
        "best_fit",
    } <= set(planner_names())
    assert planner_names() == list(PLANNERS)
    for name, spec in PLANNERS.items():
        assert spec.description and "\n" not in spec.description, name
        assert spec.function.__name__.startswith("plan_"), name
        assert spec.function.__module__.startswith("trainplan.planner.offsets.")


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UnknownName) as info:
        run_planner("greedy", P)
    for name in planner_names():
        assert name in str(info.value)


def test_capacity_below_the_bound_is_refused_before_planning(monkeypatch):
    called = []
    spec = PlannerSpec(lambda problem, **kw: called.append(1), "never runs", searches=True)
    monkeypatch.setitem(PLANNERS, "spy", spec)
    with pytest.raises(Infeasible) as info:
        run_planner("spy", P.with_capacity(7))
    assert info.value.needed_bytes == 8
    assert str(info.value) == (
        "infeasible: needs at least 8 bytes (the lower bound); capacity is 7"
    )
    assert called == []


def test_capacity_at_the_bound_is_accepted():
    assert run_planner("greedy_size", P.with_capacity(8)).arena_bytes == 8


def test_solve_seconds_is_measured():
    plan = run_planner("nntrainer_v1", P)
    assert plan.planner == "nntrainer_v1"
    assert 0 < plan.solve_seconds < 1


def _stacked(problem: AllocationProblem) -> dict[str, int]:
    return {b.id: 4 * i for i, b in enumerate(problem.buffers)}


def test_search_options_reach_only_searching_planners(monkeypatch):
    received = {}

    def plan_searching(problem, **options):
        received["searching"] = options
        return greedy_plan("searching", problem, _stacked(problem))

    def plan_plain(problem):  # would fail with a TypeError if given options
        received["plain"] = {}
        return greedy_plan("plain", problem, _stacked(problem))

    monkeypatch.setitem(PLANNERS, "searching", PlannerSpec(plan_searching, "s", searches=True))
    monkeypatch.setitem(PLANNERS, "plain", PlannerSpec(plan_plain, "p"))
    run_planner("searching", P, time_limit=3.0, seed=5, workers=1, deterministic=True)
    run_planner("plain", P, time_limit=3.0, seed=5, workers=1, deterministic=True)
    assert received == {"searching": {"time_limit": 3.0, "seed": 5, "workers": 1,
                                      "deterministic": True}, "plain": {}}
    run_planner("searching", P)
    assert received["searching"] == {"seed": 0, "workers": 2, "deterministic": False}
