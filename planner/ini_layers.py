"""NNTrainer INI layer sections -> LayerDefs, as NNTrainer's interpreter and realizers read them.

One section is one layer, in file order; a section with ``backbone = other.ini`` splices that
file's layer sections in its place (their ``trainable`` set from the section, the other file's
[Model] ignored), as ``IniGraphInterpreter::deserialize`` does. ``Activation=`` and
``flatten=true`` become their own ``<layer>/activation_realized`` / ``<layer>/flatten_realized``
layers. Layer types and keys of NNTrainer's first (2019-20) parser — ``InputLayer``,
``FullyConnectedLayer``, ``OutputLayer``, ``BatchNormalizationLayer`` with ``HiddenSize`` — are
read the way that parser read them. A layer whose code is not in the file (a plugin type, a
TensorFlow Lite backbone) is refused with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from trainplan.planner.errors import InvalidModelFile
from trainplan.planner.fileio import clip
from trainplan.planner.ini_read import Section, read_sections
from trainplan.planner.spec import LayerDef, split_ref

# NNTrainer type (lowercased) -> trainplan layer type.
LAYER_TYPES = {
    "input": "input", "fully_connected": "fully_connected", "fc": "fully_connected",
    "conv2d": "conv2d", "pooling2d": "pooling2d", "flatten": "flatten",
    "reshape": "reshape", "activation": "activation",
    "batch_normalization": "batch_normalization", "bn": "batch_normalization",
    "layer_normalization": "layer_normalization", "addition": "addition", "add": "addition",
    "concat": "concat", "dropout": "dropout", "embedding": "embedding", "split": "split",
    "multi_head_attention": "multi_head_attention", "lstm": "lstm", "multiout": "multiout",
    "output": "multiout", "identity": "identity", "mse": "mse",
    "cross_softmax": "cross_softmax", "cross": "cross_softmax",
    "cross_sigmoid": "cross_sigmoid",
}
# NNTrainer's first parser (neuralnet.cpp, early 2020): type -> trainplan layer type.
LEGACY_TYPES = {"inputlayer": "input", "fullyconnectedlayer": "fully_connected",
                "outputlayer": "fully_connected", "batchnormalizationlayer": "batch_normalization"}
# Types NNTrainer 0.6 (and later) registers that trainplan does not model.
NNTRAINER_ONLY_TYPES = {
    "conv1d", "rnn", "rnncell", "lstmcell", "zoneout_lstmcell", "gru", "grucell", "attention",
    "mol_attention", "permute", "reduce_mean", "positional_encoding", "upsample2d",
    "centroid_knn", "preprocess_flip", "preprocess_translate", "preprocess_l2norm",
    "time_dist", "constant_derivative", "weight", "subtract", "multiply", "divide", "pow",
    "sqrt", "sine", "cosine", "tangent", "matmul", "cast", "gather", "slice", "negative",
    "reduce_sum", "channel_shuffle", "conv2d_transpose", "backbone_tflite",
    "backbone_nnstreamer", "kld",
}
# Layer properties NNTrainer knows that do not change memory or the computation we model.
IGNORED_LAYER_KEYS = {
    "weight_initializer", "bias_initializer", "weight_regularizer",
    "weight_regularizer_constant", "weight_decay", "bias_decay", "name", "normalization",
    "standardization", "moving_mean_initializer", "moving_variance_initializer",
    "gamma_initializer", "beta_initializer", "hidden_state_activation",
    "recurrent_activation", "print", "shared_from", "distribute", "loss", "input_layer",
    "batch_size", "inplace", "clip_grad_by_norm", "bias_init_zero", "activation_type",
    "packed", "loss_scale", "engine", "zero_idx_mask", "return_attention_weight",
    "average_attention_weight", "id", "bias_zero",
}
# NNTrainer key -> LayerDef property.
LAYER_PROPERTY_KEYS = {
    "unit": "unit", "filters": "filters", "kernel_size": "kernel_size", "stride": "stride",
    "padding": "padding", "dilation": "dilation", "pooling": "pooling",
    "pool_size": "pool_size", "input_shape": "input_shape", "axis": "axis",
    "dropout_rate": "dropout_rate", "dropout": "dropout_rate", "in_dim": "in_dim",
    "out_dim": "out_dim", "num_heads": "num_heads", "return_sequences": "return_sequences",
    "target_shape": "target_shape", "split_number": "split_number",
    "projected_key_dim": "projected_dim", "disable_bias": "bias", "epsilon": "epsilon",
    "momentum": "momentum", "integrate_bias": "integrate_bias", "max_timestep": "max_timestep",
    "hiddensize": "hidden_size", "softmax": "legacy_softmax",
}
# NNTrainer's activation names where ours differ: its gelu is the exact one (acti_func.h)
ACTIVATION_NAMES = {"gelu": "gelu_erf", "tanh_gelu": "gelu"}
STRUCTURE_KEYS = {"type", "input_layers", "activation", "trainable", "flatten", "backbone"}
_TRUE = ("true", "1", "yes", "on")
_NON_LAYER = {"model", "optimizer", "learningratescheduler", "dataset", "train_set",
              "valid_set", "test_set"}


@dataclass
class _Reader:
    """State of one pass over the layer sections (and the backbones they splice in)."""

    layers: list = field(default_factory=list)
    realised: dict = field(default_factory=dict)  # layer -> the realised node readers read
    previous: str | None = None
    legacy_width: int | None = None  # HiddenSize of the previous legacy layer


def read_layers(sections: list[Section], path: str) -> list[LayerDef]:
    """Every layer of the file, realised, in NNTrainer's node order."""
    reader = _Reader()
    _read(sections, path, reader, trainable=None, seen={os.path.abspath(path)})
    if not reader.layers:
        raise InvalidModelFile(f"{path}: no layer sections")
    return _multiout_widths(_rewire(reader.layers, reader.realised))


