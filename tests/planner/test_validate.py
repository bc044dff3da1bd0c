"""The validator: each rule caught and named, all overlapping pairs found, 10,000 buffers fast."""

from __future__ import annotations

import dataclasses
import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.errors import PlanError
from trainplan.planner.plan import Plan
from trainplan.planner.validate import check_plan, validate_plan

P = AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 4, 4), Buffer("c", 2, 4, 4)))


def _plan(offsets, arena=8, bound=8) -> Plan:
    return Plan("hand", offsets, arena, bound)


def test_valid_plan_has_no_violations():
    plan = _plan({"a": 0, "b": 4, "c": 0})
    assert validate_plan(P, plan) == []
    check_plan(P, plan)


def test_empty_problem():
    empty = AllocationProblem(())
    assert validate_plan(empty, _plan({}, 0, 0)) == []
    assert validate_plan(empty, _plan({}, 5, 0)) == [
        "arena_bytes is 5 but the highest byte in use is 0"
    ]


@pytest.mark.parametrize(
    "offsets, arena, expected",
    [
        ({"a": 0, "b": 4}, 8, "buffer 'c' has no offset"),
        ({"a": 0, "b": 4, "c": 0, "zz": 0}, 8, "offset given for 'zz'"),
        ({"a": -4, "b": 4, "c": 0}, 8, "buffer 'a': offset -4 is negative"),
        ({"a": 0.0, "b": 4, "c": 0}, 8, "buffer 'a': offset 0.0 is not an integer"),
        ({"a": 0, "b": 6, "c": 0}, 10, "buffer 'b': offset 6 is not a multiple of its alignment 4"),
        ({"a": 0, "b": 4, "c": 8}, 8, "buffer 'c': bytes [8,12) end past the arena (8 bytes)"),
        ({"a": 0, "b": 4, "c": 0}, 9, "arena_bytes is 9 but the highest byte in use is 8"),
        ({"a": 0, "b": 0, "c": 4}, 8, "buffer 'a' (time [0,2), bytes [0,4)) overlaps buffer 'b'"),
    ],
)
def test_each_rule_is_reported_by_name(offsets, arena, expected):
    violations = validate_plan(P, _plan(offsets, arena))
    assert any(v.startswith(expected) for v in violations), violations


def test_capacity_and_lower_bound_rules():
    over = validate_plan(P.with_capacity(6), _plan({"a": 0, "b": 4, "c": 0}))
    assert "arena 8 exceeds the capacity 6" in over
    wrong_bound = validate_plan(P, _plan({"a": 0, "b": 4, "c": 0}, bound=7))
    assert wrong_bound == ["plan.lower_bound_bytes is 7 but the problem's lower bound is 8"]
    below = validate_plan(P, _plan({"a": 0, "b": 0, "c": 0}, arena=4))
    assert "arena 4 is below the lower bound 8 (max bytes live at once)" in below


def test_touching_lifetimes_may_share_bytes():
    p = AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 2, 4, 4)))
    assert validate_plan(p, Plan("hand", {"a": 0, "b": 0}, 4, 4)) == []


def test_check_plan_raises_with_every_violation():
    plan = _plan({"a": 0, "b": 2, "c": 0})
    with pytest.raises(PlanError) as info:
        check_plan(P, plan)
    assert info.value.violations == validate_plan(P, plan)
    assert len(info.value.violations) == 4  # misaligned b, arena != peak 6, b/a and b/c
    assert "'hand'" in str(info.value)


def _brute_force_pairs(problem: AllocationProblem, offsets: dict[str, int]) -> set:
    pairs = set()
    for x, y in itertools.combinations(problem.buffers, 2):
        ox, oy = offsets[x.id], offsets[y.id]
        if x.start < y.end and y.start < x.end and ox < oy + y.size and oy < ox + x.size:
            pairs.add(frozenset((x.id, y.id)))
    return pairs


@st.composite
def placed_problems(draw):
    n = draw(st.integers(0, 25))
    bufs = []
    for i in range(n):
        start = draw(st.integers(0, 10))
        end = start + draw(st.integers(1, 5))
        bufs.append(Buffer(f"b{i}", start, end, draw(st.integers(1, 8))))
    offsets = {b.id: draw(st.integers(0, 24)) for b in bufs}
    return AllocationProblem(tuple(bufs)), offsets


@settings(max_examples=200, deadline=None)
@given(placed_problems())
def test_overlaps_found_match_brute_force(case):
    problem, offsets = case
    arena = max((offsets[b.id] + b.size for b in problem.buffers), default=0)
    violations = validate_plan(
        problem, Plan("random", offsets, arena, problem.lower_bound()), max_overlaps=10_000
    )
    found = set()
    for v in violations:
        if " overlaps " in v:
            ids = [part.split("'")[1] for part in v.split(" overlaps ")]
            found.add(frozenset(ids))
    assert found == _brute_force_pairs(problem, offsets)
    assert sum(" overlaps " in v for v in violations) == len(found)  # each pair once


def test_overlap_list_is_cut_at_the_limit():
    p = AllocationProblem(tuple(Buffer(f"b{i}", 0, 1, 1) for i in range(30)))
    violations = validate_plan(
        p, Plan("zero", {f"b{i}": 0 for i in range(30)}, 1, 30), max_overlaps=5
    )
    assert sum(" overlaps " in v for v in violations) == 5
    assert violations[-1].startswith("... stopped after 5 overlapping pairs")


def _stacked_problem(n: int) -> tuple[AllocationProblem, Plan]:
    """n buffers, ~n/100 live at a time, each in its own 64-byte row of a 100-row arena."""
    bufs = tuple(Buffer(f"t{i}", i, i + 100, 64) for i in range(n))
    offsets = {f"t{i}": 64 * (i % 100) for i in range(n)}
    return AllocationProblem(bufs), Plan("rows", offsets, 6400, 6400)


def test_validates_ten_thousand_buffers_fast():
    problem, plan = _stacked_problem(10_000)
    began = time.perf_counter()
    assert validate_plan(problem, plan) == []
    assert time.perf_counter() - began < 1.0
    broken = dataclasses.replace(plan, offsets={**plan.offsets, "t5000": 64})
    began = time.perf_counter()
    violations = validate_plan(problem, broken)
    assert time.perf_counter() - began < 1.0
    assert len(violations) == 2  # t5000 moved onto row 1, live with t4901 and t5001
