"""ONNX files imported (skipped without the onnx package): graphs built with onnx.helper, each
checked against ONNX's reference evaluator (the loss our runtime computes from the imported
weights on one batch); torch.onnx.export of the acceptance models (when PyTorch is there) with
the counts and lower bounds of their PyTorch import; an unsupported operator named."""

from __future__ import annotations

import os

import numpy as np
import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import InvalidShape
from trainplan.planner.importers.builder import UnsupportedOperator
from trainplan.planner.order import execution_order, lifespans, lower_bound
from trainplan.planner.zoo import EXAMPLES_DIR, get_model
from trainplan.runtime.session import Session

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

MODELS = os.path.join(EXAMPLES_DIR, "torch_models.py")
RNG = np.random.default_rng(0)


def init(name, *shape, scale=0.3):
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def save(tmp_path, nodes, inputs, output, initializers, name="m", opset=17):
    graph = helper.make_graph(nodes, name, inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_operatorsetid("", opset)])
    path = str(tmp_path / f"{name}.onnx")
    onnx.save(model, path)
    return path, model


def reference_logits(model, x):
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model).run(None, {model.graph.input[0].name: x})[0]


def our_loss(path, x, label, batch, **kw):
    spec = get_model(path, batch=batch, **kw)
    graph = build_training_graph(spec, optimizer="sgd")
    layers = graph.graph["layers"]
    data = next(x_["name"] for x_ in layers if x_["placeholder"])
    loss = next(x_["name"] for x_ in layers if x_["is_loss"])
    with Session.reference(graph) as session:
        return spec, session.step({f"{data}:input": x.astype(np.float32),
                                   f"{loss}:label": label}).loss


def cross_entropy(logits, label):
    z = logits - logits.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - (z * label).sum(axis=1)))


def one_hot(batch, classes):
    return np.eye(classes, dtype=np.float32)[RNG.integers(0, classes, batch)]


def test_cnn_graph_maps_and_computes_the_reference(tmp_path):
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "be", "mu", "var"], ["n"],
                         name="bn", epsilon=1e-5),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("AveragePool", ["p"], ["a"], name="avg", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["a"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1),
    ]
    inits = [init("w", 4, 3, 3, 3), init("b", 4), init("g", 4), init("be", 4), init("mu", 4),
             numpy_helper.from_array(np.ones(4, np.float32), "var"), init("fw", 5, 16),
             init("fb", 5)]
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])
    path, model = save(tmp_path, nodes, [x_info], y_info, inits, opset=15)
    x = RNG.standard_normal((4, 3, 8, 8)).astype(np.float32)
    label = one_hot(4, 5)
    spec, loss = our_loss(path, x, label, 4)
    assert [layer.type for layer in spec.layers] == [
        "input", "conv2d", "batch_normalization", "activation", "pooling2d", "pooling2d",
        "flatten", "fully_connected", "cross_softmax"]
    # the reference evaluator's BatchNormalization (training_mode 0) uses the running
    # statistics: compare in inference, where ours uses them too
    logits = reference_logits(model, x)
    assert spec.weights["fc:weight"].shape == (16, 5)
    graph = build_training_graph(spec)
    with Session.reference(graph) as session:
        result = session.evaluate({"input:input": x, "loss:label": label})
    assert result.loss == pytest.approx(cross_entropy(logits, label), rel=1e-5)
    assert np.isfinite(loss)


