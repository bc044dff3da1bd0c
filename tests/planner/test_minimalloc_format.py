"""MiniMalloc's format in full: gaps, gap windows, fixed offsets and hints, in CSV in and out,
honoured by the validator and by every registered planner."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainplan.planner.allocation import AllocationProblem, Buffer, Gap
from trainplan.planner.errors import Infeasible, InvalidProblem
from trainplan.planner.offsets import PLANNERS, run_planner
from trainplan.planner.plan import Plan
from trainplan.planner.validate import validate_plan

SEARCHING = [name for name, spec in PLANNERS.items() if spec.searches]


def _plan(problem: AllocationProblem, offsets: dict[str, int]) -> Plan:
    arena = max(offsets[b.id] + b.size for b in problem.buffers)
    return Plan("hand", offsets, arena, problem.lower_bound())


# --- gaps ------------------------------------------------------------------------------

GAPPED = AllocationProblem((Buffer("x", 0, 4, 4, gaps=(Gap(1, 3),)), Buffer("y", 1, 3, 4)))


def test_a_buffer_fits_into_another_ones_gap_by_hand():
    """x is idle over [1, 3), exactly y's lifetime: both fit in 4 bytes at offset 0."""
    assert GAPPED.lower_bound() == 4
    assert validate_plan(GAPPED, _plan(GAPPED, {"x": 0, "y": 0})) == []
    assert GAPPED.with_capacity(4).lower_bound() == 4  # no longer "needs 8"


def test_every_planner_keeps_a_gapped_problem_valid_and_the_searching_ones_use_the_gap():
    for name in PLANNERS:
        plan = run_planner(name, GAPPED.with_capacity(None), time_limit=5)
        assert validate_plan(GAPPED, plan) == [], name
    for name in SEARCHING + ["greedy_size", "greedy_breadth", "best_fit"]:
        plan = run_planner(name, GAPPED.with_capacity(4), time_limit=5)
        assert plan.arena_bytes == 4, name
    assert run_planner("exact", GAPPED, time_limit=5).status == "OPTIMAL"


def test_a_window_keeps_part_of_a_buffer_in_use_during_its_gap():
    """x keeps bytes [0, 2) of its 8 over [1, 3); y (4 bytes, alive [1, 3)) may sit on them."""
    p = AllocationProblem((Buffer("x", 0, 4, 8, gaps=(Gap(1, 3, (0, 2)),)), Buffer("y", 1, 3, 4)))
    assert p.lower_bound() == 8  # x's 8 bytes reserved; live bytes over [1, 3) are 2 + 4
    assert validate_plan(p, _plan(p, {"x": 0, "y": 2})) == []
    errors = validate_plan(p, _plan(p, {"x": 0, "y": 1}))
    assert errors == ["buffer 'x' (time [1,3), bytes [0,2)) overlaps buffer 'y' "
                      "(time [1,3), bytes [1,5))"]
    for name in PLANNERS:
        plan = run_planner(name, p, time_limit=5)
        assert validate_plan(p, plan) == [], name
    for name in SEARCHING:
        assert run_planner(name, p, time_limit=5).arena_bytes == 8, name


def test_gaps_outside_the_lifetime_or_overlapping_are_refused():
    with pytest.raises(InvalidProblem, match="gap \\[3,6\\) must lie inside"):
        AllocationProblem((Buffer("x", 0, 4, 4, gaps=(Gap(3, 6),)),))
    with pytest.raises(InvalidProblem, match="after the previous gap"):
        AllocationProblem((Buffer("x", 0, 9, 4, gaps=(Gap(1, 4), Gap(3, 5))),))
    with pytest.raises(InvalidProblem, match="window 2:9 must lie within 0:4"):
        AllocationProblem((Buffer("x", 0, 9, 4, gaps=(Gap(1, 4, (2, 9)),)),))


# --- fixed offsets ---------------------------------------------------------------------

FIXED = AllocationProblem((
    Buffer("a", 0, 4, 4), Buffer("b", 0, 4, 4, offset=4), Buffer("c", 2, 6, 8),
    Buffer("d", 5, 8, 4, offset=0),
))


def test_every_planner_keeps_fixed_offsets():
    """b is pinned at 4 and d at 0; a (alive with b) and c (alive with a, b and d) go around."""
    assert FIXED.lower_bound() == 16  # a, b and c are alive together over [2, 4)
    for name in PLANNERS:
        plan = run_planner(name, FIXED, time_limit=5)
        assert validate_plan(FIXED, plan) == [], name
        assert plan.offsets["b"] == 4 and plan.offsets["d"] == 0, name
    for name in SEARCHING:
        plan = run_planner(name, FIXED, time_limit=5)
        assert plan.arena_bytes == 16 and plan.optimal, name


def test_the_validator_refuses_a_moved_fixed_buffer():
    errors = validate_plan(FIXED, _plan(FIXED, {"a": 0, "b": 8, "c": 12, "d": 0}))
    assert "buffer 'b': offset 8 differs from its fixed offset 4" in errors


