"""Step splitting (planner/split.py): a split graph is an ordinary training graph whose chunk
ops each take their own EO, whose plans pass the independent validator, and whose working set
shrinks; bad splits are refused with errors that name the problem."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import UnknownName
from trainplan.planner.graph import check_graph
from trainplan.planner.layers import LAYERS
from trainplan.planner.order import execution_order, lifespans, lower_bound
from trainplan.planner.plan_training import plan_training
from trainplan.planner.split import InvalidSplit, describe_split, split_graph
from trainplan.planner.swap.uses import buffer_uses
from trainplan.planner.swap.working_set import min_budget
from trainplan.planner.verify import verify_plan
from trainplan.planner.zoo import get_model


def _graph(name: str, **kw):
    return build_training_graph(get_model(name, **kw))


def _tensors(graph):
    return {t: d for t, d in graph.nodes(data=True) if d["kind"] == "tensor"}


def _ops(graph):
    return {o: d for o, d in graph.nodes(data=True) if d["kind"] == "op"}


def _bounds(graph, order="nntrainer"):
    eo = execution_order(graph, order)
    spans = lifespans(graph, eo)
    return lower_bound(spans, eo.n_eo), min_budget(buffer_uses(graph, eo, spans), eo.n_eo)


def test_chunks_cut_the_batch_into_rows_typed_as_fields():
    g = _graph("lenet5", batch=5)
    s = split_graph(g, {("input", "pool2"): 3})
    check_graph(s)
    assert describe_split(s) == "input..pool2 x3" and describe_split(g) == "off"
    pieces: dict[str, list] = {}
    for d in _tensors(s).values():
        c = d.get("chunk")
        if c is None or d["slot"].kind not in ("input", "output", "output_grad"):
            continue  # a chunk's own workspace: not rows of a whole tensor
        assert d["shape"][0] == c.stop - c.start and c.count == 3 and c.total == 5
        pieces.setdefault(c.whole, []).append(c)
    assert "conv1:out0" in pieces and "input:input" in pieces
    for whole, chunks in pieces.items():
        rows = sorted((c.start, c.stop) for c in chunks)
        assert rows == [(0, 2), (2, 4), (4, 5)], whole  # the larger chunks first
    # the unsplit tensors the chunks stand for are gone; weights stay whole
    assert "conv1:out0" not in s and s.nodes["conv1:filter"].get("chunk") is None


def test_each_chunk_op_takes_its_own_eo_within_its_steps_width():
    g = _graph("resnet18_cifar", batch=4)
    s = split_graph(g, {("input", "layer1.1/relu2"): 4})
    eo = execution_order(s)
    at: dict[int, list[str]] = {}
    for op, e in eo.op_eo.items():
        at.setdefault(e, []).append(op)
    ops = _ops(s)
    widths = {r["name"]: r.get("widths", {}) for r in s.graph["layers"]}
    chunked = [o for o, d in ops.items() if d.get("chunk") is not None]
    assert len(chunked) > 100
    for o in chunked:
        d = ops[o]
        e = eo.op_eo[o]
        assert at[e] == [o], f"{o} shares EO {e} with {at[e]}"
        start = eo.layer_eos[d["layer"]][d["step"]]
        assert start <= e < start + widths[d["layer"]][d["step"]]
    # batch norm: K statistics EOs, then K normalisation EOs, in chunk order
    stats = [eo.op_eo[f"bn1:bn_statistics#{k}"] for k in range(4)]
    norm = [eo.op_eo[f"bn1:bn_normalize#{k}"] for k in range(4)]
    assert stats == list(range(stats[0], stats[0] + 4)) and norm[0] == stats[-1] + 1


def test_an_empty_split_is_the_graph_itself_and_unsplit_orders_are_unchanged():
    g = _graph("mlp", batch=4)
    assert split_graph(g, {}) is g
    eo = execution_order(g)
    n = len(g.graph["layers"])
    assert [eo.layer_eos[r["name"]]["forward"] for r in g.graph["layers"]] == list(range(n))
    assert eo.n_eo == n + 3 * n  # every zoo layer is trainable: three backward EOs each


@pytest.mark.parametrize("name,kw,splits,order", [
    ("lenet5", dict(batch=4), {("input", "conv2/relu"): 2}, "nntrainer"),
    ("lenet5", dict(batch=4), {("conv1", "fc2"): 3}, "apply-at-end"),
    ("resnet18_cifar", dict(batch=4), {("conv1", "layer2.0/relu2"): 4}, "nntrainer"),
    ("resnet18_cifar", dict(batch=4), {("input", "layer1.0/add"): 2}, "apply-at-end"),
    ("mobilenetv2_cifar", dict(batch=3), {("stem", "block1/dw/relu6"): 2}, "nntrainer"),
    ("transformer", dict(batch=4, input_shape=(16,)), {("tokens", "block3/norm2"): 2},
     "nntrainer"),
])
def test_plans_of_split_graphs_validate(name, kw, splits, order):
    s = split_graph(_graph(name, **kw), splits)
    plan = plan_training(s, order=order)
    assert plan.valid and verify_plan(s, plan) == []
    low = plan.bounds.min_budget_bytes
    for swap in ("belady", "lookahead"):
        swapped = plan_training(s, order=order, budget=int(low * 1.3), swap=swap)
        assert swapped.valid and verify_plan(s, swapped) == [] and swapped.swapped


def test_unit_splits_plan_and_validate():
    s = split_graph(_graph("lenet5", batch=4), {("input", "pool1"): 2},
                    units={"fc1": 3, "fc3": 2})
    blocks = [t for t, d in _tensors(s).items() if d["role"] == "weight"
              and d.get("chunk") is not None and d["version_of"] is None]
    assert sorted(s.nodes[t]["shape"] for t in blocks if t.startswith("fc1:weight")) == \
        [(400, 40)] * 3
    plan = plan_training(s)
    swapped = plan_training(s, budget=int(plan.bounds.min_budget_bytes * 1.3), swap="belady")
    assert plan.valid and swapped.valid


def test_split_shrinks_the_working_set_and_the_lower_bound_of_an_imagenet_model():
    g = _graph("resnet18", batch=32)
    bound, budget = _bounds(g)
    s = split_graph(g, {("input", "fc"): 8})
    split_bound, split_budget = _bounds(s)
    assert split_budget < budget / 4 and split_bound < bound
    # more chunks, a smaller working set
    assert _bounds(split_graph(g, {("input", "fc"): 2}))[1] > split_budget


def test_unit_split_shrinks_the_working_set_of_a_big_classifier():
    g = _graph("vgg16", batch=1)  # fc1's weight: 411 MB, four of them at its update
    _, budget = _bounds(g)
    _, split_budget = _bounds(split_graph(g, {}, units={"fc1": 8, "fc2": 2}))
    assert budget > 1.6e9 and split_budget < budget / 4


@pytest.mark.parametrize("splits,units,error,words", [
    ({("input", "nope"): 2}, None, UnknownName, "not a layer"),
    ({("conv2", "conv1"): 2}, None, InvalidSplit, "comes after"),
    ({("fc3", "loss"): 2}, None, InvalidSplit, "end the region before it"),
    ({("input", "conv1"): 1}, None, InvalidSplit, "from 2 to the batch"),
    ({("input", "conv1"): 5}, None, InvalidSplit, "from 2 to the batch"),
    ({("input", "conv1"): 2.0}, None, InvalidSplit, "integer"),
    ({("input", "conv2"): 2, ("conv2", "fc1"): 2}, None, InvalidSplit, "must not overlap"),
    ({}, {"conv1": 2}, InvalidSplit, "only fully_connected"),
    ({("input", "fc1"): 2}, {"fc1": 2}, InvalidSplit, "split it one way"),
    ({}, {"fc3": 11}, InvalidSplit, "from 2 to its units"),
])
def test_bad_splits_are_refused_naming_the_problem(splits, units, error, words):
    with pytest.raises(error, match=words):
        split_graph(_graph("lenet5", batch=4), splits, units)


def test_compat_and_already_split_graphs_are_refused():
    compat = build_training_graph(get_model("mnist.ini"), compat=True)
    with pytest.raises(InvalidSplit, match="NNTrainer-compatible"):
        split_graph(compat, {(compat.graph["layers"][0]["name"],
                              compat.graph["layers"][1]["name"]): 2})
    s = split_graph(_graph("lenet5", batch=4), {("input", "conv1"): 2})
    with pytest.raises(InvalidSplit, match="already split"):
        split_graph(s, {("fc1", "fc2"): 2})


_SPLITTABLE = {"lenet5": 6, "resnet18_cifar": 4}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(_SPLITTABLE)), data=st.data())
def test_any_region_and_chunk_count_gives_a_valid_graph_and_plan(name, data):
    batch = _SPLITTABLE[name]
    g = _graph(name, batch=batch)
    layers = [r["name"] for r in g.graph["layers"] if not LAYERS[r["type"]].is_loss]
    a = data.draw(st.integers(0, len(layers) - 1))
    b = data.draw(st.integers(a, len(layers) - 1))
    k = data.draw(st.integers(2, batch))
    s = split_graph(g, {(layers[a], layers[b]): k})
    ops = _ops(s)
    for layer in layers[a:b + 1]:
        forward = [d for d in ops.values() if d["layer"] == layer and d["step"] == "forward"]
        assert len(forward) in (k, 2 * k)  # batch norm: statistics, then normalisation
    plan = plan_training(s)
    assert plan.valid
    swapped = plan_training(s, budget=int(plan.bounds.min_budget_bytes * 1.2), swap="belady")
    assert swapped.valid