def _read(sections, path, reader: _Reader, trainable, seen: set) -> None:
    for s in sections:
        if s.name in _NON_LAYER:
            continue
        if "backbone" in s.entries:
            _backbone(s, path, reader, seen)
            continue
        d = _layer(s, path, reader)
        if trainable is not None:
            d = LayerDef(d.name, d.type, d.props, d.inputs, trainable)
        _append(reader, s, d)


def _backbone(s: Section, path: str, reader: _Reader, seen: set) -> None:
    """Splice another INI's layers in place of the section; refuse other backbone kinds."""
    value, line = s.entries["backbone"]
    if not value.lower().endswith(".ini"):
        kind = "a TensorFlow Lite model" if value.lower().endswith(".tflite") \
            else "an NNStreamer model"
        raise InvalidModelFile(
            f"{path}:{line}: section [{s.name}]: backbone {clip(value)} is {kind}, run by "
            "NNTrainer's backbone layer; its layers and tensors are not written in an INI "
            "file, so trainplan cannot plan them")
    other = os.path.join(os.path.dirname(os.path.abspath(path)), value)
    if not os.path.exists(other):
        raise InvalidModelFile(f"{path}:{line}: section [{s.name}]: backbone file {clip(value)} "
                               f"does not exist (looked for {other})")
    if os.path.abspath(other) in seen:
        raise InvalidModelFile(f"{path}:{line}: backbone {clip(value)} includes itself")
    with open(other) as fh:
        text = fh.read()
    flag = s.entries.get("trainable", ("true", 0))[0].lower() in _TRUE
    _read(read_sections(text, other), other, reader, flag, seen | {os.path.abspath(other)})


def _layer(s: Section, path: str, reader: _Reader) -> LayerDef:
    if "type" not in s.entries:
        raise InvalidModelFile(f"{path}:{s.line}: section [{s.name}] has no Type; every "
                               "layer section needs Type = <layer type> (or backbone = "
                               "<file>.ini)")
    raw_type, type_line = s.entries["type"]
    legacy = raw_type.lower() in LEGACY_TYPES
    layer_type = LEGACY_TYPES.get(raw_type.lower()) or LAYER_TYPES.get(raw_type.lower())
    if layer_type is None:
        raise InvalidModelFile(f"{path}:{type_line}: section [{s.name}]: "
                               + _unsupported(raw_type))
    props = _props(s, path)
    if legacy:
        props = _legacy_props(raw_type.lower(), props, s, path, reader)
    if layer_type == "activation":
        props["activation"] = activation_name(_get(s, "activation") or "none")
    if layer_type == "lstm":  # NNTrainer's default: separate input and hidden biases
        props.setdefault("integrate_bias", False)
    inputs = _inputs(s, reader.previous, layer_type, props)
    trainable = (_get(s, "trainable") or "true").lower() in _TRUE
    return LayerDef(s.name, layer_type, props, inputs, trainable)


def _unsupported(raw_type: str) -> str:
    supported = ", ".join(sorted(set(LAYER_TYPES)))
    if raw_type.lower() in NNTRAINER_ONLY_TYPES:
        return (f"NNTrainer layer type {clip(raw_type)} is not modelled by trainplan; "
                f"supported: {supported}")
    return (f"layer type {clip(raw_type)} is not one of NNTrainer's layers: a plugin layer "
            "(registered by the application at run time), whose code and tensors are not in "
            f"the file, so trainplan cannot plan it; supported: {supported}")


def _props(s: Section, path: str) -> dict:
    props = {}
    for key, (value, line) in s.entries.items():
        if key in STRUCTURE_KEYS or key in IGNORED_LAYER_KEYS:
            continue
        if key not in LAYER_PROPERTY_KEYS:
            raise InvalidModelFile(f"{path}:{line}: section [{s.name}]: unknown key {clip(key)}; "
                                   "check the spelling against NNTrainer's layer properties")
        name = LAYER_PROPERTY_KEYS[key]
        props[name] = convert(name, value, path, line)
    return props


