"""TFLite-style greedy planners and best fit: the placement rule, the orders, and their speed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainplan.experiments.bench_greedy import main as bench_main
from trainplan.experiments.bench_greedy import random_problem
from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.offsets import PLANNERS, run_planner
from trainplan.planner.offsets._common import align_up
from trainplan.planner.offsets._place import place_best_fit
from trainplan.planner.offsets.best_fit import plan_best_fit
from trainplan.planner.offsets.greedy import _range_min, plan_greedy_breadth, plan_greedy_size
from trainplan.planner.validate import check_plan


def _problem(*rows) -> AllocationProblem:
    return AllocationProblem(tuple(Buffer(*row) for row in rows))


@st.composite
def problems(draw, max_n: int = 30):
    n = draw(st.integers(0, max_n))
    bufs = []
    for i in range(n):
        start = draw(st.integers(0, 12))
        bufs.append(
            Buffer(
                f"b{i}",
                start,
                start + draw(st.integers(1, 6)),
                draw(st.integers(1, 16)),
                draw(st.sampled_from([1, 2, 4, 8])),
            )
        )
    return AllocationProblem(tuple(bufs))


def _tflite_place(bufs, order) -> list[int]:
    """TFLite's loop, literally: placed buffers by offset, skip those not alive together,
    remember the smallest hole that fits, else the end of the highest one."""
    offsets, placed = [0] * len(bufs), []
    for i in order:
        b, best, best_gap, prev = bufs[i], None, None, 0
        for off, j in sorted(placed):
            if bufs[j].end <= b.start or bufs[j].start >= b.end:
                continue
            aligned = align_up(prev, b.alignment)
            if aligned + b.size <= off and (best_gap is None or off - prev < best_gap):
                best, best_gap = aligned, off - prev
            prev = max(prev, off + bufs[j].size)
        offsets[i] = best if best is not None else align_up(prev, b.alignment)
        placed.append((offsets[i], i))
    return offsets


@settings(max_examples=150, deadline=None)
@given(problems(), st.randoms(use_true_random=False))
def test_vectorised_placement_matches_tflites_loop(problem, rnd):
    order = list(range(len(problem.buffers)))
    rnd.shuffle(order)
    assert place_best_fit(problem.buffers, order) == _tflite_place(problem.buffers, order)


def test_best_fit_takes_the_smallest_hole_not_the_first():
    # at time >= 1 only p1@0, p2@9, p3@14 are alive: holes [4,9) (5 bytes) and [12,14) (2)
    bufs = [
        Buffer("p1", 0, 10, 4),
        Buffer("s1", 0, 1, 5),
        Buffer("p2", 0, 10, 3),
        Buffer("s2", 0, 1, 2),
        Buffer("p3", 0, 10, 6),
        Buffer("q", 1, 10, 2),
    ]
    assert place_best_fit(bufs, range(6)) == [0, 4, 9, 12, 14, 12]


def test_placement_aligns_inside_a_hole():
    bufs = [
        Buffer("lo", 0, 4, 2),
        Buffer("gap", 0, 1, 6),
        Buffer("hi", 0, 4, 2),
        Buffer("x", 1, 4, 4, 4),
    ]
    assert place_best_fit(bufs, range(4)) == [0, 2, 8, 4]


def test_greedy_size_breaks_size_ties_by_earlier_start():
    p = _problem(("u", 1, 4, 4), ("v", 0, 2, 4))
    assert plan_greedy_size(p).offsets == {"u": 4, "v": 0}


def test_greedy_size_places_largest_first():
    p = _problem(("small", 0, 2, 2), ("big", 1, 3, 8))
    assert plan_greedy_size(p).offsets == {"small": 8, "big": 0}


def _breadth_order_by_walking_steps(problem: AllocationProblem) -> list[int]:
    """Greedy by breadth as TFLite describes it: visit steps widest first, place each step's
    unplaced buffers largest first."""
    bufs = problem.buffers
    times = sorted({b.start for b in bufs} | {b.end for b in bufs})
    steps = []
    for j, (lo, hi) in enumerate(zip(times, times[1:])):
        live = [i for i, b in enumerate(bufs) if b.start <= lo and b.end >= hi]
        steps.append((-sum(bufs[i].size for i in live), j, live))
    order, seen = [], set()
    for _, _, live in sorted(steps, key=lambda s: s[:2]):
        for i in sorted(live, key=lambda i: (-bufs[i].size, bufs[i].start, i)):
            if i not in seen:
                seen.add(i)
                order.append(i)
    return order


@settings(max_examples=150, deadline=None)
@given(problems())
def test_greedy_breadth_equals_walking_the_steps(problem):
    expected = place_best_fit(problem.buffers, _breadth_order_by_walking_steps(problem))
    plan = plan_greedy_breadth(problem)
    assert [plan.offsets[b.id] for b in problem.buffers] == expected


def test_greedy_breadth_starts_at_the_widest_step():
    # breadths: [0,4) 5 bytes, [4,6) 10, [6,8) 7. Step [4,6) first: w1@0, w2@6; then [6,8):
    # late fits under w2 at 0; then [0,4): early, alive with nothing placed, at 0
    p = _problem(("early", 0, 4, 5), ("w1", 4, 6, 6), ("w2", 4, 8, 4), ("late", 6, 8, 3))
    plan = plan_greedy_breadth(p)
    assert plan.offsets == {"early": 0, "w1": 0, "w2": 6, "late": 0}
    assert plan.arena_bytes == 10 == p.lower_bound()


@given(st.lists(st.integers(-50, 50), min_size=1, max_size=40), st.data())
def test_range_min_matches_python_min(values, data):
    lo = data.draw(st.integers(0, len(values) - 1))
    hi = data.draw(st.integers(lo + 1, len(values)))
    got = _range_min(np.array(values), np.array([lo]), np.array([hi]))
    assert got[0] == min(values[lo:hi])


def test_best_fit_orders_by_start_then_larger_first():
    p = _problem(("small", 0, 3, 2), ("big", 0, 3, 8), ("late", 1, 3, 1))
    assert plan_best_fit(p).offsets == {"small": 8, "big": 0, "late": 10}


@pytest.mark.parametrize("name", ["greedy_size", "greedy_breadth", "best_fit"])
def test_empty_and_single_buffer_problems(name):
    assert run_planner(name, AllocationProblem(())).arena_bytes == 0
    one = _problem(("a", 3, 5, 7, 4))
    assert run_planner(name, one).offsets == {"a": 0}


def test_bench_runs_at_two_thousand_buffers(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench_main(["--n", "2000", "--out", str(out)])
    records = json.loads(out.read_text())
    greedy = [name for name, spec in PLANNERS.items() if not spec.searches]
    assert [r["planner"] for r in records] == greedy
    for r in records:
        assert r["valid"] and r["violations"] == 0, r
        assert r["arena"] >= r["lower_bound"] > 0
        assert r["seconds"] < 1.0
    assert "greedy_size" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, s in PLANNERS.items() if not s.searches])
def test_every_greedy_planner_plans_ten_thousand_buffers_in_under_a_second(name):
    problem = random_problem(10_000, seed=1)
    plan = run_planner(name, problem)
    check_plan(problem, plan)
    assert plan.solve_seconds < 1.0
