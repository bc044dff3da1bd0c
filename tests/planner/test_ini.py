"""NNTrainer INI model files: loading, bad input, and parity with NNTrainer's own requests."""

import importlib
import os

import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import InvalidGraph, InvalidModelFile
from trainplan.planner.ini import parse_ini
from trainplan.planner.order import execution_order, lifespans
from trainplan.planner.zoo import EXAMPLES_DIR

DATA = EXAMPLES_DIR

# NNTrainer 0.6 on its own MNIST model (shared reference, measured): per tensor-pool request
# in request order, (bytes, valid_start, valid_end_exclusive).
PARITY_INPLACE = [
    (442368, 1, 33), (442368, 29, 36), (600, 34, 37), (24, 34, 37), (110592, 3, 26),
    (110592, 26, 30), (110592, 3, 31), (98304, 4, 24), (98304, 20, 27), (7200, 25, 28),
    (48, 25, 28), (24576, 6, 17), (24576, 14, 21), (24576, 6, 22), (1280, 8, 12),
    (1280, 11, 15), (7680, 13, 16), (40, 13, 16), (1280, 9, 10),
]
PARITY_NO_INPLACE = [
    (100352, 0, 35), (100352, 35, 39), (442368, 1, 3), (442368, 32, 36), (600, 34, 37),
    (24, 34, 37), (442368, 2, 33), (442368, 29, 33), (110592, 3, 26), (110592, 26, 30),
    (110592, 3, 31), (98304, 4, 6), (98304, 23, 27), (7200, 25, 28), (48, 25, 28),
    (98304, 5, 24), (98304, 20, 24), (24576, 6, 17), (24576, 17, 21), (24576, 6, 22),
    (24576, 7, 14), (24576, 14, 18), (1280, 8, 12), (1280, 11, 15), (7680, 13, 16),
    (40, 13, 16), (1280, 9, 10),
]
PARITY_EOS = {  # layer: (forward, calc_gradient, calc_derivative, apply_gradient)
    "inputlayer": (0, 37, 38, 39), "conv2d_c1_layer": (1, 34, 35, 36),
    "conv2d_c1_layer/activation_realized": (2, 31, 32, 33), "pooling2d_p1": (3, 28, 29, 30),
    "conv2d_c2_layer": (4, 25, 26, 27), "conv2d_c2_layer/activation_realized": (5, 22, 23, 24),
    "pooling2d_p2": (6, 19, 20, 21), "flatten": (7, 16, 17, 18),
    "outputlayer": (8, 13, 14, 15), "cross_softmax0": (9, 10, 11, 12),
}


def mnist_text() -> str:
    with open(os.path.join(DATA, "mnist.ini")) as fh:
        return fh.read()


def requests(graph):
    eo = execution_order(graph)
    spans = lifespans(graph, eo)
    return eo, [(s.nbytes, s.start, s.end) for s in spans.values() if s.pool == "tensor"], \
        sum(s.nbytes for s in spans.values() if s.pool == "weight")


@pytest.mark.parametrize("inplace,expected", [(True, PARITY_INPLACE),
                                              (False, PARITY_NO_INPLACE)])
def test_mnist_requests_match_nntrainer(inplace, expected):
    spec = parse_ini(mnist_text(), path="mnist.ini")
    graph = build_training_graph(spec, compat=True, inplace=inplace)
    eo, got, weight_pool = requests(graph)
    assert got == expected
    assert weight_pool == 46_776
    for layer, steps in PARITY_EOS.items():
        assert tuple(eo.layer_eos[layer][s] for s in ("forward", "calc_gradient",
                     "calc_derivative", "apply_gradient")) == steps


def test_file_batch_and_optimizer_are_used_unless_overridden():
    spec = parse_ini(mnist_text())
    assert spec.batch == 32 and spec.optimizer == "adam"
    assert parse_ini(mnist_text(), batch=4).batch == 4


def test_unknown_key_names_its_line():
    text = mnist_text().replace("filters = 12", "filtres = 12")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "filtres" in t)
    with pytest.raises(InvalidModelFile, match=f"mnist.ini:{line}:.*filtres"):
        parse_ini(text, path="mnist.ini")


def test_unsupported_layer_type_names_its_section():
    text = mnist_text().replace("Type = flatten", "Type = centroid_knn")
    with pytest.raises(InvalidModelFile, match=r"\[flatten\].*centroid_knn"):
        parse_ini(text)


