"""NNTrainer's own 27 example INI files (data/nntrainer/, as in nnstreamer/nntrainer): each
loads or is refused with its reason, never a traceback; the rules they exercise, one by one."""

from __future__ import annotations

import os

import numpy as np
import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import InvalidModelFile, TrainplanError
from trainplan.planner.ini import load_ini, parse_ini
from trainplan.planner.zoo import get_model
from trainplan.runtime.data import synthetic
from trainplan.runtime.session import Session

DATA = os.path.join(os.path.dirname(__file__), "data", "nntrainer")
APPS = "Applications"
# file -> None (loads and builds, NNTrainer-compatible and native), or what its refusal says
EXPECTED = {
    f"{APPS}/AlexNet/res/alex.ini": None,
    f"{APPS}/Custom/LayerClient/res/custom_layer_client.ini": r"custom_pow.*plugin layer",
    f"{APPS}/Layers/res/Conv.ini": None,
    f"{APPS}/Layers/res/LSTM.ini": None,
    f"{APPS}/Layers/res/Linear.ini": None,
    f"{APPS}/Layers/res/Model_A_Conv.ini": None,
    f"{APPS}/Layers/res/Model_A_Linear.ini": None,
    f"{APPS}/Layers/res/Model_C_Conv.ini": None,
    f"{APPS}/Layers/res/Model_C_Linear.ini": None,
    f"{APPS}/LogisticRegression/res/LogisticRegression.ini": None,
    f"{APPS}/MNIST/res/mnist.ini": None,
    f"{APPS}/MNIST/res/mnist_valid.ini": None,
    f"{APPS}/ProductRatings/res/product_ratings_model.ini": None,
    f"{APPS}/ReinforcementLearning/DeepQ/res/DeepQ.ini": None,
    f"{APPS}/Resnet/res/resnet18.ini": None,
    f"{APPS}/TFlite_export/res/fc_model.ini": None,
    f"{APPS}/Tizen_native/CustomShortcut/res/model.ini": None,
    f"{APPS}/TransferLearning/CIFAR_Classification/res/Classification.ini": None,
    f"{APPS}/TransferLearning/CIFAR_Classification/res/Classification_func.ini":
        r"mobilenetv2.tflite.*TensorFlow Lite",
    f"{APPS}/TransferLearning/CIFAR_Classification/res/Classification_new.ini": None,
    f"{APPS}/TransferLearning/Draw_Classification/res/Training.ini":
        r"ssd_mobilenet_v2_coco_feature.tflite.*TensorFlow Lite",
    f"{APPS}/VGG/res/vgg.ini": None,
    f"{APPS}/VGG/res/vgg_small.ini": None,
    "test/test_models/models/mnist.ini": None,
    "test/test_models/models/mnist_inf.ini": r"no loss.*inference model",
    "test/test_models/models/simple_fc.ini": r"no \[Model\].*only as a backbone",
    "test/test_models/models/simple_fc_backbone.ini": r"no \[Model\].*only as a backbone",
}
# small enough to train one step of at batch 2 in a test
RUNNABLE = ["LSTM.ini", "LogisticRegression.ini", "product_ratings_model.ini", "DeepQ.ini",
            "fc_model.ini", "Classification_new.ini", "Model_C_Linear.ini", "mnist.ini"]


def path(name: str) -> str:
    return os.path.join(DATA, name)


def test_the_data_holds_all_27_files():
    found = {os.path.relpath(os.path.join(d, f), DATA) for d, _, files in os.walk(DATA)
             for f in files if f.endswith(".ini")}
    assert found == set(EXPECTED) and len(found) == 27


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_file_loads_or_names_its_refusal(name):
    reason = EXPECTED[name]
    if reason is None:
        for compat in (True, False):
            graph = build_training_graph(get_model(path(name)), compat=compat)
            assert graph.graph["layers"][-1]["is_loss"]
        return
    with pytest.raises(TrainplanError, match=reason):
        build_training_graph(get_model(path(name)), compat=True)


