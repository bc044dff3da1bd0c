"""Same bits: planned runs (any offset planner, with and without swapping to a real file)
give exactly the reference run's weights."""

import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.plan_training import plan_training
from trainplan.planner.zoo import get_model
from trainplan.runtime.data import synthetic
from trainplan.runtime.session import Session, SessionOptions

MODELS = {
    "mlp": dict(batch=4),
    "lenet5": dict(batch=4),
    "resnet18_cifar": dict(batch=2),
    "mobilenetv2": dict(batch=2, input_shape=(3, 32, 32), classes=10),
    "transformer": dict(batch=2, input_shape=(16,)),
}
ITERATIONS = 2


def train(graph, plan, batch: int) -> tuple[str, list[float]]:
    """Weights and losses after two iterations under ``plan`` (None: the reference run)."""
    data = synthetic(graph, batch * ITERATIONS, seed=3)
    options = SessionOptions(seed=7)
    session = Session(graph, plan, options) if plan else Session.reference(graph, options)
    with session:
        losses = [session.step(b).loss for b in data.batches(batch, None)]
        return session.weights_sha256(), losses


@pytest.mark.parametrize("name", list(MODELS))
def test_planned_and_swapped_runs_match_the_reference(name):
    kw = MODELS[name]
    graph = build_training_graph(get_model(name, **kw))
    reference, ref_losses = train(graph, None, kw["batch"])
    low = plan_training(graph).bounds.min_budget_bytes
    runs = {
        "nntrainer_v1": plan_training(graph),
        "greedy_size": plan_training(graph, offsets="greedy_size"),
        "belady": plan_training(graph, budget=int(low * 1.25), swap="belady"),
        "lookahead": plan_training(graph, budget=10**12, swap="lookahead", lookahead=1),
    }
    for label, plan in runs.items():
        assert plan.valid and plan.alignment == 64
        sha, losses = train(graph, plan, kw["batch"])
        assert sha == reference, f"{name}: {label} differs from the reference"
        assert losses == ref_losses


def test_layer_names_with_separators_bind_by_slot_not_by_parsing():
    """Tensor names are never parsed back: layers named with ':' and '@' train alike."""
    from trainplan.planner.spec import LayerDef, ModelSpec

    spec = ModelSpec("odd names", (
        LayerDef("in:put", "input", {"input_shape": (6,)}),
        LayerDef("fc:1@grad", "fully_connected", {"unit": 5}, ("in:put",)),
        LayerDef("act:out0", "activation", {"activation": "relu"}, ("fc:1@grad",)),
        LayerDef("fc:2:m", "fully_connected", {"unit": 3}, ("act:out0",)),
        LayerDef("loss:label", "cross_softmax", {}, ("fc:2:m",)),
    ), batch=4, optimizer="adam")
    graph = build_training_graph(spec)
    reference, ref_losses = train(graph, None, 4)
    for plan in (plan_training(graph), plan_training(graph, budget=10**9, swap="lookahead")):
        assert train(graph, plan, 4) == (reference, ref_losses)


def replay_every_group(graph, eo, groups, **_):
    """Recompute every candidate group at its first backward EO (even where it saves
    nothing), so that small models exercise every kind of recomputed op."""
    return sorted(((op, g.backward_eo) for g in groups for op in g.forward_ops),
                  key=lambda r: r[1])


@pytest.fixture
def every(monkeypatch):
    from trainplan.planner.remat import REMAT_PLANNERS, RematPlannerSpec

    monkeypatch.setitem(REMAT_PLANNERS, "every", RematPlannerSpec(replay_every_group, "test"))
    return "every"


REMAT_MODELS = {**{k: v for k, v in MODELS.items() if k != "mlp"},
                "mobilenetv2": dict(batch=2, input_shape=(3, 32, 32), classes=10)}


@pytest.mark.parametrize("name", list(REMAT_MODELS))
def test_recomputed_and_swapped_runs_match_the_reference(name, every):
    kw = REMAT_MODELS[name]
    graph = build_training_graph(get_model(name, **kw))
    reference = train(graph, None, kw["batch"])
    plans = {"sqrt": plan_training(graph, remat="sqrt"),
             "every": plan_training(graph, remat=every)}
    low = plans["every"].bounds.min_budget_bytes
    plans["every+belady"] = plan_training(graph, remat=every, budget=int(low * 1.2))
    for label, plan in plans.items():
        assert plan.valid, (label, plan.errors[:2])
        assert plan.recomputes or label == "sqrt"  # √n saves nothing on some tiny shapes
        assert train(graph, plan, kw["batch"]) == reference, f"{name}: {label} differs"
    assert plans["every+belady"].swapped


def test_dropout_recomputed_draws_the_same_mask(every):
    from trainplan.planner.spec import LayerDef, ModelSpec

    spec = ModelSpec("dropout chain", (
        LayerDef("in", "input", {"input_shape": (12,)}),
        LayerDef("fc1", "fully_connected", {"unit": 16}, ("in",)),
        LayerDef("drop", "dropout", {"dropout_rate": 0.5}, ("fc1",)),
        LayerDef("fc2", "fully_connected", {"unit": 16}, ("drop",)),
        LayerDef("act", "activation", {"activation": "tanh"}, ("fc2",)),
        LayerDef("fc3", "fully_connected", {"unit": 3}, ("act",)),
        LayerDef("loss", "cross_softmax", {}, ("fc3",)),
    ), batch=4, optimizer="adam")
    graph = build_training_graph(spec)
    plan = plan_training(graph, remat=every)
    assert any(r.op == "drop:forward" for r in plan.recomputes)
    assert train(graph, plan, 4) == train(graph, None, 4)