def test_fixed_offsets_that_cannot_hold_are_refused_at_the_door():
    with pytest.raises(InvalidProblem, match="fixed offset 3 must be >= 0 and a multiple"):
        AllocationProblem((Buffer("a", 0, 4, 4, alignment=2, offset=3),))
    with pytest.raises(InvalidProblem, match="buffers 'a' and 'b' have fixed offsets"):
        AllocationProblem((Buffer("a", 0, 4, 4, offset=0), Buffer("b", 2, 6, 4, offset=2)))
    AllocationProblem((Buffer("a", 0, 4, 4, offset=0, gaps=(Gap(2, 4),)),
                       Buffer("b", 2, 6, 4, offset=2)))  # b starts in a's gap: fine
    with pytest.raises(Infeasible, match="needs at least 16 bytes"):
        run_planner("greedy_size", FIXED.with_capacity(12))


# --- CSV -------------------------------------------------------------------------------

def test_the_csv_round_trips_gaps_windows_fixed_offsets_and_hints():
    p = AllocationProblem((
        Buffer("a", 0, 9, 8, 4, gaps=(Gap(1, 3), Gap(5, 7, (0, 4))), hint=16),
        Buffer("b", 2, 6, 4, offset=8),
        Buffer("c", 1, 3, 8, 2),
    ), name="p")
    text = p.to_csv()
    assert text.splitlines()[0] == "id,lower,upper,size,alignment,hint,gaps,offset"
    assert text.splitlines()[1] == "a,0,9,8,4,16,1-3 5-7@0:4,"
    assert AllocationProblem.from_csv(text).buffers == p.buffers


def test_minimalloc_csv_with_gaps_is_read_like_minimalloc_reads_it():
    """MiniMalloc's converter: half-open gaps with lower/upper, closed ones with an end column."""
    half_open = AllocationProblem.from_csv("id,lower,upper,size,gaps\nb,0,10,4,2-4 6-8@1:3\n")
    assert half_open.buffers[0].gaps == (Gap(2, 4), Gap(6, 8, (1, 3)))
    closed = AllocationProblem.from_csv("buffer,start,end,size,gaps\nb,0,9,4,2-3\n")
    assert (closed.buffers[0].end, closed.buffers[0].gaps) == (10, (Gap(2, 4),))
    with pytest.raises(InvalidProblem, match="line 2: gap '2:4' is not 'lower-upper'"):
        AllocationProblem.from_csv("id,lower,upper,size,gaps\nb,0,10,4,2:4\n")


def test_a_solution_csv_read_back_fixes_every_buffer():
    """MiniMalloc's meaning of an offset column: the buffer is fixed there."""
    plan = run_planner("greedy_size", GAPPED)
    solved = AllocationProblem.from_csv(GAPPED.to_csv(plan.offsets))
    assert {b.id: b.offset for b in solved.buffers} == plan.offsets
    assert [b.gaps for b in solved.buffers] == [b.gaps for b in GAPPED.buffers]
    assert run_planner("exact", solved, time_limit=5).offsets == plan.offsets


def test_the_readme_example_of_minimalloc_fits_its_capacity():
    text = "id,lower,upper,size\nb1,0,3,4\nb2,3,9,4\nb3,0,9,4\nb4,9,21,4\nb5,0,21,4\n"
    p = AllocationProblem.from_csv(text, capacity=12)
    plan = run_planner("exact", p, time_limit=5)
    assert validate_plan(p, plan) == [] and plan.arena_bytes == 12


# --- every planner on random problems with gaps and fixed offsets ------------------------

@st.composite
def gapped_problems(draw):
    """Random buffers, some with gaps (some windowed); then a valid plan of them (best fit)
    fixes a random subset, so the fixed offsets are always consistent."""
    n = draw(st.integers(1, 14))
    bufs = []
    for i in range(n):
        start = draw(st.integers(0, 10))
        end = start + draw(st.integers(1, 9))
        size = draw(st.sampled_from([1, 2, 3, 4, 8, 12, 16]))
        gaps, t = [], start
        while draw(st.booleans()) and t + 2 < end:
            g0 = draw(st.integers(t + 1, end - 1))
            g1 = draw(st.integers(g0 + 1, end))
            lo = draw(st.integers(0, size))
            window = draw(st.sampled_from([None, (lo, draw(st.integers(lo, size)))]))
            gaps.append(Gap(g0, g1, window))
            t = g1
        bufs.append(Buffer(f"b{i}", start, end, size, draw(st.sampled_from([1, 1, 2, 4])),
                           gaps=tuple(gaps)))
    free = AllocationProblem(tuple(bufs))
    placed = run_planner("best_fit", free).offsets
    pinned = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    fixed = tuple(Buffer(b.id, b.start, b.end, b.size, b.alignment, gaps=b.gaps,
                         offset=placed[b.id] if pin else None) for b, pin in zip(bufs, pinned))
    return AllocationProblem(fixed)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gapped_problems())
def test_every_planner_is_valid_with_gaps_and_fixed_offsets(problem):
    bound = problem.lower_bound()
    for name in PLANNERS:
        plan = run_planner(name, problem, time_limit=2)
        assert validate_plan(problem, plan) == [], name
        assert plan.arena_bytes >= bound
        for b in problem.buffers:
            if b.offset is not None:
                assert plan.offsets[b.id] == b.offset, name
    assert AllocationProblem.from_csv(problem.to_csv()).buffers == problem.buffers