def test_at_least_20_load():
    assert sum(reason is None for reason in EXPECTED.values()) >= 20


@pytest.mark.parametrize("name", RUNNABLE)
def test_small_examples_train_a_step(name):
    full = next(p for p in EXPECTED if p.endswith("/" + name))
    graph = build_training_graph(load_ini(path(full), batch=2))
    batch = next(synthetic(graph, 2, seed=0).batches(2, None))
    with Session.reference(graph) as session:
        assert np.isfinite(session.step(batch).loss)


def _layer(spec, name):
    return next(x for x in spec.layers if x.name == name)


def test_quoted_values_are_taken_without_quotes():
    """AlexNet and the Layers benchmarks write padding = "same" (iniparser strips quotes)."""
    graph = build_training_graph(get_model(path(f"{APPS}/Layers/res/Conv.ini")), compat=True)
    assert graph.nodes["conv2d_c1_layer:out0"]["shape"] == (64, 3, 112, 112)
    text = '[Model]\nloss = mse\n[x]\ntype = input\ninput_shape = "1:1:4" # "c"\n' \
        '[fc]\ntype = fully_connected\nunit = \'3\'\n'
    spec = parse_ini(text)
    assert _layer(spec, "x").props["input_shape"] == (1, 1, 4)
    assert _layer(spec, "fc").props["unit"] == 3


def test_names_are_lowercased_as_iniparser_does():
    spec = get_model(path(f"{APPS}/Resnet/res/resnet18.ini"))
    assert _layer(spec, "b1_1_add").inputs == ("b1_residue_2_conv_4", "out0")


def test_old_dataset_key_buffersize_is_accepted():
    spec = get_model(path(f"{APPS}/Tizen_native/CustomShortcut/res/model.ini"))
    assert spec.batch == 10 and _layer(spec, "inputlayer").props["input_shape"] == (7, 7, 1280)


def test_legacy_dialect_reads_as_the_first_parser_did():
    """InputLayer's HiddenSize is its width, a (Fully)Connected or Output layer's its units;
    Softmax = true on the OutputLayer is its activation, fused into the cross loss."""
    spec = get_model(path(f"{APPS}/TransferLearning/CIFAR_Classification/res/"
                          "Classification_new.ini"))
    assert [(x.name, x.type) for x in spec.layers] == [
        ("inputlayer", "input"), ("fc1layer", "fully_connected"),
        ("batchnormalization", "batch_normalization"), ("outputlayer", "fully_connected"),
        ("cross_softmax0", "cross_softmax")]
    assert _layer(spec, "inputlayer").props["input_shape"] == (1, 1, 62720)
    assert _layer(spec, "outputlayer").props["unit"] == 10


def test_split_feeds_two_embeddings():
    spec = get_model(path(f"{APPS}/ProductRatings/res/product_ratings_model.ini"))
    assert spec.batch == 1  # NNTrainer's default batch_size
    graph = build_training_graph(spec, batch=20, compat=True)
    layers = {x["name"]: x for x in graph.graph["layers"]}
    assert layers["split"]["outputs"] == [[20, 1, 1, 1]] * 2
    assert layers["user_embed"]["inputs"] == [("split", 0)]
    assert layers["product_embed"]["outputs"] == [[20, 1, 1, 5]]
    assert layers["concat"]["outputs"] == [[20, 2, 1, 5]]  # channel: input channel is 1


def test_type_output_is_a_multiout_with_the_slots_its_readers_name():
    """ResNet's [outN] Type=output sections are one-output multiouts (as NNTrainer measured
    them); read twice, each gets NNTrainer's realised <name>/generated_out_0 behind it."""
    spec = get_model(path(f"{APPS}/Resnet/res/resnet18.ini"))
    assert _layer(spec, "out0").type == "multiout"
    assert _layer(spec, "out0").props["outputs"] == 1
    names = [x["name"] for x in build_training_graph(spec, compat=True).graph["layers"]]
    assert names.index("out0/generated_out_0") == names.index("out0") + 1


