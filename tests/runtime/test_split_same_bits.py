"""Split graphs run: planned runs (no budget, and swapping to a real file under a budget) give
exactly the bits of the reference run of the same split graph; and a split graph computes what
the unsplit graph computes, up to float rounding."""

import numpy as np
import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.plan_training import plan_training
from trainplan.planner.split import split_graph
from trainplan.planner.split_order import chunk_major
from trainplan.planner.zoo import get_model
from trainplan.runtime.data import synthetic
from trainplan.runtime.init import initial_value
from trainplan.runtime.session import Session, SessionOptions

ITERATIONS = 2

# model, build options, regions, unit splits
CASES = {
    "lenet5": (dict(batch=4), {("input", "conv2/relu"): 4}, {"fc1": 3}),
    "resnet18_cifar": (dict(batch=2), {("input", "layer1.1/relu2"): 2,
                                       ("layer2.0/conv1", "fc"): 2}, {}),
    "mobilenetv2_cifar": (dict(batch=3), {("stem", "block2/project/bn"): 3}, {}),
    "transformer": (dict(batch=4, input_shape=(16,)), {("tokens", "block1/norm2"): 2},
                    {"block2/ff1": 2}),
}


def _graphs(name, optimizer=None):
    kw, splits, units = CASES[name]
    graph = build_training_graph(get_model(name, **kw), optimizer=optimizer)
    return graph, split_graph(graph, splits, units), kw["batch"]


def train(graph, plan, data, batch, order="nntrainer"):
    """Weights and losses after two iterations (plan None: the reference run in ``order``)."""
    options = SessionOptions(seed=7)
    session = Session(graph, plan, options) if plan else Session.reference(graph, options,
                                                                            order=order)
    with session:
        losses = [session.step(b).loss for b in data.batches(batch, None)]
        return session.weights_sha256(), losses


@pytest.mark.parametrize("name", list(CASES))
def test_planned_and_swapped_split_runs_match_the_split_reference(name):
    graph, split, batch = _graphs(name)
    data = synthetic(graph, batch * ITERATIONS, seed=3)
    reference = train(split, None, data, batch)
    plan = plan_training(split)
    swapped = plan_training(split, budget=int(plan.bounds.min_budget_bytes * 1.25),
                            swap="belady")
    assert plan.valid and swapped.valid and swapped.swapped
    for label, p in (("no budget", plan), ("swapping", swapped)):
        assert train(split, p, data, batch) == reference, f"{name}: {label} differs"


def test_chunk_major_runs_give_the_bits_of_the_rules_order():
    """Chunk by chunk or layer by layer, every op computes the same values (no dropout here to
    draw its masks in another order); planned and swapped runs follow the reference."""
    graph, split, batch = _graphs("resnet18_cifar")
    data = synthetic(graph, batch * ITERATIONS, seed=3)
    eo = chunk_major(split)
    reference = train(split, None, data, batch, order=eo)
    assert reference == train(split, None, data, batch)
    plan = plan_training(split, order=eo)
    swapped = plan_training(split, order=eo, budget=int(plan.bounds.min_budget_bytes * 1.25),
                            swap="belady")
    for p in (plan, swapped):
        assert p.valid and train(split, p, data, batch) == reference


