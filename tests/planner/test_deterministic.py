"""Deterministic search: with one worker, a seed and ``deterministic=True`` the CP-SAT planners
(``cpsat`` offsets, ``optimal`` swap) stop on CP-SAT's deterministic clock, so the same call
gives the same plan however busy the machine is (what a sweep's rows rely on)."""

from __future__ import annotations

import json
import multiprocessing
import time

from trainplan.planner.build import build_training_graph
from trainplan.planner.offsets import PLANNERS, run_planner
from trainplan.planner.order import execution_order, lifespans
from trainplan.planner.plan_training import plan_training
from trainplan.planner.problems import problem_from_lifespans
from trainplan.planner.zoo import get_model


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _plan_text(plan) -> str:
    data = plan.to_dict()
    data["provenance"]["solve_seconds"] = 0.0
    return json.dumps(data, sort_keys=True)


def test_same_plan_idle_and_under_load():
    graph = build_training_graph(get_model("lenet5", batch=2))
    budget = 900_000
    calls = [{"offsets": "cpsat"}, {"budget": budget, "swap": "optimal"}]
    idle = [_plan_text(plan_training(graph, workers=1, deterministic=True, time_limit=0.05,
                                     **kw)) for kw in calls]
    hogs = [multiprocessing.Process(target=_burn, args=(30.0,))]
    for hog in hogs:
        hog.start()
    try:
        busy = [_plan_text(plan_training(graph, workers=1, deterministic=True,
                                         time_limit=0.05, **kw)) for kw in calls]
    finally:
        for hog in hogs:
            hog.terminate()
            hog.join()
    assert idle == busy
    assert all(json.loads(t)["provenance"]["options"]["deterministic"] for t in idle)


def test_deterministic_reaches_only_planners_that_take_it():
    graph = build_training_graph(get_model("mlp", batch=2))
    eo = execution_order(graph)
    problem = problem_from_lifespans(lifespans(graph, eo), "tensor", "tensor", 64)
    for name, spec in PLANNERS.items():  # none refuses the option, searching or not
        plan = run_planner(name, problem, time_limit=0.05, workers=1, deterministic=True)
        assert plan.arena_bytes >= problem.lower_bound()
        if spec.searches and name == "cpsat":
            assert plan.options.get("workers") == 1
