"""NNTrainer's planners: parity with NNTrainer's own MNIST run, and hand-worked small cases."""

from __future__ import annotations

import os

from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.offsets import run_planner
from trainplan.planner.offsets.basic import plan_basic
from trainplan.planner.offsets.nntrainer import (
    plan_nntrainer_v1,
    plan_nntrainer_v2,
    plan_nntrainer_v3,
)
from trainplan.planner.validate import check_plan, validate_plan

DATA = os.path.join(os.path.dirname(__file__), "data")


def _problem(*rows) -> AllocationProblem:
    return AllocationProblem(tuple(Buffer(*row) for row in rows))


# --- parity with NNTrainer 0.6.0 on its MNIST application ---------------------------------


def test_v1_reproduces_nntrainer_mnist_offsets(mnist_optimized):
    problem, nntrainer_offsets = mnist_optimized
    assert len(problem.buffers) == 19
    plan = run_planner("nntrainer_v1", problem)
    check_plan(problem, plan)
    assert problem.lower_bound() == 1_105_920
    assert plan.lower_bound_bytes == 1_105_920
    assert plan.arena_bytes == 1_106_544
    assert plan.offsets == nntrainer_offsets


def test_v1_parity_depends_on_std_sort_ties(mnist_optimized):
    """Equal (start, end) keys: libstdc++'s introsort puts conv1's bias before its filter but
    conv2's filter before its bias; a stable sort would get two layers' offsets wrong."""
    problem, _ = mnist_optimized
    off = plan_nntrainer_v1(problem).offsets
    assert off["conv2d_c1_layer:bias:grad"] < off["conv2d_c1_layer:filter:grad"]
    assert off["outputlayer:bias:grad"] < off["outputlayer:weight:grad"]
    assert off["conv2d_c2_layer:filter:grad"] < off["conv2d_c2_layer:bias:grad"]


def test_basic_reproduces_nntrainer_mnist_offsets(mnist_basic):
    problem, nntrainer_offsets = mnist_basic
    assert len(problem.buffers) == 27
    plan = run_planner("basic", problem)
    check_plan(problem, plan)
    assert plan.arena_bytes == 2_837_480 == problem.no_reuse_bytes()
    assert plan.offsets == nntrainer_offsets
    assert problem.lower_bound() == 1_427_456


def test_parity_tables_read_as_minimalloc_csv(mnist_optimized):
    """The data files are MiniMalloc solution CSVs; the extra kind/token columns are ignored."""
    problem, _ = mnist_optimized
    read = AllocationProblem.from_csv(os.path.join(DATA, "nntrainer_mnist_v1.csv"))
    assert [(b.id, b.start, b.end, b.size) for b in read.buffers] == [
        (b.id, b.start, b.end, b.size) for b in problem.buffers
    ]


def test_v2_on_mnist_packs_weight_gradients_into_two_slots(mnist_optimized):
    """Worked by hand: V1 on the 14 other requests peaks at P; gradients largest first:
    7680, 7200 and 600 share slot 0 at P (disjoint steps); the biases 48, 40, 24 clash with
    slot 0 (identical intervals) and share slot 1 at P + 7680."""
    problem, _ = mnist_optimized
    plan = plan_nntrainer_v2(problem)
    check_plan(problem, plan)
    others = AllocationProblem(tuple(b for b in problem.buffers if b.kind != "gradient"))
    v1_others = plan_nntrainer_v1(others)
    peak = v1_others.arena_bytes
    assert {k: plan.offsets[k] for k in v1_others.offsets} == v1_others.offsets
    slot0 = [
        "outputlayer:weight:grad",
        "conv2d_c2_layer:filter:grad",
        "conv2d_c1_layer:filter:grad",
    ]
    slot1 = ["conv2d_c2_layer:bias:grad", "outputlayer:bias:grad", "conv2d_c1_layer:bias:grad"]
    assert [plan.offsets[k] for k in slot0] == [peak] * 3
    assert [plan.offsets[k] for k in slot1] == [peak + 7680] * 3
    assert plan.arena_bytes == peak + 7680 + 48


def test_v3_on_mnist_is_valid_and_reaches_the_bound(mnist_optimized):
    problem, _ = mnist_optimized
    plan = plan_nntrainer_v3(problem)
    check_plan(problem, plan)
    assert plan.arena_bytes == problem.lower_bound()  # observed; first fit is optimal here


# --- V1 by hand ---------------------------------------------------------------------------


def test_v1_pops_expired_entries_from_the_top_only():
    # x expires at 2 but sits under live y, so it is not popped; z (another size) goes on top
    p = _problem(("x", 0, 2, 8), ("y", 1, 4, 4), ("z", 2, 5, 6))
    assert plan_nntrainer_v1(p).offsets == {"x": 0, "y": 8, "z": 12}


def test_v1_reuses_the_highest_expired_entry_of_exactly_equal_size():
    # stack after time 0: a@0, b@4 (both expired at 1), c@8 live; d (size 4) takes b's offset
    p = _problem(("a", 0, 1, 4), ("b", 0, 1, 4), ("c", 0, 5, 2), ("d", 1, 3, 4))
    plan = plan_nntrainer_v1(p)
    assert plan.offsets == {"a": 0, "b": 4, "c": 8, "d": 4}
    assert plan.arena_bytes == 10


