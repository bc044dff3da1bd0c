"""The TrainingPlan contract: one record, computed once, serialisable, aligned, checked by an
independent validator that catches what it must."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest

from trainplan.planner import order as order_module
from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import Infeasible, InvalidPlanFile, TrainplanError
from trainplan.planner.plan_training import plan_training
from trainplan.planner.swap import uses as uses_module
from trainplan.planner.swap import working_set
from trainplan.planner.training_plan import TrainingPlan
from trainplan.planner.verify import verify_plan
from trainplan.planner.zoo import MODELS, get_model


@pytest.fixture(scope="module")
def lenet():
    return build_training_graph(get_model("lenet5", batch=4))


def swap_plan(graph, fraction: float = 0.5, swap: str = "belady"):
    bounds = plan_training(graph).bounds
    budget = int(bounds.min_budget_bytes
                 + fraction * (bounds.lower_bound_bytes - bounds.min_budget_bytes))
    return plan_training(graph, budget=budget, swap=swap)


def test_a_plan_round_trips_through_json(lenet, tmp_path):
    for plan in (plan_training(lenet), swap_plan(lenet)):
        again = TrainingPlan.from_json(plan.to_json())
        assert again == plan and again.record() == plan.record()
        plan.save(str(tmp_path / "p.json"))
        assert TrainingPlan.load(str(tmp_path / "p.json")) == plan
    assert json.loads(plan.to_json())["schema"] == 1


@pytest.mark.parametrize("text,says", [
    ("{", "is not JSON"),
    ('{"schema": 99}', "schema 99"),
    ('{"schema": 1, "graph": {}}', "missing or malformed"),
    ("[1, 2]", "not a trainplan plan"),
])
def test_a_bad_plan_file_is_a_named_error(text, says):
    with pytest.raises(InvalidPlanFile, match=says):
        TrainingPlan.from_json(text, origin="p.json")


def test_print_shows_a_line_not_kilobytes(lenet):
    text = repr(swap_plan(lenet))
    assert len(text) < 300 and "lenet5" in text and "swap belady" in text and "valid" in text


def _counting(monkeypatch, name: str, function) -> list:
    """Count calls of ``function`` through every trainplan module that imported it."""
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)
    for module in list(sys.modules.values()):
        if (getattr(module, "__name__", "") or "").startswith("trainplan") \
                and getattr(module, name, None) is function:
            monkeypatch.setattr(module, name, counted)
    return calls


def test_one_planning_run_computes_order_lifespans_uses_and_floor_once(lenet, monkeypatch,
                                                                      tmp_path):
    from trainplan.runtime.data import synthetic
    from trainplan.runtime.session import Session, SessionOptions
    from trainplan.simulator.simulate import simulate

    counts = {name: _counting(monkeypatch, name, fn) for name, fn in (
        ("execution_order", order_module.execution_order),
        ("lifespans", order_module.lifespans),
        ("buffer_uses", uses_module.buffer_uses),
        ("min_budget", working_set.min_budget))}
    plan = swap_plan(lenet, 0.3)
    assert plan.swapped and plan.valid
    assert {k: len(v) for k, v in counts.items()} == dict.fromkeys(counts, 2)  # two plans
    for c in counts.values():
        c.clear()
    for device in ("raspberry-pi-4", "phone-ufs31"):
        simulate(lenet, plan, device)
    batch = synthetic(lenet, 4, seed=1).arrays
    with Session(lenet, plan, SessionOptions(swap_dir=str(tmp_path))) as session:
        session.step(batch)
    assert {k: len(v) for k, v in counts.items()} == dict.fromkeys(counts, 0)


BUDGET_FRACTIONS = (0.1, 0.5, 1.0)  # between the minimum budget and the lower bound


@pytest.mark.parametrize("model", list(MODELS))
def test_every_piece_of_every_swap_plan_on_the_zoo_is_aligned(model):
    graph = build_training_graph(get_model(model, batch=2))
    for fraction in BUDGET_FRACTIONS:
        for swap in ("belady", "lookahead"):
            try:
                plan = swap_plan(graph, fraction, swap)
            except Infeasible:
                assert swap == "lookahead" or fraction < 0.5
                continue
            assert plan.alignment == 64 and plan.valid, plan.errors[:3]
            assert all(p.offset % 64 == 0 for b in plan.buffers for p in b.pieces)
            assert plan.arena_bytes <= plan.budget_bytes


def test_the_validator_catches_broken_plans(lenet):
    plan = swap_plan(lenet, 0.2)
    assert verify_plan(lenet, plan) == []
    moved = plan.buffers[0]
    piece = moved.pieces[0]
    cases = {
        "not a non-negative multiple of the alignment": replace(plan, buffers=(replace(
            moved, pieces=(replace(piece, offset=piece.offset + 8),) + moved.pieces[1:]),)
            + plan.buffers[1:]),
        "exceed the budget": replace(plan, budget_bytes=plan.peak_resident_bytes - 1),
        "another graph": plan,
    }
    writing = next(e for e in plan.evictions if e.write)
    cases["without writing bytes that are read again"] = replace(plan, evictions=tuple(
        replace(e, write=False) if e == writing else e for e in plan.evictions))
    others = [b for b in plan.buffers if b.id != moved.id]
    clash = max(others, key=lambda b: b.pieces[0].end - b.pieces[0].start)
    on_top = replace(clash, pieces=(replace(clash.pieces[0], offset=piece.offset),)
                     + clash.pieces[1:])
    cases["share bytes"] = replace(plan, buffers=tuple(on_top if b.id == clash.id else b
                                                       for b in plan.buffers))
    other_graph = build_training_graph(get_model("lenet5", batch=8))
    for says, broken in cases.items():
        graph = other_graph if says == "another graph" else lenet
        errors = verify_plan(graph, broken)
        assert any(says in e for e in errors), (says, errors[:3])


def test_a_compat_plan_under_apply_at_end_keeps_every_read_tensor_resident():
    """NNTrainer's pool end must not cut a lifespan while an op still reads the tensor (an
    update of weight gradients late under apply-at-end)."""
    spec = get_model("mlp", batch=4)
    graph = build_training_graph(spec, compat=True)
    for order in ("nntrainer", "apply-at-end"):
        plan = plan_training(graph, order=order)
        assert plan.valid, plan.errors[:3]
    grad = plan.buffer("fc2:weight:grad")
    reads = [plan.order.op_eo[o] for o in graph.successors("fc2:weight:grad")]
    assert max(reads) < grad.end


def test_swap_without_a_budget_and_bad_options_are_refused(lenet):
    with pytest.raises(TrainplanError, match="needs a budget"):
        plan_training(lenet, swap="belady")
    with pytest.raises(TrainplanError, match="lookahead -1"):
        plan_training(lenet, budget=10**9, swap="lookahead", lookahead=-1)
    with pytest.raises(TrainplanError, match="power of two"):
        plan_training(lenet, alignment=48)
    with pytest.raises(Infeasible) as info:
        plan_training(lenet, budget=1000)
    assert info.value.needed_bytes == plan_training(lenet).bounds.min_budget_bytes


def test_provenance_names_the_planners_used_and_wall_clock_seconds(lenet):
    plan = swap_plan(lenet, 0.5)
    p = plan.provenance
    assert p.offsets_requested == "best" and p.offsets in ("greedy_size", "best_fit",
                                                            "greedy_breadth")
    assert p.swap_requested == p.swap == "belady" and p.solve_seconds > 0
    assert plan_training(lenet).provenance.offsets == "nntrainer_v1"
