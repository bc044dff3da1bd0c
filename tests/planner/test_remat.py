"""Recomputation: replays lower the live bytes, the validator catches replays that would change
a number, and the optimal planner never recomputes more than √n at the same budget."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainplan.planner.build import build_training_graph
from trainplan.planner.order import execution_order
from trainplan.planner.plan_training import plan_training
from trainplan.planner.remat import REMAT_PLANNERS, RematPlannerSpec, plan_remat
from trainplan.planner.remat.evaluate import live_with
from trainplan.planner.remat.groups import candidate_groups
from trainplan.planner.spec import LayerDef, ModelSpec
from trainplan.planner.training_plan import Replay
from trainplan.planner.verify import verify_plan
from trainplan.planner.zoo import get_model


@pytest.mark.parametrize("model", ["resnet18_cifar", "transformer", "mobilenetv2_cifar"])
def test_sqrt_lowers_the_peak_and_every_plan_validates(model):
    graph = build_training_graph(get_model(model, batch=8))
    plain = plan_training(graph)
    for remat in ("sqrt", "optimal"):
        plan = plan_training(graph, remat=remat, time_limit=5)
        assert plan.valid, plan.errors[:3]
        assert plan.recomputes and plan.provenance.remat == remat
        assert plan.bounds.lower_bound_bytes < plain.bounds.lower_bound_bytes
        assert plan.peak_live_bytes == plan.bounds.lower_bound_bytes
        assert plan.arena_bytes < plain.arena_bytes
        assert all(graph.nodes[r.op]["step"] == "forward" for r in plan.recomputes)


def _replays_for(graph, layer: str):
    """The replays of the group holding ``layer``, at its first backward EO."""
    eo = execution_order(graph)
    group = next(g for g in candidate_groups(graph, eo) if layer in g.layers)
    return group, [Replay(op, group.backward_eo) for op in group.forward_ops]


def test_the_validator_catches_replays_that_change_a_number():
    graph = build_training_graph(get_model("resnet18_cifar", batch=2))
    plan = plan_training(graph, remat="sqrt")
    group, good = _replays_for(graph, "layer2.0/bn1")
    assert any(r in plan.recomputes for r in good) or good
    conv, bn = good[0], good[1]
    late = plan.order.layer_eos["layer2.0/conv1"]["apply_gradient"] + 1  # weights updated
    cases = {
        "at another version": (Replay(bn.op, bn.eo),),  # batch norm without its convolution
        "at another version than the plain iteration": tuple(
            Replay(r.op, late) for r in good),
        "not a forward op": (Replay("layer2.0/conv1:calc_gradient", conv.eo),),
    }
    for says, replays in cases.items():
        errors = verify_plan(graph, replace(plan, recomputes=replays))
        assert any(says in e for e in errors), (says, errors[:3])


@pytest.fixture
def every_segment(monkeypatch):
    """A plug-in remat planner that replays every group at its first backward EO, whatever
    it saves (small models where √n would keep everything)."""
    def replay_all(graph, eo, groups, **_):
        return sorted(((op, g.backward_eo) for g in groups for op in g.forward_ops),
                      key=lambda r: r[1])
    monkeypatch.setitem(REMAT_PLANNERS, "every", RematPlannerSpec(replay_all, "test"))
    return "every"


def test_a_registered_remat_planner_plugs_in(every_segment):
    graph = build_training_graph(get_model("lenet5", batch=4))
    plan = plan_training(graph, remat=every_segment)
    assert plan.valid and len(plan.recomputes) >= 5


def chain_spec(convs: int, channels: int, batch: int) -> ModelSpec:
    layers = [LayerDef("in", "input", {"input_shape": (3, 8, 8)})]
    prev = "in"
    for i in range(convs):
        layers += [LayerDef(f"c{i}", "conv2d", {"filters": channels, "kernel_size": 3,
                                                 "padding": "same"}, (prev,)),
                   LayerDef(f"b{i}", "batch_normalization", {}, (f"c{i}",)),
                   LayerDef(f"r{i}", "activation", {"activation": "relu"}, (f"b{i}",))]
        prev = f"r{i}"
    layers += [LayerDef("flat", "flatten", {}, (prev,)),
               LayerDef("fc", "fully_connected", {"unit": 4}, ("flat",)),
               LayerDef("loss", "cross_softmax", {}, ("fc",))]
    return ModelSpec("chain", tuple(layers), batch=batch, optimizer="sgd")


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(convs=st.integers(4, 9), channels=st.sampled_from([4, 8]), batch=st.sampled_from([2, 4]))
def test_optimal_never_recomputes_more_than_sqrt_at_its_memory(convs, channels, batch):
    graph = build_training_graph(chain_spec(convs, channels, batch))
    eo = execution_order(graph)
    sqrt, sinfo = plan_remat("sqrt", graph, eo)
    if not sqrt:
        return  # nothing to compare: √n saves nothing here
    budget = int(live_with(graph, eo, sqrt).max())
    best, oinfo = plan_remat("optimal", graph, eo, budget=budget, time_limit=3, workers=1)
    assert oinfo["replay_cost"] <= sinfo["replay_cost"]
    assert live_with(graph, eo, best).max() <= budget
    assert oinfo["status"] in ("OPTIMAL", "FEASIBLE") and 0.0 <= oinfo["gap"] <= 1.0
