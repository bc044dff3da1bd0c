"""The graph builder: steps, frozen layers, optimizers, in-place decisions, bad input."""

import networkx as nx
import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import InvalidGraph, InvalidShape, UnknownName
from trainplan.planner.graph import check_graph, tensors
from trainplan.planner.spec import LayerDef, ModelSpec
from trainplan.planner.zoo import get_model


def roles(graph, role):
    return [t for t in tensors(graph) if graph.nodes[t]["role"] == role]


@pytest.mark.parametrize("optimizer,per_weight", [("sgd", 0), ("momentum", 1), ("adam", 2)])
def test_optimizer_state_tensors(mlp3_spec, optimizer, per_weight):
    graph = build_training_graph(mlp3_spec, optimizer=optimizer)
    weights = [w for w in roles(graph, "weight") if graph.nodes[w]["alias"] is None]
    states = [s for s in roles(graph, "optimizer_state") if graph.nodes[s]["alias"] is None]
    assert len(states) == per_weight * len(weights)
    assert all(graph.nodes[s]["pool"] == "weight" for s in states)


def test_frozen_layers_have_no_gradient_state_or_derivative():
    graph = build_training_graph(get_model("lenet5"), freeze_until="fc2")
    frozen = {"input", "conv1", "conv1/relu", "pool1", "conv2", "conv2/relu", "pool2",
              "flatten", "fc1", "fc1/relu", "fc2"}
    for op, data in graph.nodes(data=True):
        if data["kind"] != "op" or data["layer"] not in frozen:
            continue
        assert data["step"] == "forward", op  # nothing before the head runs backward
    grads = roles(graph, "gradient")
    assert grads and all(graph.nodes[g]["layer"] == "fc3" for g in grads)
    states = [s for s in roles(graph, "optimizer_state") if graph.nodes[s]["alias"] is None]
    assert len(states) == 4  # fc3 weight and bias, two adam moments each
    layers = {layer["name"]: layer for layer in graph.graph["layers"]}
    assert layers["fc2"]["slots"] == 1 and layers["fc3"]["slots"] == 3
    assert layers["loss"]["slots"] == 3  # weightless but trainable, as NNTrainer counts it


def test_freeze_until_unknown_layer():
    with pytest.raises(UnknownName, match="conv1"):
        build_training_graph(get_model("lenet5"), freeze_until="conv9")


def test_inplace_follows_the_hazard_rule():
    graph = build_training_graph(get_model("resnet18_cifar", batch=2))
    layers = {layer["name"]: layer for layer in graph.graph["layers"]}
    assert layers["bn1"]["inplace"] == "non_restricting"
    assert layers["relu"]["inplace"] == "non_restricting"
    assert layers["flatten"]["inplace"] == "restricting"
    assert graph.nodes["relu:out0"]["alias"] == "bn1:out0"


def test_consecutive_activations_do_not_overwrite_a_saved_output():
    spec = ModelSpec("acts", (
        LayerDef("in", "input", {"input_shape": (4,)}),
        LayerDef("fc", "fully_connected", {"unit": 4}, ("in",)),
        LayerDef("a1", "activation", {"activation": "sigmoid"}, ("fc",)),
        LayerDef("a2", "activation", {"activation": "tanh"}, ("a1",)),
        LayerDef("loss", "mse", {}, ("a2",)),
    ), batch=2)
    layers = {x["name"]: x for x in build_training_graph(spec).graph["layers"]}
    assert layers["a1"]["inplace"] == "non_restricting"
    assert layers["a2"]["inplace"] == "none"  # a1's backward still reads its output


def test_no_inplace_makes_every_output_its_own_tensor():
    graph = build_training_graph(get_model("resnet18_cifar", batch=2), inplace=False)
    assert all(layer["inplace"] == "none" for layer in graph.graph["layers"])
    assert all(graph.nodes[t]["alias"] is None for t in tensors(graph) if "@" not in t)


def test_residual_fanout_gets_a_multiout():
    graph = build_training_graph(get_model("resnet18_cifar", batch=2))
    names = [layer["name"] for layer in graph.graph["layers"]]
    assert "relu/multiout" in names
    assert names.index("relu/multiout") == names.index("relu") + 1


def test_non_positive_batch():
    with pytest.raises(InvalidShape, match="positive"):
        build_training_graph(get_model("mlp"), batch=0)