def _legacy_props(kind: str, props: dict, s: Section, path: str, reader: _Reader) -> dict:
    """HiddenSize: the input width of an InputLayer, the units of a (Fully)Connected or Output
    layer; ``Softmax = true`` on an OutputLayer is its activation."""
    width = props.pop("hidden_size", None)
    softmax = props.pop("legacy_softmax", False)
    if kind == "inputlayer":
        if width is None:
            raise InvalidModelFile(f"{path}:{s.line}: [{s.name}]: an InputLayer needs "
                                   "HiddenSize (its input width)")
        props["input_shape"] = (1, 1, width)
    elif kind in ("fullyconnectedlayer", "outputlayer"):
        props["unit"] = width if width is not None else 1
    if softmax:
        s.entries.setdefault("activation", ("softmax", s.line))
    return props


def _inputs(s: Section, previous: str | None, layer_type: str, props: dict) -> tuple:
    """Explicit input_layers; else none for a graph input (a layer with input_shape reads the
    data); else the previous layer, as NNTrainer's previous-input realizer does."""
    raw = _get(s, "input_layers")
    if raw:
        return tuple(p.strip().lower() for p in raw.split(",") if p.strip())
    if layer_type == "input" or previous is None or "input_shape" in props:
        return ()
    return (previous,)


def _append(reader: _Reader, s: Section, d: LayerDef) -> None:
    """Add the layer and the nodes NNTrainer realises from its activation and flatten keys
    (trainable by default, whatever the layer's own flag, as the realizers create them)."""
    reader.layers.append(d)
    reader.previous = d.name
    act = _get(s, "activation")
    if act and d.type != "activation" and act.lower() != "none":
        name = f"{d.name}/activation_realized"
        reader.realised[d.name] = reader.previous = name
        reader.layers.append(LayerDef(name, "activation", {"activation": activation_name(act)},
                                      (d.name,)))
    if (_get(s, "flatten") or "false").lower() in _TRUE:
        name = f"{d.name}/flatten_realized"
        reader.layers.append(LayerDef(name, "flatten", {}, (reader.previous,)))
        reader.realised[d.name] = reader.previous = name


def _rewire(layers: list[LayerDef], realised: dict) -> list[LayerDef]:
    """Readers of a layer with realised activation/flatten nodes read the last of those."""
    own = {x.name for x in layers if x.name.endswith(("/activation_realized",
                                                      "/flatten_realized"))}
    out = []
    for x in layers:
        if x.name in own:
            out.append(x)
            continue
        inputs = []
        for ref in x.inputs:
            src, k = split_ref(ref)
            src = realised.get(src, src)
            inputs.append(f"{src}({k})" if k else src)
        out.append(LayerDef(x.name, x.type, x.props, tuple(inputs), x.trainable))
    return out


def _multiout_widths(layers: list[LayerDef]) -> list[LayerDef]:
    """A multiout written in the file has as many outputs as the slots its readers name
    (NNTrainer counts requested outputs); one read by several layers of the same slot gets a
    realised multiout behind it (planner/spec.py)."""
    width: dict[str, int] = {}
    for x in layers:
        for ref in x.inputs:
            src, k = split_ref(ref)
            width[src] = max(width.get(src, 0), k + 1)
    return [LayerDef(x.name, x.type, {**x.props, "outputs": width.get(x.name, 1)}, x.inputs,
                     x.trainable) if x.type == "multiout" else x for x in layers]


def activation_name(value: str) -> str:
    return ACTIVATION_NAMES.get(value.lower(), value.lower())


def dims(value: str, minimum: int = 3) -> tuple[int, ...]:
    """NNTrainer's C:H:W (1 to 4 numbers; a fourth, leading one is the batch and ignored),
    right-aligned: missing leading dimensions are 1."""
    parts = [int(v) for v in value.replace(",", ":").replace(" ", ":").split(":") if v.strip()]
    if not 1 <= len(parts) <= 4:
        raise ValueError(value)
    if len(parts) == 4:
        parts = parts[1:]
    return (1,) * (minimum - len(parts)) + tuple(parts)


def convert(key: str, value: str, path: str, line: int):
    """A property value as the layer reads it; InvalidModelFile names the line otherwise."""
    try:
        if key in ("input_shape", "target_shape"):
            return dims(value)
        if key in ("return_sequences", "integrate_bias", "legacy_softmax"):
            return value.lower() in _TRUE
        if key == "bias":  # from disable_bias
            return value.lower() not in _TRUE
        if key == "pooling":
            return value.lower()
        if key == "padding":
            return value.lower() if value.lower() in ("same", "valid") else value
        if key in ("kernel_size", "stride", "pool_size", "dilation"):
            return tuple(int(v) for v in value.split(",") if v.strip())
        if key in ("dropout_rate", "epsilon", "momentum"):
            return float(value)
        return int(value)
    except ValueError:
        raise InvalidModelFile(f"{path}:{line}: {key} = {clip(value)} is not a valid value") from None


def _get(section: Section, key: str) -> str | None:
    return section.entries[key][0] if key in section.entries else None
