"""Every time limit kept (within 1.5x, whatever the input), and the deterministic mode."""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainplan.experiments.cli import main
from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.offsets import PLANNERS, run_planner
from trainplan.planner.perfect_packing import perfect_packing
from trainplan.planner.validate import validate_plan

SEARCHING = [name for name, spec in PLANNERS.items() if spec.searches]
THREE_LINES = "id,lower,upper,size,alignment\na,0,1,1,1\nb,0,1,1,1048576\nc,0,1,1,1048576\n"


def test_the_three_line_csv_returns_within_the_limit(tmp_path, capsys):
    """It used to refute heights 3, 4, ... one by one for minutes: each refutation took fewer
    search nodes than the deadline check's period. Two buffers aligned to 2^20 alive together
    need 2^20 + 1 bytes: the alignment bound proves the greedy plan optimal at once."""
    path = tmp_path / "h.csv"
    path.write_text(THREE_LINES)
    began = time.perf_counter()
    code = main(["alloc", str(path), "--planner", "exact", "--time-limit", "1", "--json"])
    elapsed = time.perf_counter() - began
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and elapsed < 1.5
    assert out["arena_bytes"] == 2**20 + 1 and out["optimal"] and out["valid"]


@st.composite
def aligned_problems(draw):
    """Sizes and alignments up to 2^20 (powers of two and odd multiples of them, whose grids
    do not nest): optimum far above the max-live bound, on a unit of one byte."""
    n = draw(st.integers(1, 30))
    bufs = []
    for i in range(n):
        start = draw(st.integers(0, 8))
        size = draw(st.one_of(st.integers(1, 2**20), st.sampled_from([1, 3, 2**12, 2**20])))
        align = draw(st.sampled_from([1, 3, 5])) * 2 ** draw(st.integers(0, 18))
        bufs.append(Buffer(f"t{i}", start, start + draw(st.integers(1, 6)), size, align))
    problem = AllocationProblem(tuple(bufs))
    capacity = draw(st.sampled_from([None, problem.lower_bound(), 2 * problem.lower_bound()]))
    return problem.with_capacity(capacity)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(aligned_problems(), st.sampled_from(SEARCHING), st.sampled_from([0.5, 1.0]))
def test_every_searching_planner_keeps_its_limit_with_large_alignments(problem, name, limit):
    began = time.perf_counter()
    plan = run_planner(name, problem, time_limit=limit)
    elapsed = time.perf_counter() - began
    assert elapsed <= 1.5 * limit, (name, elapsed)
    assert validate_plan(problem.with_capacity(None), plan) == []


def test_a_hard_decision_stops_at_its_limit():
    """A dense perfect packing that none of the portfolio's strategies settles in a second."""
    p = perfect_packing(400, capacity=1 << 16, seed=3, granule=1 << 9, live=10)
    for name in SEARCHING:
        began = time.perf_counter()
        plan = run_planner(name, p, time_limit=1.0)
        assert time.perf_counter() - began < 1.5, name
        assert validate_plan(p.with_capacity(None), plan) == []


def test_the_deterministic_mode_gives_the_same_plan_twice_on_one_or_two_workers():
    """A generous limit: the work budget settles it long before the clock (a guard) could cut
    it, however busy the machine."""
    p = perfect_packing(100, capacity=1 << 16, seed=3, granule=1 << 10, live=12)
    for workers in (1, 2):
        plans = [run_planner("exact", p, time_limit=30, workers=workers, deterministic=True)
                 for _ in range(2)]
        assert plans[0].offsets == plans[1].offsets and plans[0].status == plans[1].status
        assert plans[0].options["deterministic"] is True
        assert plans[0].options["cut_by_clock"] is False
        assert validate_plan(p.with_capacity(None), plans[0]) == []
    cpsat = [run_planner("cpsat", p.with_capacity(None), time_limit=1, deterministic=True)
             for _ in range(2)]
    assert cpsat[0].offsets == cpsat[1].offsets