def test_shape_that_empties_a_layer():
    with pytest.raises(InvalidShape, match="empty"):
        build_training_graph(get_model("lenet5", input_shape=(1, 8, 8)))


def test_cycle_in_model_is_refused():
    spec = ModelSpec("loop", (
        LayerDef("in", "input", {"input_shape": (4,)}),
        LayerDef("a", "addition", {}, ("in", "b")),
        LayerDef("b", "activation", {"activation": "relu"}, ("a",)),
        LayerDef("loss", "mse", {}, ("b",)),
    ))
    with pytest.raises(InvalidGraph, match="cycle"):
        build_training_graph(spec)


def test_missing_input_layer_target():
    spec = ModelSpec("bad", (
        LayerDef("in", "input", {"input_shape": (4,)}),
        LayerDef("fc", "fully_connected", {"unit": 2}, ("nowhere",)),
    ))
    with pytest.raises(InvalidGraph, match="nowhere"):
        build_training_graph(spec)


def test_check_graph_rejects_a_cycle_and_a_bad_role(mlp3_graph):
    bad = mlp3_graph.copy()
    bad.add_edge("fc1:out0", "in:forward")
    with pytest.raises(InvalidGraph, match="cycle|written"):
        check_graph(bad)
    bad = mlp3_graph.copy()
    bad.nodes["fc1:out0"]["role"] = "activations"
    with pytest.raises(InvalidGraph, match="role"):
        check_graph(bad)
    bad = nx.DiGraph(mlp3_graph)
    bad.add_edge("fc1:forward", "fc2:forward")
    with pytest.raises(InvalidGraph, match="joins two op"):
        check_graph(bad)


def test_window_layers_declare_the_rows_their_gathers_copy():
    """One row per (sample, channel, tap, output row) in im2col and col2im; one per (sample,
    channel, tap) where a tap is a shift of whole planes (stride 1: padded with rows as wide
    as the input's, or unpadded with calc_derivative's rows widened), plus the rows of the
    out-of-plane bands and strips a shift plan zeroes; one per output row of every pass
    pooling makes over a tap; none where the input itself is the column matrix, and none for
    global pooling."""
    g = build_training_graph(get_model("lenet5", batch=4), batch=4)
    rows = {op: d["gather_rows"] for op, d in g.nodes(data=True) if d.get("kind") == "op"}
    conv1 = 4 * 1 * 5 * 5 * 28  # batch, channels, 5x5 taps, 28 output rows
    assert rows["conv1:forward"] == rows["conv1:calc_gradient"] == conv1
    assert rows["conv2:calc_derivative"] == 4 * 6 * 5 * 5  # unpadded, stride 1: rows widened
    # max pooling 2x2 tiling the plane: forward copies the first tap, then four passes over
    # each other tap; calc_derivative two passes (compare, multiply) over each tap
    assert rows["pool1:forward"] == 4 * 6 * 14 * (1 + 4 * 3)
    assert rows["pool1:calc_derivative"] == 4 * 6 * 14 * 4 * 2
    assert rows["conv1:apply_gradient"] == rows["fc1:forward"] == 0
    res = build_training_graph(get_model("resnet18_cifar", batch=2), batch=2)
    # a padded stride-1 3x3 convolution gathers whole planes, and zeroes two bands of one row
    # across 3 taps and two strips of one column on every output row of 3 taps; a strided
    # one gathers row by row
    planes = 2 * 64
    assert (res.nodes["layer1.0/conv1:forward"]["gather_rows"]
            == planes * (9 + 2 * 3 + 2 * 3 * 32))
    # its derivative, a convolution of the output gradient (64 filters), gathers the same
    assert (res.nodes["layer1.0/conv1:calc_derivative"]["gather_rows"]
            == planes * (9 + 2 * 3 + 2 * 3 * 32))
    assert res.nodes["layer2.0/conv1:forward"]["gather_rows"] == planes * 3 * 3 * 16
    net = build_training_graph(get_model("mobilenetv2_cifar", batch=2), batch=2)
    pointwise = [op for op, d in net.nodes(data=True) if d.get("op_type") == "conv2d"
                 and d["step"] == "forward" and d["gather_rows"] == 0]
    global_pool = [op for op, d in net.nodes(data=True) if d.get("op_type") == "pooling2d"]
    assert pointwise and global_pool
    assert all(net.nodes[op]["gather_rows"] == 0 for op in global_pool)
