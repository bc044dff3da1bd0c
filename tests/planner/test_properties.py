"""Properties of every registered planner on random problems (hypothesis).

Any random problem gives a valid plan, never below the lower bound; basic is the sum of the
sizes plus alignment padding; the exact planner, when registered, is never worse than any
greedy one.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.offsets import PLANNERS, run_planner
from trainplan.planner.offsets.nntrainer import plan_nntrainer_v2
from trainplan.planner.validate import validate_plan

GREEDY = [name for name, spec in PLANNERS.items() if not spec.searches]


@st.composite
def problems(draw, max_n: int = 60):
    """Up to ``max_n`` buffers over a short horizon (so many overlap), random alignments and
    kinds (weight gradients exercise NNTrainer V2's second phase)."""
    n = draw(st.integers(0, max_n))
    horizon = draw(st.integers(1, 40))
    bufs = []
    for i in range(n):
        start = draw(st.integers(0, horizon))
        bufs.append(
            Buffer(
                f"b{i}",
                start,
                start + draw(st.integers(1, 12)),
                draw(st.one_of(st.integers(1, 64), st.sampled_from([16, 32, 64, 128]))),
                draw(st.sampled_from([1, 1, 2, 4, 8, 16])),
                draw(st.sampled_from(["", "activation", "gradient", "wgrad"])),
            )
        )
    return AllocationProblem(tuple(bufs))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_every_greedy_planner_gives_a_valid_plan_at_or_above_the_bound(problem):
    bound = problem.lower_bound()
    for name in GREEDY:
        plan = run_planner(name, problem)
        assert validate_plan(problem, plan) == [], name
        assert plan.arena_bytes >= bound
        assert plan.lower_bound_bytes == bound
        assert plan.planner == name
        assert run_planner(name, problem).offsets == plan.offsets, f"{name} is not deterministic"


@settings(max_examples=100, deadline=None)
@given(problems())
def test_basic_is_the_sum_of_sizes_plus_alignment_padding(problem):
    arena = run_planner("basic", problem).arena_bytes
    sizes = problem.no_reuse_bytes()
    assert sizes <= arena <= sizes + sum(b.alignment - 1 for b in problem.buffers)
    if all(b.alignment == 1 for b in problem.buffers):
        assert arena == sizes


@settings(max_examples=300, deadline=None)
@given(problems())
def test_v2_with_nntrainers_clash_test_is_ours_whenever_it_is_valid(problem):
    """NNTrainer's incomplete clash test only differs from ours by merging clashing gradients,
    which breaks the plan; so a valid NNTrainer-style plan is exactly our plan."""
    faithful = plan_nntrainer_v2(problem, nntrainer_clash_test=True)
    if not validate_plan(problem, faithful):
        assert faithful.offsets == plan_nntrainer_v2(problem).offsets


@pytest.mark.skipif("exact" not in PLANNERS, reason="the exact planner is not registered")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_n=25))
def test_exact_is_never_worse_than_any_greedy_planner(problem):
    exact = run_planner("exact", problem, time_limit=2.0, seed=0, workers=2)
    assert validate_plan(problem, exact) == []
    assert exact.arena_bytes >= problem.lower_bound()
    for name in GREEDY:
        assert exact.arena_bytes <= run_planner(name, problem).arena_bytes, name
