"""Execution orders and lifespans, checked by value on a hand-worked MLP."""

import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import UnknownName
from trainplan.planner.order import (
    execution_order,
    lifespans,
    live_bytes,
    lower_bound,
    no_reuse_bytes,
)
from trainplan.planner.zoo import get_model

# Worked by hand from NNTrainer's rule: forward EOs 0..6; backward from 7 in reverse order,
# three EOs per trainable layer (weightless ones included, as NNTrainer counts them):
# loss 7-9, fc3 10-12, relu2 13-15, fc2 16-18, relu1 19-21, fc1 22-24, in 25-27.
EXPECTED_EOS = {
    "in": {"forward": 0, "calc_gradient": 25},
    "fc1": {"forward": 1, "calc_gradient": 22, "calc_derivative": 23, "apply_gradient": 24},
    "relu1": {"forward": 2, "calc_derivative": 20},
    "fc2": {"forward": 3, "calc_gradient": 16, "calc_derivative": 17, "apply_gradient": 18},
    "relu2": {"forward": 4, "calc_derivative": 14},
    "fc3": {"forward": 5, "calc_gradient": 10, "calc_derivative": 11, "apply_gradient": 12},
    "loss": {"forward": 6, "calc_derivative": 8},
}

# root tensor -> (EO list, start, end, bytes); relu outputs and gradients share their input's
# bytes (in place), the input layer's output is a view of the data.
EXPECTED_SPANS = {
    "in:input": ((0, 1, 22), 0, 23, 32),
    "fc1:out0": ((1, 2, 3, 16, 20), 1, 21, 64),
    "fc1:out0:grad": ((17, 20, 22), 17, 23, 64),
    "fc1:weight:grad": ((22, 24), 22, 25, 128),
    "fc1:bias:grad": ((22, 24), 22, 25, 32),
    "fc2:out0": ((3, 4, 5, 10, 14), 3, 15, 48),
    "fc2:out0:grad": ((11, 14, 16, 17), 11, 18, 48),
    "fc2:weight:grad": ((16, 18), 16, 19, 192),
    "fc2:bias:grad": ((16, 18), 16, 19, 24),
    "fc3:out0": ((5, 6), 5, 7, 24),
    "fc3:out0:grad": ((8, 10, 11), 8, 12, 24),
    "fc3:weight:grad": ((10, 12), 10, 13, 72),
    "fc3:bias:grad": ((10, 12), 10, 13, 12),
    "loss:label": ((6, 8), 6, 9, 24),
    "loss:out0": ((6, 8), 6, 9, 24),
}
WEIGHTS = {"fc1:weight": 128, "fc1:bias": 32, "fc2:weight": 192, "fc2:bias": 24,
           "fc3:weight": 72, "fc3:bias": 12}
TENSOR_CURVE = [32, 96, 96, 144, 144, 168, 216, 192, 216, 168, 252, 300, 276, 192, 192, 144,
                360, 424, 376, 160, 160, 96, 256, 160, 160, 0, 0, 0]


def test_hand_worked_mlp_execution_orders(mlp3_graph):
    eo = execution_order(mlp3_graph)
    assert eo.n_eo == 28
    for layer, steps in EXPECTED_EOS.items():
        for step, value in steps.items():
            assert eo.layer_eos[layer][step] == value, (layer, step)
    ops = {(mlp3_graph.nodes[o]["layer"], mlp3_graph.nodes[o]["step"]) for o in eo.op_eo}
    assert ("fc1", "calc_derivative") not in ops  # nothing upstream learns
    assert ("in", "calc_gradient") not in ops


def test_hand_worked_mlp_lifespans(mlp3_graph):
    eo = execution_order(mlp3_graph)
    spans = lifespans(mlp3_graph, eo)
    tensor_spans = {k: s for k, s in spans.items() if s.pool == "tensor"}
    assert set(tensor_spans) == set(EXPECTED_SPANS)
    for root, (eos, start, end, nbytes) in EXPECTED_SPANS.items():
        s = spans[root]
        assert (s.eos, s.start, s.end, s.nbytes) == (eos, start, end, nbytes), root
    for w, nbytes in WEIGHTS.items():
        assert (spans[w].start, spans[w].end, spans[w].nbytes) == (0, 28, nbytes)
    assert set(spans["fc1:out0"].members) == {"fc1:out0", "relu1:out0"}
    assert list(live_bytes(spans, eo.n_eo, ("tensor",))) == TENSOR_CURVE
    assert lower_bound(spans, eo.n_eo, ("tensor",)) == 424
    assert lower_bound(spans, eo.n_eo) == 424 + 460
    assert no_reuse_bytes(spans) == sum(e[3] for e in EXPECTED_SPANS.values()) + 460


def test_apply_at_end_keeps_every_gradient_to_the_end(mlp3_graph):
    eo = execution_order(mlp3_graph, "apply-at-end")
    spans = lifespans(mlp3_graph, eo)
    updates = [eo.layer_eos[layer]["apply_gradient"] for layer in ("fc1", "fc2", "fc3")]
    assert min(updates) > max(eo.layer_eos[layer]["calc_derivative"] for layer in EXPECTED_EOS)
    assert spans["fc3:weight:grad"].end == eo.layer_eos["fc3"]["apply_gradient"] + 1
    base = execution_order(mlp3_graph)
    assert lower_bound(spans, eo.n_eo) >= lower_bound(lifespans(mlp3_graph, base), base.n_eo)


def test_nntrainer_order_beats_apply_at_end_on_resnet18():
    graph = build_training_graph(get_model("resnet18"))
    bounds = {}
    for order in ("nntrainer", "apply-at-end"):
        eo = execution_order(graph, order)
        bounds[order] = lower_bound(lifespans(graph, eo), eo.n_eo)
    assert bounds["nntrainer"] < bounds["apply-at-end"]


def test_unknown_order_lists_the_valid_ones(mlp3_graph):
    with pytest.raises(UnknownName, match="nntrainer"):
        execution_order(mlp3_graph, "fastest")
