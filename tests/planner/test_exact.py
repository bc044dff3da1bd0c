"""The exact planners: optimum against brute force, never worse than greedy, proofs, limits."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.offsets import PLANNERS, run_planner
from trainplan.planner.offsets.exact import plan_exact
from trainplan.planner.offsets.exact_common import scale
from trainplan.planner.offsets.exact_cpsat import plan_cpsat
from trainplan.planner.offsets.exact_layout import build_layout, section_bound
from trainplan.planner.offsets.exact_search import EXHAUSTED, FOUND, decide
from trainplan.planner.perfect_packing import perfect_packing
from trainplan.planner.validate import validate_plan

GREEDY = [name for name, spec in PLANNERS.items() if not spec.searches]


def brute_force_optimum(problem: AllocationProblem) -> int:
    """Min height over every order of dropping buffers onto the ones already dropped.

    Every plan can be pushed down until each buffer rests on another (or on 0); listing such a
    plan by offset and dropping the buffers in that order rebuilds it, so this is the optimum.
    """
    bufs = problem.buffers
    best = None
    for order in itertools.permutations(range(len(bufs))):
        offs: dict[int, int] = {}
        for i in order:
            b = bufs[i]
            top = max((offs[j] + bufs[j].size for j in offs
                       if bufs[j].start < b.end and b.start < bufs[j].end), default=0)
            offs[i] = -(-top // b.alignment) * b.alignment
        height = max(offs[i] + bufs[i].size for i in offs)
        best = height if best is None else min(best, height)
    return best or 0


@st.composite
def small_problems(draw, max_n: int = 6):
    """A few buffers over a short horizon: many overlaps, odd sizes, some alignment."""
    n = draw(st.integers(1, max_n))
    bufs = []
    for i in range(n):
        start = draw(st.integers(0, 6))
        bufs.append(Buffer(f"t{i}", start, start + draw(st.integers(1, 5)),
                           draw(st.integers(1, 13)), draw(st.sampled_from([1, 1, 2, 4]))))
    return AllocationProblem(tuple(bufs))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_problems())
def test_exact_and_cpsat_find_the_brute_force_optimum_and_prove_it(problem):
    optimum = brute_force_optimum(problem)
    for planner in (plan_exact, plan_cpsat):
        plan = planner(problem, time_limit=10)
        assert validate_plan(problem, plan) == []
        assert plan.arena_bytes == optimum, plan.planner
        assert plan.optimal and plan.status == "OPTIMAL" and plan.best_bound == optimum


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_problems(max_n=7))
def test_search_decides_each_height_like_brute_force(problem):
    optimum = brute_force_optimum(problem)
    s = scale(problem)
    lay = build_layout(s.start, s.end)
    result, offsets = decide(lay, s.size, s.align, optimum // s.unit, deadline=time.time() + 1e9)
    assert result == FOUND and s.height(offsets) * s.unit <= optimum
    below = -(-optimum // s.unit) - 1
    assert decide(lay, s.size, s.align, below, deadline=time.time() + 1e9)[0] == EXHAUSTED


def test_an_optimum_above_every_static_bound_is_proven_by_search():
    p = AllocationProblem((
        Buffer("t0", 4, 5, 8, 2), Buffer("t1", 0, 1, 3, 4), Buffer("t2", 4, 8, 6, 2),
        Buffer("t3", 0, 3, 8, 1), Buffer("t4", 5, 9, 9, 4),
    ))
    assert brute_force_optimum(p) == 16 and p.lower_bound() == 15
    plan = plan_exact(p, time_limit=10)
    assert plan.arena_bytes == 16 and plan.optimal and plan.best_bound == 16


def test_section_bound_never_exceeds_the_optimum():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(1, 7))
        bufs = tuple(Buffer(f"t{i}", int(s), int(s + rng.integers(1, 4)), int(rng.integers(1, 20)),
                            int(rng.choice([2, 4, 8]))) for i, s in enumerate(rng.integers(0, 4, n)))
        p = AllocationProblem(bufs)
        s = scale(p)
        assert section_bound(build_layout(s.start, s.end), s.size, s.align) * s.unit <= (
            brute_force_optimum(p))


def test_alignment_padding_is_proven_optimal_at_once():
    """Weights live all the time: the padding-aware bound proves the aligned stack optimal."""
    bufs = tuple(Buffer(f"w{i}", 0, 10, size, 64) for i, size in enumerate([100, 36, 250, 64, 3]))
    plan = plan_exact(AllocationProblem(bufs), time_limit=10)
    assert plan.optimal and plan.arena_bytes == 128 + 64 + 256 + 64 + 3


@pytest.mark.parametrize("seed", range(4))
def test_exact_is_never_worse_than_greedy_and_honours_alignment(seed):
    rng = np.random.default_rng(seed)
    bufs = tuple(Buffer(f"t{i}", int(s), int(s + rng.integers(1, 8)), int(rng.integers(1, 40)) * 8,
                        int(rng.choice([1, 8, 32]))) for i, s in enumerate(rng.integers(0, 20, 40)))
    p = AllocationProblem(bufs)
    plan = run_planner("exact", p, time_limit=3, seed=0, workers=2)
    assert validate_plan(p, plan) == []
    assert plan.planner == "exact" and plan.options["time_limit"] == 3
    assert all(plan.offsets[b.id] % b.alignment == 0 for b in bufs)
    for name in GREEDY:
        assert plan.arena_bytes <= run_planner(name, p).arena_bytes, name
    assert plan.best_bound <= plan.arena_bytes
    if plan.optimal:
        assert plan.best_bound == plan.arena_bytes and plan.gap == 0


def test_a_chain_whose_greedy_plan_meets_the_bound_returns_at_once():
    bufs = tuple(Buffer(f"t{i}", i, i + 2, 100 + i) for i in range(200))
    plan = plan_exact(AllocationProblem(bufs), time_limit=30)
    assert plan.optimal and plan.status == "OPTIMAL" and plan.ratio == 1.0
    assert plan.solve_seconds < 5


@pytest.mark.parametrize("n,seed", [(30, 0), (40, 1), (50, 2), (60, 0)])
def test_perfect_packings_are_solved_to_the_capacity(n, seed):
    p = perfect_packing(n, capacity=1 << 16, seed=seed)
    for problem in (p, p.with_capacity(None)):  # the decision problem, then minimisation
        plan = run_planner("exact", problem, time_limit=30)
        assert validate_plan(problem, plan) == []
        assert plan.arena_bytes == p.capacity
        assert plan.optimal and plan.status == "OPTIMAL"


def test_a_capacity_it_cannot_settle_returns_the_best_plan_unproven_after_the_limit():
    p = perfect_packing(300, capacity=1 << 16, seed=1, granule=1 << 10, live=10)  # hard one
    started = time.perf_counter()
    plan = run_planner("exact", p, time_limit=1.0)
    elapsed = time.perf_counter() - started
    assert plan.optimal is False and plan.status == "UNKNOWN"
    assert plan.arena_bytes > p.capacity  # the best plan found, marked as not fitting
    assert validate_plan(p.with_capacity(None), plan) == []
    assert 0.9 < elapsed < 10


def test_minimisation_stopped_by_the_limit_reports_bound_and_gap():
    p = perfect_packing(300, capacity=1 << 16, seed=1, granule=1 << 10, live=10)
    plan = plan_cpsat(p.with_capacity(None), time_limit=1.0)
    assert plan.optimal is False and plan.status == "FEASIBLE"
    assert plan.best_bound == p.lower_bound() and plan.gap > 0


def test_cpsat_is_registered_and_solves_a_small_decision_problem():
    p = AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 4), Buffer("c", 2, 4, 4)), 8)
    plan = run_planner("cpsat", p, time_limit=5)
    assert validate_plan(p, plan) == [] and plan.planner == "cpsat"
    assert plan.arena_bytes == 8 and plan.optimal
