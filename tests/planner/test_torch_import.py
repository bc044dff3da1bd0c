"""PyTorch modules imported through torch.export (skipped without PyTorch): torchvision's
ResNet-18 and MobileNetV2, a TransformerEncoder and an LSTM classifier with their published
(or PyTorch's own) parameter counts and the zoo's lower bounds; what is refused, and why."""

from __future__ import annotations

import os

import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import InvalidShape, TrainplanError
from trainplan.planner.importers.builder import UnsupportedOperator
from trainplan.planner.order import execution_order, lifespans, lower_bound
from trainplan.planner.zoo import EXAMPLES_DIR, get_model
from trainplan.planner.zoo.sequence import lstm_classifier

torch = pytest.importorskip("torch")

MODELS = os.path.join(EXAMPLES_DIR, "torch_models.py")
# factory, input shape, exact trainable parameters, the zoo model that is the same network
ACCEPTANCE = [
    ("resnet18", (3, 224, 224), 11_689_512, lambda: get_model("resnet18", batch=8)),
    ("mobilenetv2", (3, 224, 224), 3_504_872, lambda: get_model("mobilenetv2", batch=8)),
    ("transformer", (128,), 5_534_730, lambda: get_model("transformer", batch=8)),
    ("lstm", (28, 28), 214_282, lambda: lstm_classifier(batch=8, integrate_bias=False)),
]


def parameters(graph) -> int:
    return sum(d["nbytes"] // 4 for n, d in graph.nodes(data=True)
               if d.get("role") == "weight" and d.get("learnable") and "@" not in n)


def bound(graph) -> int:
    eo = execution_order(graph)
    return lower_bound(lifespans(graph, eo), eo.n_eo)


def torch_parameters(name) -> int:
    import importlib.util
    spec = importlib.util.spec_from_file_location("reference_models", MODELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return sum(p.numel() for p in getattr(module, name)().parameters())


@pytest.mark.parametrize("case", ACCEPTANCE, ids=[c[0] for c in ACCEPTANCE])
def test_parameters_exact_and_the_zoos_lower_bound(case):
    name, shape, count, zoo = case
    spec = get_model(f"{MODELS}:{name}", input_shape=shape, batch=8)
    graph = build_training_graph(spec)
    assert parameters(graph) == count == torch_parameters(name)
    zoo_graph = build_training_graph(zoo())
    assert parameters(zoo_graph) == count
    assert bound(graph) == bound(zoo_graph)
    assert len(graph.graph["layers"]) == len(zoo_graph.graph["layers"])


def test_weights_come_along_in_our_layouts():
    spec = get_model(f"{MODELS}:small_lstm", input_shape=(5, 4), batch=2)
    assert spec.weights["lstm/l0:weight_ih"].shape == (4, 32)  # PyTorch's (32, 4), transposed
    assert spec.meta["weight_sources"]["lstm/l0:weight_ih"] == {
        "param": "lstm.weight_ih_l0", "transpose": True}
    assert [x.type for x in spec.layers] == ["input", "lstm", "lstm", "fully_connected",
                                             "cross_softmax"]
    assert not spec.layers[2].props["return_sequences"]  # out[:, -1] is its last step


def test_the_runtime_starts_from_the_modules_weights():
    from trainplan.planner.importers.torch_blocks import take
    from trainplan.runtime.session import Session
    torch.manual_seed(0)
    spec = get_model(f"{MODELS}:small_transformer", input_shape=(6,), batch=2)
    torch.manual_seed(0)
    import importlib.util
    loader = importlib.util.spec_from_file_location("reference_models", MODELS)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    params = {n: p.detach().numpy() for n, p in module.small_transformer().named_parameters()}
    with Session.reference(build_training_graph(spec)) as session:
        state = session.state()
    for w, source in spec.meta["weight_sources"].items():
        assert (state[w] == take(params, source)).all(), w


def test_module_path_names_layers():
    spec = get_model(f"{MODELS}:resnet18", input_shape=(3, 32, 32), batch=2)
    names = [x.name for x in spec.layers]
    assert names[:5] == ["input", "conv1", "bn1", "relu", "maxpool"]
    assert "layer2.0.downsample.0" in names and "layer1.0.relu_1" in names


def test_a_loss_module_picks_the_loss_layer():
    spec = get_model(f"{MODELS}:small_mlp_mse", input_shape=(6,), batch=2)
    assert spec.layers[-1].type == "mse"
    assert [x.type for x in spec.layers][2:4] == ["layer_normalization", "activation"]


def test_unsupported_op_names_op_node_line_and_the_supported():
    with pytest.raises(UnsupportedOperator) as info:
        get_model(f"{MODELS}:unsupported_op", input_shape=(4,), batch=2)
    message = str(info.value)
    assert "aten.sort" in message and "node 'sort'" in message
    with open(MODELS) as fh:
        line = next(i for i, t in enumerate(fh, 1) if "torch.sort(x" in t)
    assert f"torch_models.py:{line}" in message
    assert "aten.conv2d.default" in message and "nn.MultiheadAttention" in message


def test_input_shape_is_required():
    with pytest.raises(InvalidShape, match="--input-shape"):
        get_model(f"{MODELS}:small_cnn")


def test_a_factory_that_does_not_return_a_module_is_named(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("def build():\n    return 3\n\ndef fails():\n    raise ValueError('no')\n")
    with pytest.raises(TrainplanError, match="returned int, not an nn.Module"):
        get_model(f"{path}:build", input_shape=(3,))
    with pytest.raises(TrainplanError, match="factory failed: ValueError: no"):
        get_model(f"{path}:fails", input_shape=(3,))
    with pytest.raises(TrainplanError, match="has no function 'missing'"):
        get_model(f"{path}:missing", input_shape=(3,))


@pytest.mark.parametrize("body,reason", [
    ("nn.MultiheadAttention(4, 2)", "batch_first=False"),
    ("nn.MultiheadAttention(4, 2, dropout=0.1, batch_first=True)", "attention dropout"),
])
def test_attention_settings_we_do_not_compute_are_refused(tmp_path, body, reason):
    path = tmp_path / "att.py"
    path.write_text("from torch import nn\nclass M(nn.Module):\n    def __init__(self):\n"
                    f"        super().__init__()\n        self.a = {body}\n"
                    "        self.fc = nn.Linear(12, 2)\n"
                    "    def forward(self, x):\n        y, _ = self.a(x, x, x)\n"
                    "        return self.fc(y.flatten(1))\n"
                    "def build():\n    return M()\n")
    with pytest.raises(UnsupportedOperator, match=reason):
        get_model(f"{path}:build", input_shape=(3, 4))