def test_v1_does_not_reuse_a_larger_expired_entry():
    p = _problem(("a", 0, 1, 8), ("c", 0, 5, 2), ("d", 1, 3, 4))
    assert plan_nntrainer_v1(p).offsets == {"a": 0, "c": 8, "d": 10}


def test_v1_reuses_only_offsets_aligned_for_the_request():
    p = _problem(("a", 0, 1, 4), ("b", 0, 1, 4), ("c", 0, 5, 2), ("d", 1, 3, 4, 8))
    assert plan_nntrainer_v1(p).offsets["d"] == 0  # b@4 is not a multiple of 8; a@0 is


def test_v1_rounds_the_top_up_to_the_alignment():
    p = _problem(("x", 0, 2, 3), ("y", 0, 2, 4, 4))
    assert plan_nntrainer_v1(p).offsets == {"x": 0, "y": 4}


def test_v1_keeps_problem_order_on_ties():
    # same (start, end): with <= 16 requests std::sort is an insertion sort, hence stable
    p = _problem(("big", 0, 2, 8), ("small", 0, 2, 4))
    q = _problem(("small", 0, 2, 4), ("big", 0, 2, 8))
    assert plan_nntrainer_v1(p).offsets == {"big": 0, "small": 8}
    assert plan_nntrainer_v1(q).offsets == {"small": 0, "big": 4}


# --- V2 by hand ---------------------------------------------------------------------------

V2_CASE = (
    ("act1", 0, 4, 100), ("act2", 1, 3, 50),
    ("g1", 2, 3, 30, 1, "gradient"), ("g2", 3, 4, 20, 1, "gradient"),
    ("g3", 2, 3, 10, 1, "gradient"), ("g4", 2, 4, 25, 1, "wgrad"),
)  # fmt: skip


def test_v2_slots_by_hand():
    # V1 on act1, act2 -> peak 150. Gradients largest first: g1 opens slot 0 @150; g4 clashes
    # with g1 -> slot 1 @180; g2 follows g1 in slot 0; g3 clashes with both -> slot 2 @205.
    p = _problem(*V2_CASE)
    plan = plan_nntrainer_v2(p)
    check_plan(p, plan)
    assert plan.offsets == {"act1": 0, "act2": 100, "g1": 150, "g2": 150, "g3": 205, "g4": 180}
    assert plan.arena_bytes == 215


def test_v2_without_weight_gradients_is_v1():
    p = _problem(("a", 0, 2, 8), ("b", 1, 3, 4, 1, "gradient_of_activation"), ("c", 2, 4, 8))
    assert plan_nntrainer_v2(p).offsets == plan_nntrainer_v1(p).offsets


def test_v2_nntrainer_clash_test_misses_overlaps_that_share_a_start():
    # NNTrainer's three-case test sees no clash between [2,3) and [2,4): g4 joins g1's slot
    # while both are live, a layout NNTrainer's own pool would reject. Our default refuses.
    p = _problem(*V2_CASE)
    faithful = plan_nntrainer_v2(p, nntrainer_clash_test=True)
    assert faithful.offsets["g4"] == faithful.offsets["g1"] == 150
    assert any("'g1'" in v and "'g4'" in v for v in validate_plan(p, faithful))
    assert faithful.options == {"nntrainer_clash_test": True}


# --- V3 by hand ---------------------------------------------------------------------------


def test_v3_drops_every_expired_request_and_takes_the_first_gap():
    # at time 2: h1 and h2 expired, k1@8 and k2@14 live; gaps [0,8) and [10,14): first fit 0
    p = _problem(("h1", 0, 2, 8), ("k1", 0, 6, 2), ("h2", 1, 2, 4), ("k2", 1, 6, 2), ("x", 2, 6, 4))
    assert plan_nntrainer_v3(p).offsets == {"h1": 0, "k1": 8, "h2": 10, "k2": 14, "x": 0}


def test_v3_skips_gaps_that_are_too_small():
    # at time 2: a and c expired; live b@4 and d@12 leave gaps [0,4) and [8,12), both < 6
    p = _problem(("a", 0, 2, 4), ("b", 0, 6, 4), ("c", 1, 2, 4), ("d", 1, 6, 4), ("x", 2, 6, 6))
    assert plan_nntrainer_v3(p).offsets == {"a": 0, "b": 4, "c": 8, "d": 12, "x": 16}


def test_v3_aligns_inside_a_gap():
    # at time 2: h expired; live a@0 (2 bytes) and k@8 leave gap [2,8); x aligned to 4 -> 4
    p = _problem(("a", 0, 6, 2), ("h", 1, 2, 6), ("k", 1, 6, 2), ("x", 2, 4, 4, 4))
    plan = plan_nntrainer_v3(p)
    check_plan(p, plan)
    assert plan.offsets == {"a": 0, "h": 2, "k": 8, "x": 4}


def test_basic_is_cumulative_in_problem_order():
    p = _problem(("a", 5, 6, 3), ("b", 0, 1, 4, 4), ("c", 2, 3, 1))
    assert plan_basic(p).offsets == {"a": 0, "b": 4, "c": 8}
