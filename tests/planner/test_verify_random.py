"""The independent validator passes every plan of every planner in every mode: on random
models over every layer type (hypothesis) and on the zoo, natively and NNTrainer-compatible,
under both orders, without a budget (every offset planner) and under one (every swap planner).

The CI versions draw a few dozen graphs; the ``slow`` ones draw thousands, and
``python -m trainplan.experiments.bench_verify`` records how many plans a long run checked.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import Infeasible
from trainplan.planner.offsets import PLANNERS
from trainplan.planner.order import ORDERS
from trainplan.planner.plan_training import plan_training
from trainplan.planner.random_spec import random_spec
from trainplan.planner.swap import SWAP_PLANNERS
from trainplan.planner.verify import verify_plan
from trainplan.planner.zoo import MODELS, get_model

GREEDY = [name for name, spec in PLANNERS.items() if not spec.searches]
SEARCHING = [name for name, spec in PLANNERS.items() if spec.searches]
QUICK_SWAP = [name for name in SWAP_PLANNERS if name != "optimal"]  # optimal runs CP-SAT
FAST = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))


class DrawChooser:
    """random_spec's choices drawn by hypothesis (so failures shrink to small models)."""

    def __init__(self, draw):
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def choice(self, options):
        return self.draw(st.sampled_from(list(options)))


@st.composite
def graphs(draw):
    """A random model built natively or NNTrainer-compatible, in place or not, maybe with its
    first layers frozen."""
    spec = random_spec(DrawChooser(draw))
    freeze = draw(st.none() | st.sampled_from([layer.name for layer in spec.layers]))
    return build_training_graph(spec, compat=draw(st.booleans()), inplace=draw(st.booleans()),
                                freeze_until=freeze)


def assert_valid(graph, plan) -> None:
    errors = verify_plan(graph, plan)
    assert errors == [], errors[:3]
    assert plan.valid


def check_offsets(graph, order: str, planners: list[str], **search) -> int:
    """Every planner's plan without a budget validates; returns the number checked."""
    for name in planners:
        plan = plan_training(graph, order=order, offsets=name, **search)
        assert_valid(graph, plan)
        assert plan.provenance.offsets == name
        assert plan.arena_bytes >= plan.bounds.lower_bound_bytes
    return len(planners)


def check_swap(graph, order: str, fraction: float, swap: str, offsets: str, **search) -> bool:
    """A budget ``fraction`` of the way from the minimum budget to the lower bound (past it
    above 1): a valid plan within the budget, or Infeasible naming more bytes than it."""
    bounds = plan_training(graph, order=order, offsets="basic").bounds
    budget = max(1, int(bounds.min_budget_bytes
                        + fraction * (bounds.lower_bound_bytes - bounds.min_budget_bytes)))
    try:
        plan = plan_training(graph, order=order, budget=budget, swap=swap, offsets=offsets,
                             **search)
    except Infeasible as exc:
        assert exc.needed_bytes > budget
        return False
    assert_valid(graph, plan)
    assert plan.arena_bytes <= budget and plan.peak_resident_bytes <= budget
    return True


orders = st.sampled_from(list(ORDERS))
fractions = st.floats(0.0, 1.25)
swap_offsets = st.sampled_from([*GREEDY, "best"])


@FAST
@given(graphs(), orders)
def test_every_offset_plan_of_a_random_model_validates(graph, order):
    check_offsets(graph, order, GREEDY)


@FAST
@given(graphs(), orders, fractions, st.sampled_from(QUICK_SWAP), swap_offsets)
def test_every_swap_plan_of_a_random_model_validates(graph, order, fraction, swap, offsets):
    check_swap(graph, order, fraction, swap, offsets)


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(graphs(), orders, fractions)
def test_the_searching_planners_plans_of_a_random_model_validate(graph, order, fraction):
    check_offsets(graph, order, SEARCHING, time_limit=0.5)
    check_swap(graph, order, fraction, "optimal", "best", time_limit=0.5)


@pytest.mark.parametrize("compat", [False, True], ids=["native", "compat"])
@pytest.mark.parametrize("model", list(MODELS))
def test_every_offset_plan_of_the_zoo_validates_in_both_orders(model, compat):
    graph = build_training_graph(get_model(model, batch=1), compat=compat)
    for order in ORDERS:
        check_offsets(graph, order, GREEDY)


@pytest.mark.parametrize("model", ["mlp", "lenet5", "lstm", "transformer", "tacotron2"])
def test_compat_swap_plans_of_the_zoo_validate(model):
    """Native swap plans of the zoo are checked in test_training_plan.py; these are the
    NNTrainer-compatible ones, under both orders."""
    graph = build_training_graph(get_model(model, batch=1), compat=True)
    feasible = 0
    for order in ORDERS:
        for swap in QUICK_SWAP:
            for fraction in (0.0, 0.5, 1.0):
                feasible += check_swap(graph, order, fraction, swap, "best")
    assert feasible >= 4  # belady at least plans at half way and at the lower bound


# --- long versions (the benchmark experiments/bench_verify.py covers their claim) ---------

@pytest.mark.slow
@LONG
@given(graphs(), orders)
def test_every_offset_plan_of_a_random_model_validates_long(graph, order):
    check_offsets(graph, order, GREEDY)


@pytest.mark.slow
@LONG
@given(graphs(), orders, fractions, st.sampled_from(QUICK_SWAP), swap_offsets)
def test_every_swap_plan_of_a_random_model_validates_long(graph, order, fraction, swap,
                                                          offsets):
    check_swap(graph, order, fraction, swap, offsets)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(graphs(), orders, fractions)
def test_the_searching_planners_plans_of_a_random_model_validate_long(graph, order, fraction):
    check_offsets(graph, order, SEARCHING, time_limit=1.0)
    check_swap(graph, order, fraction, "optimal", "best", time_limit=1.0)