def test_matmul_add_layernorm_gelu_concat_reshape_softmax(tmp_path):
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="l1/MatMul"),
        helper.make_node("Add", ["b1", "h"], ["hb"], name="l1/Add"),
        helper.make_node("LayerNormalization", ["hb", "g", "be"], ["n"], name="norm",
                         epsilon=1e-5),
        helper.make_node("Gelu", ["n"], ["a"], name="gelu", approximate="tanh"),
        helper.make_node("Concat", ["a", "x"], ["c"], name="cat", axis=1),
        helper.make_node("Reshape", ["c", "shape"], ["r"], name="reshape"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat"),
        helper.make_node("Identity", ["f"], ["i"], name="id"),
        helper.make_node("Dropout", ["i"], ["d"], name="drop"),
        helper.make_node("MatMul", ["d", "w2"], ["o"], name="l2"),
        helper.make_node("Softmax", ["o"], ["y"], name="softmax", axis=-1),
    ]
    inits = [init("w1", 6, 8), init("b1", 8), init("g", 8), init("be", 8), init("w2", 14, 3),
             numpy_helper.from_array(np.array([-1, 2, 7], np.int64), "shape")]
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    path, model = save(tmp_path, nodes, [x_info], y_info, inits, opset=20)
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    label = one_hot(4, 3)
    spec, loss = our_loss(path, x, label, 4)
    types = [layer.type for layer in spec.layers]
    assert types == ["input", "fully_connected", "layer_normalization", "activation", "concat",
                     "reshape", "flatten", "fully_connected", "cross_softmax"]
    assert spec.layers[1].props["bias"] and spec.weights["l1/MatMul:bias"].shape == (8,)
    probabilities = reference_logits(model, x)  # the graph ends in Softmax
    assert loss == pytest.approx(cross_entropy(np.log(probabilities), label), rel=1e-5)


def test_gather_of_a_table_is_an_embedding(tmp_path):
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], name="emb"),
             helper.make_node("Flatten", ["e"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], name="fc")]
    inits = [init("table", 10, 4), init("w", 12, 2), init("b", 2)]
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 3])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    path, model = save(tmp_path, nodes, [ids], y_info, inits)
    x = RNG.integers(0, 10, (4, 3))
    label = one_hot(4, 2)
    spec, loss = our_loss(path, x, label, 4)
    assert spec.layers[1].type == "embedding" and spec.meta["integer_input"]
    assert loss == pytest.approx(cross_entropy(reference_logits(model, x), label), rel=1e-5)


@pytest.mark.parametrize("layout", [0, 1])
def test_lstm_gates_are_reordered(tmp_path, layout):
    """ONNX's LSTM gates are i, o, f, c; ours (PyTorch's) i, f, g, o. Layout 0 runs on
    (time, batch), reached through the Transposes torch.onnx.export writes; layout 1 on
    (batch, time). Both give the reference evaluator's loss (computed on layout 0, which every
    onnx version's reference implements)."""
    hidden = 5
    inits = [init("W", 1, 4 * hidden, 3), init("R", 1, 4 * hidden, hidden),
             init("B", 1, 8 * hidden), init("w", 2, hidden), init("b", 2),
             numpy_helper.from_array(np.array([1], np.int64), "dirs0"),
             numpy_helper.from_array(np.array([2], np.int64), "dirs1"),
             numpy_helper.from_array(np.array(-1, np.int64), "last")]

    def model(layout, name):
        if layout == 0:
            nodes = [helper.make_node("Transpose", ["x"], ["t"], name="in", perm=[1, 0, 2]),
                     helper.make_node("LSTM", ["t", "W", "R", "B"], ["Y", "Y_h"], name="lstm",
                                      hidden_size=hidden),
                     helper.make_node("Squeeze", ["Y", "dirs0"], ["s"], name="squeeze"),
                     helper.make_node("Gather", ["s", "last"], ["h"], name="last", axis=0)]
        else:
            nodes = [helper.make_node("LSTM", ["x", "W", "R", "B"], ["Y", "Y_h"], name="lstm",
                                      hidden_size=hidden, layout=1),
                     helper.make_node("Squeeze", ["Y", "dirs1"], ["s"], name="squeeze"),
                     helper.make_node("Gather", ["s", "last"], ["h"], name="last", axis=1)]
        nodes.append(helper.make_node("Gemm", ["h", "w", "b"], ["y"], name="fc", transB=1))
        x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 3])
        y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
        return save(tmp_path, nodes, [x_info], y_info, inits, name=name)

    x = RNG.standard_normal((3, 4, 3)).astype(np.float32)
    label = one_hot(3, 2)
    _, reference = model(0, "reference")
    path, _ = model(layout, f"layout{layout}")
    spec, loss = our_loss(path, x, label, 3)
    assert [layer.type for layer in spec.layers][1:3] == ["lstm", "fully_connected"]
    assert not spec.layers[1].props["return_sequences"]
    assert loss == pytest.approx(cross_entropy(reference_logits(reference, x), label),
                                 rel=1e-5)