@pytest.mark.parametrize("name", ["lenet5", "transformer"])
def test_a_split_graph_trains_like_the_unsplit_one(name):
    """Without batch norm (whose statistics are summed in another order) two iterations of
    the split graph follow the unsplit graph's within float rounding (plain SGD: Adam's first
    steps turn the rounding of a gradient near zero into a step of the learning rate)."""
    graph, split, batch = _graphs(name, optimizer="sgd")
    data = synthetic(graph, batch * ITERATIONS, seed=3)
    runs = []
    for g in (graph, split):
        with Session.reference(g, SessionOptions(seed=7, learning_rate=0.1)) as session:
            losses = [session.step(b).loss for b in data.batches(batch, None)]
            runs.append((losses, session.state()))
    (losses, state), (split_losses, split_state) = runs
    assert np.allclose(split_losses, losses, rtol=1e-5)
    units = dict(CASES[name][2])
    for w, value in state.items():
        if graph.nodes[w]["layer"] in units:  # blocks of units: put the weight back together
            blocks = sorted((t for t in split_state if split.nodes[t].get("chunk") is not None
                             and split.nodes[t]["chunk"].whole == w),
                            key=lambda t: split.nodes[t]["chunk"].index)
            assert blocks, w
            got = np.concatenate([split_state[t] for t in blocks],
                                 axis=split.nodes[blocks[0]]["chunk"].axis)
        else:
            got = split_state[w]
        assert np.allclose(got, value, rtol=1e-4, atol=1e-6), w


def test_batch_norm_models_split_give_the_unsplit_forward():
    """The first loss (before any update) matches: whole-batch statistics over chunks."""
    for name in ("resnet18_cifar", "mobilenetv2_cifar"):
        graph, split, batch = _graphs(name)
        batch_data = next(synthetic(graph, batch, seed=3).batches(batch, None))
        losses = []
        for g in (graph, split):
            with Session.reference(g, SessionOptions(seed=7)) as session:
                losses.append(session.step(batch_data).loss)
        assert losses[1] == pytest.approx(losses[0], rel=1e-5), name


def test_unit_blocks_start_as_slices_of_the_unsplit_weight():
    graph, split, _ = _graphs("lenet5")
    whole = initial_value(graph, "fc1:weight", seed=7)
    blocks = [initial_value(split, f"fc1:weight#{k}", seed=7) for k in range(3)]
    assert np.array_equal(np.concatenate(blocks, axis=1), whole)


def test_evaluation_of_a_split_graph_matches_the_unsplit_graph():
    graph, split, batch = _graphs("resnet18_cifar")
    batch_data = next(synthetic(graph, batch, seed=3).batches(batch, None))
    results = []
    for g, plan in ((graph, None), (split, plan_training(split))):
        session = Session(g, plan, SessionOptions(seed=7)) if plan else \
            Session.reference(g, SessionOptions(seed=7))
        with session:
            results.append(session.evaluate(batch_data).loss)
    assert results[1] == pytest.approx(results[0], rel=1e-5)


def test_dropout_layer_norm_and_2d_batch_norm_in_chunks_match_the_reference():
    """Masks drawn per chunk, per-row statistics, whole-batch statistics of a 2-D batch norm
    and a unit-split classifier, in both orders, planned and swapped."""
    from trainplan.planner.spec import LayerDef, ModelSpec

    spec = ModelSpec("mixed", (
        LayerDef("in", "input", {"input_shape": (12,)}),
        LayerDef("fc1", "fully_connected", {"unit": 16}, ("in",)),
        LayerDef("drop", "dropout", {"dropout_rate": 0.5}, ("fc1",)),
        LayerDef("ln", "layer_normalization", {}, ("drop",)),
        LayerDef("bn", "batch_normalization", {}, ("ln",)),
        LayerDef("fc2", "fully_connected", {"unit": 5}, ("bn",)),
        LayerDef("loss", "cross_softmax", {}, ("fc2",)),
    ), batch=6, optimizer="adam")
    split = split_graph(build_training_graph(spec), {("in", "bn"): 4}, {"fc2": 2})
    data = synthetic(split, 12, seed=1)
    for order in ("nntrainer", chunk_major(split)):
        reference = train(split, None, data, 6, order=order)
        plan = plan_training(split, order=order)
        swapped = plan_training(split, order=order,
                                budget=int(plan.bounds.min_budget_bytes * 1.2), swap="belady")
        assert swapped.swapped
        for p in (plan, swapped):
            assert p.valid and train(split, p, data, 6) == reference