def test_missing_input_layers_target():
    text = mnist_text().replace("input_layers = pooling2d_p2", "input_layers = pooling2d_p9")
    with pytest.raises(InvalidGraph, match="pooling2d_p9"):
        build_training_graph(parse_ini(text))


def test_keys_are_case_insensitive_and_comments_inline():
    text = mnist_text().replace("Unit = 10", "UNIT = 10   # ten digits")
    spec = parse_ini(text)
    assert next(x for x in spec.layers if x.name == "outputlayer").props["unit"] == 10


def test_malformed_line():
    with pytest.raises(InvalidModelFile, match=":3: expected 'key = value'"):
        parse_ini("[Model]\nType = NeuralNetwork\nbatch_size 32\n")


def _same_graph(a, b) -> bool:
    """Isomorphic training graphs (names aside) with the same buffers and lifespans."""
    import networkx as nx

    from trainplan.planner.order import execution_order as order

    def match(x, y):
        keys = ("kind", "role", "shape", "step", "op_type", "pool", "dtype")
        return all(x.get(k) == y.get(k) for k in keys)

    def spans(g):
        eo = order(g)
        return sorted((s.nbytes, s.start, s.end, s.role) for s in lifespans(g, eo).values())

    return spans(a) == spans(b) and nx.is_isomorphic(a, b, node_match=match)


@pytest.mark.parametrize("filename,builder", [
    ("lenet5.ini", lambda: importlib.import_module("trainplan.planner.zoo").get_model("lenet5")),
    ("resnet_small.ini", lambda: importlib.import_module("trainplan.planner.zoo.vision").resnet18(
        input_shape=(3, 32, 32), classes=10, blocks=(1, 1), widths=(64, 128))),
])
def test_ini_gives_the_zoo_graph(filename, builder):
    from trainplan.planner.ini import load_ini
    from_file = build_training_graph(load_ini(os.path.join(DATA, filename)))
    from_zoo = build_training_graph(builder())
    assert _same_graph(from_file, from_zoo)


def test_flatten_and_activation_realised_in_nntrainer_order():
    text = ("[Model]\nLoss = mse\nbatch_size = 2\n[conv]\nType = conv2d\nInput_Shape = 1:6:6\n"
            "filters = 2\nkernel_size = 3,3\nActivation = relu\nflatten = true\n"
            "[fc]\nType = fully_connected\nUnit = 3\n")
    spec = parse_ini(text)
    chain = [(x.name, x.inputs) for x in spec.layers]
    assert chain == [("conv", ()), ("conv/activation_realized", ("conv",)),
                     ("conv/flatten_realized", ("conv/activation_realized",)),
                     ("fc", ("conv/flatten_realized",)), ("mse0", ("fc",))]
    graph = build_training_graph(spec, compat=True)
    assert graph.nodes["conv:input"]["pool"] == "external"  # the data is a placeholder
    assert graph.nodes["fc:out0"]["shape"] == (2, 3)


def test_compat_topological_order_puts_the_last_branch_first():
    text = ("[Model]\nLoss = mse\nbatch_size = 2\n[x]\nType = input\nInput_Shape = 1:1:4\n"
            "[a]\nType = fully_connected\nUnit = 4\ninput_layers = x\n"
            "[b]\nType = fully_connected\nUnit = 4\ninput_layers = x\n"
            "[add]\nType = addition\ninput_layers = a, b\n")
    spec = parse_ini(text)
    native = [x["name"] for x in build_training_graph(spec).graph["layers"]]
    compat = [x["name"] for x in build_training_graph(spec, compat=True).graph["layers"]]
    assert native == ["x", "x/multiout", "a", "b", "add", "mse0"]
    assert compat == ["x", "x/generated_out_0", "b", "a", "add", "mse0"]


def test_compat_tensor_pool_ends_at_the_earliest_layer_doing_backward_work():
    text = mnist_text().replace("filters = 6\n", "filters = 6\ntrainable = false\n")
    spec = parse_ini(text)
    # conv1 is frozen and nothing before conv2 learns: conv2 is the first to work backward
    assert build_training_graph(spec, compat=True).graph["tensor_pool_end"] == "conv2d_c2_layer"
    assert build_training_graph(spec, compat=True, inplace=False).graph["tensor_pool_end"] \
        == "inputlayer"
