"""simulate(graph, plan, device): memory agrees with the plan, time with the roofline, swap
plans move the bytes their schedule says, and a plan too big says where it ran out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.order import execution_order, lifespans, live_bytes
from trainplan.planner.plan_training import plan_training
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
def test_peak_held_is_the_plans_arena_on_every_zoo_model(graphs, model):
    graph = graphs[model]
    for planner in ("nntrainer_v1", "greedy_size"):
        plan = plan_training(graph, offsets=planner)
        tl = simulate(graph, plan, PI)
        assert tl.summary.arena_bytes == plan.arena_bytes == tl.by_eo["held_bytes"].max()
        assert tl.summary.fits and tl.summary.out_of_ram is None
    eo = execution_order(graph)
    curve = live_bytes(lifespans(graph, eo), eo.n_eo)  # unswapped: every live buffer resident
    resident = tl.by_eo[tl.resident_columns()].sum(axis=1).to_numpy()
    assert (resident == curve).all() and tl.summary.peak_resident_bytes == curve.max()
    assert tl.summary.peak_live_bytes == curve.max() == plan.bounds.lower_bound_bytes
    assert (tl.by_eo["held_bytes"].to_numpy() >= resident).all()
    assert len(tl.events) == tl.summary.ops and (np.diff(tl.events["eo"]) >= 0).all()


def test_time_is_the_sum_of_roofline_op_times(mlp3_graph):
    dev = load_device(PI)
    plan = plan_training(mlp3_graph)
    tl = simulate(mlp3_graph, plan, dev, iterations=3)
    steps = graph_steps(mlp3_graph, plan.order)
    one = sum(dev.op_seconds(s.flops, s.bytes_touched, s.op_class) for s in steps)
    s = tl.summary
    assert s.iteration_seconds == pytest.approx(one)
    assert s.total_compute_seconds == pytest.approx(3 * one) == pytest.approx(s.total_seconds)
    assert s.total_stall_seconds == 0 and s.total_bytes_read == s.total_bytes_written == 0
    assert (tl.events["iteration"].value_counts() == len(steps)).all()
    # after the first iteration every page of the arena is held
    later = tl.events[tl.events["iteration"] > 0]["held_bytes"]
    assert (later == s.arena_bytes).all()


def test_a_plan_that_does_not_fit_says_where_it_ran_out(graphs):
    graph = graphs["resnet18_cifar"]
    plan = plan_training(graph)
    arena = plan.arena_bytes
    # RAM for the weight pool and half the tensor pool: it runs out during the iteration
    small = dataclasses.replace(load_device(PI), ram_bytes=arena,
                                reserved_bytes=plan.pool_bytes("tensor") // 2)
    tl = simulate(graph, plan, small)
    s, where = tl.summary, tl.summary.out_of_ram
    assert s.fits is False and s.arena_bytes == arena
    assert where["available_bytes"] == small.available_bytes and where["eo"] > 0
    held = tl.by_eo["held_bytes"]
    assert held.iloc[where["eo"]] > small.available_bytes >= held.iloc[where["eo"] - 1]
    assert where["short_bytes"] == where["held_bytes"] - small.available_bytes
    assert where["layer"] and where["step"] in ("forward", "calc_gradient", "calc_derivative",
                                                "apply_gradient")


def _budget_between(graph) -> int:
    """Halfway between the smallest feasible swap budget and the lower bound."""
    bounds = plan_training(graph).bounds
    return (bounds.min_budget_bytes + bounds.lower_bound_bytes) // 2


def test_a_swap_plan_moves_the_bytes_its_schedule_says(graphs):
    graph = graphs["lenet5"]
    swapped = plan_training(graph, budget=_budget_between(graph))
    rec = swapped.record()
    tl = simulate(graph, swapped, PI, iterations=2)
    s = tl.summary
    assert s.budget_bytes == rec["budget_bytes"] and s.within_budget
    assert s.arena_bytes == rec["arena_bytes"] <= rec["budget_bytes"]
    assert s.peak_resident_bytes == rec["peak_resident_bytes"] <= s.arena_bytes
    assert s.peak_live_bytes == rec["peak_live_bytes"] > s.peak_resident_bytes
    assert s.total_bytes_read == 2 * rec["bytes_read"]
    assert s.total_bytes_written == 2 * rec["bytes_written"]
    assert s.iteration_seconds >= s.total_compute_seconds / 2 and s.total_stall_seconds >= 0
    assert (tl.by_eo["live_bytes"].to_numpy()[:swapped.n_eo] == swapped.live_curve()).all()
    assert s.swap == swapped.provenance.swap == "belady" and s.planner == rec["planner"]
    resident = tl.by_eo[tl.resident_columns()].sum(axis=1)
    assert resident.max() <= rec["budget_bytes"]


def test_a_plan_for_another_graph_is_refused(graphs):
    plan = plan_training(graphs["mlp"])
    with pytest.raises(InvalidPlan, match="made for model 'mlp' .* not model 'lenet5'"):
        simulate(graphs["lenet5"], plan, PI)
    other_batch = build_training_graph(get_model("mlp", batch=3))
    with pytest.raises(InvalidPlan, match="batch 2.*not model 'mlp' \\(batch 3"):
        simulate(other_batch, plan, PI)


def test_resident_bytes_by_layer_add_up_to_the_same_curve(graphs):
    graph = graphs["lenet5"]
    plan = plan_training(graph)
    by_role, by_layer = (simulate(graph, plan, PI, by=k) for k in ("role", "layer"))
    assert len(by_layer.resident_columns()) > len(by_role.resident_columns())
    assert (by_role.by_eo[by_role.resident_columns()].sum(axis=1)
            == by_layer.by_eo[by_layer.resident_columns()].sum(axis=1)).all()


def test_timeline_json_round_trip(graphs):
    graph = graphs["lenet5"]
    swapped = plan_training(graph, budget=_budget_between(graph))
    tl = simulate(graph, swapped, "smartwatch")
    again = Timeline.from_json(tl.to_json())
    assert again.summary == tl.summary
    assert list(again.events.columns) == list(tl.events.columns)
    assert np.allclose(again.events["end_s"], tl.events["end_s"])
    assert len(again.transfers) == len(tl.transfers)


def test_a_fed_label_is_written_again_every_iteration():
    """The data feed writes a batch's labels every iteration, so storage's copy from the last
    one is stale: a plan that evicts the label writes it each iteration, and the simulator
    moves the plan's bytes in every iteration, not only the first."""
    graph = build_training_graph(get_model("lenet5", batch=4))
    plan = plan_training(graph, budget=900_000, swap="belady")
    assert any(e.buffer == "loss:label" and e.write for e in plan.evictions)
    tr = simulate(graph, plan, PI, iterations=3).transfers
    moved = tr[~tr["skipped"].astype(bool)]
    written = moved[moved["kind"] == "write"].groupby("iteration")["nbytes"].sum()
    assert list(written) == [plan.bytes_written] * 3
