"""simulate(graph, plan, device): memory agrees with the plan, time with the roofline, swap
plans move the bytes their schedule says, and a plan too big says where it ran out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.order import execution_order, lifespans, live_bytes
from trainplan.planner.plan_graph import plan_graph, plan_graph_swap
from trainplan.planner.swap import graph_buffers
from trainplan.planner.swap.working_set import min_budget
from trainplan.planner.zoo import MODELS, get_model
from trainplan.simulator.device import load_device
from trainplan.simulator.errors import InvalidPlan
from trainplan.simulator.simulate import graph_steps, simulate
from trainplan.simulator.timeline import Timeline

PI = "raspberry-pi-4"


@pytest.fixture(scope="module")
def graphs() -> dict:
    return {m: build_training_graph(get_model(m, batch=2)) for m in MODELS}


@pytest.mark.parametrize("model", list(MODELS))
def test_peak_resident_is_the_plans_arena_on_every_zoo_model(graphs, model):
    graph = graphs[model]
    for planner in ("nntrainer_v1", "greedy_size"):
        plan = plan_graph(graph, planner)
        tl = simulate(graph, plan, PI)
        assert tl.summary.peak_resident_bytes == plan.record()["arena_bytes"]
        assert tl.summary.fits and tl.summary.out_of_ram is None
    eo = execution_order(graph)
    curve = live_bytes(lifespans(graph, eo), eo.n_eo)
    live = tl.by_eo[tl.live_columns()].sum(axis=1).to_numpy()
    assert (live == curve).all() and tl.summary.peak_live_bytes == curve.max()
    assert (tl.by_eo["resident_bytes"].to_numpy() >= live).all()
    assert len(tl.events) == tl.summary.ops and (np.diff(tl.events["eo"]) >= 0).all()


def test_time_is_the_sum_of_roofline_op_times(mlp3_graph):
    dev = load_device(PI)
    plan = plan_graph(mlp3_graph, "nntrainer_v1")
    tl = simulate(mlp3_graph, plan, dev, iterations=3)
    steps = graph_steps(mlp3_graph, execution_order(mlp3_graph))
    one = sum(dev.op_seconds(s.flops, s.bytes_touched, s.op_class) for s in steps)
    s = tl.summary
    assert s.iteration_seconds == pytest.approx(one)
    assert s.compute_seconds == pytest.approx(3 * one) == pytest.approx(s.total_seconds)
    assert s.stall_seconds == 0 and s.bytes_read == s.bytes_written == 0
    assert (tl.events["iteration"].value_counts() == len(steps)).all()
    # after the first iteration every page of the arena is resident
    later = tl.events[tl.events["iteration"] > 0]["resident_bytes"]
    assert (later == s.peak_resident_bytes).all()


def test_a_plan_that_does_not_fit_says_where_it_ran_out(graphs):
    graph = graphs["resnet18_cifar"]
    plan = plan_graph(graph, "nntrainer_v1")
    arena = plan.record()["arena_bytes"]
    # RAM for the weight pool and half the tensor pool: it runs out during the iteration
    small = dataclasses.replace(load_device(PI), ram_bytes=arena,
                                reserved_bytes=plan.tensor.arena_bytes // 2)
    tl = simulate(graph, plan, small)
    s, where = tl.summary, tl.summary.out_of_ram
    assert s.fits is False and s.peak_resident_bytes == arena
    assert where["available_bytes"] == small.available_bytes and where["eo"] > 0
    resident = tl.by_eo["resident_bytes"]
    assert resident.iloc[where["eo"]] > small.available_bytes >= resident.iloc[where["eo"] - 1]
    assert where["short_bytes"] == where["resident_bytes"] - small.available_bytes
    assert where["layer"] and where["step"] in ("forward", "calc_gradient", "calc_derivative",
                                                "apply_gradient")


def _budget_between(graph) -> int:
    """Halfway between the smallest feasible swap budget and the lower bound."""
    buffers, n_eo = graph_buffers(graph)
    bound = plan_graph(graph, "nntrainer_v1").record()["lower_bound_bytes"]
    return (min_budget(buffers, n_eo) + bound) // 2


def test_a_swap_plan_moves_the_bytes_its_schedule_says(graphs):
    graph = graphs["lenet5"]
    swapped = plan_graph_swap(graph, _budget_between(graph))
    rec = swapped.record()
    tl = simulate(graph, swapped, PI, iterations=2)
    s = tl.summary
    assert s.budget_bytes == rec["budget_bytes"] and s.within_budget
    assert s.peak_resident_bytes == rec["arena_bytes"] <= rec["budget_bytes"]
    assert s.bytes_read == 2 * rec["bytes_read"] and s.bytes_written == 2 * rec["bytes_written"]
    assert s.iteration_seconds >= s.compute_seconds / 2 and s.stall_seconds >= 0
    assert "swap" in s.planner
    live = tl.by_eo[tl.live_columns()].sum(axis=1)
    assert live.max() <= rec["budget_bytes"]


def test_a_plan_for_another_graph_is_refused(graphs):
    plan = plan_graph(graphs["mlp"], "nntrainer_v1")
    with pytest.raises(InvalidPlan, match="no offset"):
        simulate(graphs["lenet5"], plan, PI)


def test_live_bytes_by_layer_add_up_to_the_same_curve(graphs):
    graph = graphs["lenet5"]
    plan = plan_graph(graph, "nntrainer_v1")
    by_role, by_layer = (simulate(graph, plan, PI, live_by=k) for k in ("role", "layer"))
    assert len(by_layer.live_columns()) > len(by_role.live_columns())
    assert (by_role.by_eo[by_role.live_columns()].sum(axis=1)
            == by_layer.by_eo[by_layer.live_columns()].sum(axis=1)).all()


def test_timeline_json_round_trip(graphs):
    graph = graphs["lenet5"]
    swapped = plan_graph_swap(graph, _budget_between(graph))
    tl = simulate(graph, swapped, "smartwatch")
    again = Timeline.from_json(tl.to_json())
    assert again.summary == tl.summary
    assert list(again.events.columns) == list(tl.events.columns)
    assert np.allclose(again.events["end_s"], tl.events["end_s"])
    assert len(again.transfers) == len(tl.transfers)
