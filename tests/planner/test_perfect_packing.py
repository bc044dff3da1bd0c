"""The perfect-packing generator: every instance is full at every step and carries its plan."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainplan.planner.errors import InvalidProblem
from trainplan.planner.offsets import run_planner
from trainplan.planner.perfect_packing import perfect_packing
from trainplan.planner.plan import Plan
from trainplan.planner.validate import validate_plan


def _generating_plan(problem) -> Plan:
    offsets = problem.meta["offsets"]
    arena = max((offsets[b.id] + b.size for b in problem.buffers), default=0)
    return Plan("generator", offsets, arena, problem.lower_bound())


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 120),
    units=st.sampled_from([8, 32, 128]),
    granule=st.sampled_from([1, 64, 1024]),
    seed=st.integers(0, 10_000),
    live=st.one_of(st.none(), st.integers(1, 40)),
)
def test_every_instance_is_full_and_its_offsets_are_a_plan_of_height_capacity(
    n, units, granule, seed, live
):
    capacity = units * granule
    p = perfect_packing(n, capacity, seed, granule=granule, live=live)
    assert len(p.buffers) == n
    assert p.capacity == capacity
    assert p.lower_bound() == capacity
    _, live_bytes = p.live_curve()
    assert set(live_bytes[:-1].tolist()) == {capacity}  # full at every step, not just the peak
    plan = _generating_plan(p)
    assert plan.arena_bytes == capacity
    assert validate_plan(p, plan) == []
    assert all(b.size % granule == 0 for b in p.buffers)


def test_same_seed_same_problem_other_seed_other_problem():
    a, b = perfect_packing(150, seed=3), perfect_packing(150, seed=3)
    assert a.buffers == b.buffers and a.meta["offsets"] == b.meta["offsets"]
    assert perfect_packing(150, seed=4).buffers != a.buffers


def test_buffers_interleave_rather_than_nest():
    """Merged free blocks are re-cut, so some buffer straddles the bytes of two older ones."""
    p = perfect_packing(200, seed=0)
    offsets = p.meta["offsets"]
    straddles = 0
    for b in p.buffers:
        lo, hi = offsets[b.id], offsets[b.id] + b.size
        ended = [a for a in p.buffers if a.end == b.start]
        inside = [a for a in ended if lo <= offsets[a.id] and offsets[a.id] + a.size <= hi]
        straddles += len(inside) >= 2
    assert straddles > 10


@pytest.mark.parametrize("seed", range(5))
def test_greedy_size_lands_above_the_optimum(seed):
    p = perfect_packing(150 + 60 * seed, seed=seed)
    ratio = run_planner("greedy_size", p.with_capacity(None)).ratio
    assert 1.0 < ratio < 1.5


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 5, "capacity": 100, "granule": 7}])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(InvalidProblem):
        perfect_packing(**kwargs)