def test_lstm_reads_nntrainer_shapes():
    """LSTM.ini's input 1:1:150528 is one time step of 150528 features; NNTrainer's LSTM
    keeps separate input and hidden biases unless integrate_bias is set."""
    graph = build_training_graph(get_model(path(f"{APPS}/Layers/res/LSTM.ini")), compat=True)
    assert graph.nodes["lstmlayer:out0"]["shape"] == (64, 1, 1, 10)
    assert graph.nodes["lstmlayer:weight_ih"]["shape"] == (150528, 40)
    assert graph.nodes["lstmlayer:bias_ih"]["shape"] == (40,)
    assert graph.nodes["lstmlayer:bias_hh"]["shape"] == (40,)
    assert graph.nodes["lstmlayer:ifgo"]["shape"] == (64, 1, 40)


def test_cross_with_sigmoid_fuses_into_cross_sigmoid():
    spec = get_model(path(f"{APPS}/LogisticRegression/res/LogisticRegression.ini"))
    assert [x.type for x in spec.layers] == ["input", "fully_connected", "cross_sigmoid"]


def test_cross_without_softmax_or_sigmoid_is_refused():
    text = "[Model]\nloss = cross\n[x]\ntype = input\ninput_shape = 1:1:4\n" \
        "[fc]\ntype = fully_connected\nunit = 3\nactivation = relu\n"
    with pytest.raises(InvalidModelFile, match="softmax or sigmoid"):
        parse_ini(text)


def test_ini_backbone_is_spliced_in_place(tmp_path):
    """A section naming another INI takes that file's layers (its [Model] ignored), with the
    section's trainable flag; following sections read its last layer."""
    backbone = os.path.join(DATA, "test", "test_models", "models", "simple_fc.ini")
    model = tmp_path / "model.ini"
    model.write_text(f"[Model]\nloss = mse\nbatch_size = 4\n[base]\nbackbone = {backbone}\n"
                     "trainable = false\n[head]\ntype = fully_connected\nunit = 3\n")
    spec = load_ini(str(model))
    assert [(x.name, x.trainable) for x in spec.layers] == [
        ("fc0", False), ("flat", False), ("head", True), ("mse0", True)]
    assert _layer(spec, "head").inputs == ("flat",)
    graph = build_training_graph(spec)
    assert not any(x["learns"] for x in graph.graph["layers"] if x["name"] in ("fc0", "flat"))


def test_backbone_of_the_inference_example_is_mnist():
    with pytest.raises(InvalidModelFile, match="no loss"):
        get_model(path("test/test_models/models/mnist_inf.ini"))
    text = open(path("test/test_models/models/mnist_inf.ini")).read()
    text = text.replace("batch_size = 1", "batch_size = 1\nloss = cross")
    spec = parse_ini(text, path=path("test/test_models/models/mnist_inf.ini"))
    assert [x.name for x in spec.layers][:2] == ["inputlayer", "conv2d_c1_layer"]
    assert spec.layers[-1].type == "cross_softmax"


def test_missing_backbone_file_is_named(tmp_path):
    model = tmp_path / "model.ini"
    model.write_text("[Model]\nloss = mse\n[base]\nbackbone = nowhere.ini\n")
    with pytest.raises(InvalidModelFile, match="nowhere.ini.*does not exist"):
        load_ini(str(model))


def test_empty_section_name_is_a_section():
    from trainplan.planner.ini_read import read_sections
    (section,) = read_sections('[]\nbackbone="simple_fc.ini"\n')
    assert section.name == "" and section.entries["backbone"][0] == "simple_fc.ini"


def test_empty_value_names_its_line():
    with pytest.raises(InvalidModelFile, match=":2: unit has no value"):
        parse_ini("[Model]\nunit =   # nothing\n")