def test_unsupported_operator_is_named(tmp_path):
    nodes = [helper.make_node("Sin", ["x"], ["y"], name="wave")]
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    path, _ = save(tmp_path, nodes, [x_info], y_info, [])
    with pytest.raises(UnsupportedOperator, match=r"Sin \(node 'wave'\).*supported: .*Conv"):
        get_model(path)


def test_symbolic_dimensions_need_the_input_shape(tmp_path):
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("Relu", ["f"], ["y"], name="relu")]
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "C", 4])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    path, _ = save(tmp_path, nodes, [x_info], y_info, [])
    with pytest.raises(InvalidShape, match="give --input-shape"):
        get_model(path)
    spec = get_model(path, input_shape=(3, 4))
    assert spec.layers[0].props["input_shape"] == (3, 4)
    with pytest.raises(InvalidShape, match="does not fit"):
        get_model(path, input_shape=(3, 5))


# --- torch.onnx.export of the PyTorch models ------------------------------------------------

def export(tmp_path, name, shape, ids=False):
    torch = pytest.importorskip("torch")
    import importlib.util
    spec = importlib.util.spec_from_file_location("reference_models", MODELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    made = getattr(module, name)()
    net = made[0] if isinstance(made, tuple) else made
    x = torch.zeros((2, *shape), dtype=torch.long) if ids else torch.randn(2, *shape)
    path = str(tmp_path / f"{name}.onnx")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.train(), (x,), path, dynamo=False, input_names=["x"],
                          training=torch.onnx.TrainingMode.TRAINING,
                          dynamic_axes={"x": {0: "batch"}})
    return path, net


def summary(graph):
    eo = execution_order(graph)
    params = sum(d["nbytes"] // 4 for n, d in graph.nodes(data=True)
                 if d.get("role") == "weight" and d.get("learnable") and "@" not in n)
    return params, lower_bound(lifespans(graph, eo), eo.n_eo), len(graph.graph["layers"])


@pytest.mark.parametrize("name,shape,ids", [
    ("resnet18", (3, 224, 224), False), ("mobilenetv2", (3, 224, 224), False),
    ("transformer", (128,), True), ("lstm", (28, 28), False)])
def test_exported_models_match_their_pytorch_import(tmp_path, name, shape, ids):
    path, _ = export(tmp_path, name, shape, ids)
    from_onnx = build_training_graph(get_model(path, batch=8))
    from_torch = build_training_graph(get_model(f"{MODELS}:{name}", input_shape=shape, batch=8))
    assert summary(from_onnx) == summary(from_torch)


@pytest.mark.parametrize("name,shape,ids", [
    ("small_cnn", (3, 8, 8), False), ("small_transformer", (6,), True),
    ("small_lstm", (5, 4), False), ("small_mlp_mse", (6,), False)])
def test_exported_small_models_compute_pytorchs_loss(tmp_path, name, shape, ids):
    torch = pytest.importorskip("torch")
    path, net = export(tmp_path, name, shape, ids)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 50, (4, *shape)) if ids else rng.standard_normal((4, *shape))
    xt = torch.tensor(x, dtype=torch.long if ids else torch.float32)
    out = net.train()(xt).detach().numpy()
    label = one_hot(4, out.shape[1])  # an ONNX file names no loss: cross-entropy on (B, C)
    expected = cross_entropy(out, label)
    _, loss = our_loss(path, x, label, 4)
    assert loss == pytest.approx(expected, rel=1e-5)
