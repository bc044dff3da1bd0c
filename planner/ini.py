"""Load a model from NNTrainer's INI model description.

Sections: ``[Model]`` (batch_size, loss, memory_optimization ...), ``[Optimizer]``,
``[LearningRateScheduler]``, dataset sections, and one section per layer with ``Type``. Keys
are case-insensitive; ``#`` and ``;`` start comments, also after a value. Properties that do
not change memory (initialisers, learning rate, save path ...) are accepted and ignored; a key
NNTrainer does not know is refused with its line, as is a layer type trainplan does not model.
The ``Activation=`` property becomes its own activation layer named ``<layer>/activation_realized``
and a softmax before a cross-entropy loss fuses into one ``cross_softmax`` loss, as NNTrainer
realises them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from trainplan.planner.errors import InvalidModelFile
from trainplan.planner.fileio import clip, read_text_file
from trainplan.planner.spec import LayerDef, ModelSpec

MODEL_KEYS = {
    "type", "loss", "batch_size", "epochs", "save_path", "memory_optimization",
    "learning_rate", "optimizer", "decay_rate", "decay_steps", "beta1", "beta2", "epsilon",
    "model_tensor_type", "tensor_format", "memory_swap", "memory_swap_path",
    "memory_swap_lookahead", "fsu", "fsu_path", "fsu_lookahead", "continue_train",
    "loss_scale", "trainable", "num_epochs",
}
OPTIMIZER_KEYS = {"type", "learning_rate", "beta1", "beta2", "epsilon", "decay_rate",
                  "decay_steps", "momentum", "torch_ref", "weight_decay"}
SCHEDULER_KEYS = {"type", "learning_rate", "decay_rate", "decay_steps", "iteration",
                  "max_learning_rate", "min_learning_rate"}
DATASET_KEYS = {"type", "buffer_size", "traindata", "validdata", "testdata", "labeldata",
                "train_data", "valid_data", "test_data", "label_data", "path"}
DATASET_SECTIONS = {"dataset", "data", "train_set", "valid_set", "test_set"}
# Layer properties NNTrainer knows that do not change memory.
IGNORED_LAYER_KEYS = {
    "weight_initializer", "bias_initializer", "weight_regularizer",
    "weight_regularizer_constant", "weight_decay", "bias_decay", "name", "normalization",
    "standardization", "epsilon", "momentum", "moving_mean_initializer",
    "moving_variance_initializer", "gamma_initializer", "beta_initializer", "flatten",
    "hidden_state_activation", "recurrent_activation", "print", "shared_from",
    "distribute", "integrate_bias", "loss", "input_layer", "batch_size",
    "inplace", "clip_grad_by_norm", "bias_init_zero", "activation_type", "dropout",
}
LAYER_PROPERTY_KEYS = {
    "unit": "unit", "filters": "filters", "kernel_size": "kernel_size", "stride": "stride",
    "padding": "padding", "dilation": "dilation", "pooling": "pooling",
    "pool_size": "pool_size", "input_shape": "input_shape", "axis": "axis",
    "dropout_rate": "dropout_rate", "in_dim": "in_dim", "out_dim": "out_dim",
    "num_heads": "num_heads", "return_sequences": "return_sequences",
    "target_shape": "target_shape", "groups": "groups", "split_number": "groups",
    "projected_key_dim": "projected_dim", "disable_bias": "bias",
}
LAYER_TYPES = {
    "input": "input", "fully_connected": "fully_connected", "fc": "fully_connected",
    "conv2d": "conv2d", "pooling2d": "pooling2d", "flatten": "flatten",
    "reshape": "reshape", "activation": "activation",
    "batch_normalization": "batch_normalization", "bn": "batch_normalization",
    "layer_normalization": "layer_normalization", "addition": "addition", "add": "addition",
    "concat": "concat", "dropout": "dropout", "embedding": "embedding",
    "multi_head_attention": "multi_head_attention", "lstm": "lstm", "multiout": "multiout",
    "output": "multiout", "identity": "identity", "mse": "mse",
    "cross_softmax": "cross_softmax", "cross": "cross_softmax",
}
STRUCTURE_KEYS = {"type", "input_layers", "activation", "trainable"}
MAX_NAME = 200  # characters of a section (layer) name


@dataclass
class Section:
    name: str
    line: int
    entries: dict  # key -> (value, line)


def read_sections(text: str, path: str = "model.ini") -> list[Section]:
    """Sections in file order with case-folded keys; errors name the line."""
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise InvalidModelFile(f"{path}:{lineno}: malformed section header {clip(raw)}; "
                                       "write [SectionName]")
            name = line[1:-1].strip()
            if len(name) > MAX_NAME:
                raise InvalidModelFile(f"{path}:{lineno}: section name {clip(name)} is longer "
                                       f"than {MAX_NAME} characters")
            sections.append(Section(name, lineno, {}))
            continue
        if "=" not in line:
            raise InvalidModelFile(f"{path}:{lineno}: expected 'key = value', got {clip(raw)}")
        if not sections:
            raise InvalidModelFile(f"{path}:{lineno}: key outside any section; start the file "
                                   "with [Model]")
        key, value = (p.strip() for p in line.split("=", 1))
        sections[-1].entries[key.lower()] = (value, lineno)
    return sections


def _strip_comment(line: str) -> str:
    for mark in ("#", ";"):
        if mark in line:
            line = line[: line.index(mark)]
    return line


def load_ini(path: str, *, batch: int | None = None) -> ModelSpec:
    """Parse an NNTrainer INI into a ModelSpec; ``batch`` overrides the file's batch_size."""
    return parse_ini(read_text_file(path, "model file"), path=path, batch=batch)


def parse_ini(text: str, *, path: str = "model.ini", batch: int | None = None) -> ModelSpec:
    sections = read_sections(text, path)
    model = _find(sections, "model")
    if model is None:
        raise InvalidModelFile(f"{path}: no [Model] section; NNTrainer files start with [Model]")
    _check_keys(model, MODEL_KEYS, path)
    opt_section = _find(sections, "optimizer")
    if opt_section is not None:
        _check_keys(opt_section, OPTIMIZER_KEYS, path)
    for s in sections:
        if s.name.lower() == "learningratescheduler":
            _check_keys(s, SCHEDULER_KEYS, path)
        elif s.name.lower() in DATASET_SECTIONS:
            _check_keys(s, DATASET_KEYS, path)
    layers = _layers(sections, path)
    loss = _value(model, "loss")
    layers = _apply_loss(layers, loss, path)
    file_batch = _int(model, "batch_size", path)
    if file_batch is not None and file_batch < 1:
        raise InvalidModelFile(f"{path}:{model.entries['batch_size'][1]}: batch_size must be "
                               f"1 or more, got {file_batch}")
    file_batch = file_batch or 32
    optimizer = (_value(opt_section, "type") if opt_section else None) \
        or _value(model, "optimizer") or "adam"
    memopt = (_value(model, "memory_optimization") or "true").lower() in ("true", "1", "yes")
    name = os.path.splitext(os.path.basename(path))[0]
    return ModelSpec(name, tuple(layers), batch if batch is not None else file_batch,
                     optimizer.lower(), f"NNTrainer model file {os.path.basename(path)}",
                     {"memory_optimization": memopt, "source": path})


_NON_LAYER = {"model", "optimizer", "learningratescheduler"} | DATASET_SECTIONS


def _layers(sections: list[Section], path: str) -> list[LayerDef]:
    layers: list[LayerDef] = []
    realised: dict[str, str] = {}  # layer -> the realised node its readers read instead
    previous: str | None = None
    for s in sections:
        if s.name.lower() in _NON_LAYER:
            continue
        if "type" not in s.entries:
            raise InvalidModelFile(f"{path}:{s.line}: section [{s.name}] has no Type; every "
                                   "layer section needs Type = <layer type>")
        raw_type, type_line = s.entries["type"]
        layer_type = LAYER_TYPES.get(raw_type.lower())
        if layer_type is None:
            raise InvalidModelFile(f"{path}:{type_line}: section [{s.name}]: layer type "
                                   f"{clip(raw_type)} is not supported by trainplan; supported: "
                                   + ", ".join(sorted(set(LAYER_TYPES))))
        props = {}
        for key, (value, line) in s.entries.items():
            if key in STRUCTURE_KEYS or key in IGNORED_LAYER_KEYS:
                continue
            if key not in LAYER_PROPERTY_KEYS:
                raise InvalidModelFile(f"{path}:{line}: section [{s.name}]: unknown key "
                                       f"{clip(key)}; check the spelling against NNTrainer's layer "
                                       "properties")
            props[LAYER_PROPERTY_KEYS[key]] = _convert(LAYER_PROPERTY_KEYS[key], value, path,
                                                       line)
        if layer_type == "activation":
            props["activation"] = _value(s, "activation") or "none"
        inputs = _inputs(s, previous, layer_type)
        trainable = (_value(s, "trainable") or "true").lower() not in ("false", "0", "no")
        layers.append(LayerDef(s.name, layer_type, props, inputs, trainable))
        previous = s.name
        act = _value(s, "activation")
        if act and layer_type != "activation" and act.lower() != "none":
            realised[s.name] = previous = f"{s.name}/activation_realized"
            layers.append(LayerDef(previous, "activation", {"activation": act.lower()},
                                   (s.name,)))
        if (_value(s, "flatten") or "false").lower() in ("true", "1", "yes"):
            realised[s.name] = name = f"{s.name}/flatten_realized"
            layers.append(LayerDef(name, "flatten", {}, (previous,)))
            previous = name
    if not layers:
        raise InvalidModelFile(f"{path}: no layer sections")
    return _rewire_realised(layers, realised)


def _inputs(s: Section, previous: str | None, layer_type: str) -> tuple[str, ...]:
    """Explicit input_layers; else none for a graph input (a layer with input_shape reads the
    data); else the previous section, as NNTrainer's previous-input realizer does."""
    raw = _value(s, "input_layers")
    if raw:
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    if layer_type == "input" or previous is None or "input_shape" in s.entries:
        return ()
    return (previous,)


def _rewire_realised(layers: list[LayerDef], realised: dict[str, str]) -> list[LayerDef]:
    """Readers of a layer with realised activation/flatten nodes read the last of those."""
    own = {layer.name for layer in layers
           if layer.name.endswith(("/activation_realized", "/flatten_realized"))}
    out = []
    for layer in layers:
        if layer.name in own:
            out.append(layer)
            continue
        inputs = tuple(realised.get(i, i) for i in layer.inputs)
        out.append(LayerDef(layer.name, layer.type, layer.props, inputs, layer.trainable))
    return out


def _apply_loss(layers: list[LayerDef], loss: str | None, path: str) -> list[LayerDef]:
    """Append the [Model] loss; softmax followed by cross-entropy fuses into cross_softmax."""
    if not loss:
        return layers
    loss = loss.lower()
    last = layers[-1]
    if loss in ("cross", "cross_softmax", "cross_entropy_softmax"):
        if last.type == "activation" and last.props.get("activation") == "softmax":
            layers = layers[:-1]
            last = layers[-1]
        return layers + [LayerDef("cross_softmax0", "cross_softmax", {}, (last.name,))]
    if loss == "mse":
        return layers + [LayerDef("mse0", "mse", {}, (last.name,))]
    raise InvalidModelFile(f"{path}: [Model] loss {clip(loss)} is not supported; use cross or mse")


def _convert(key: str, value: str, path: str, line: int):
    try:
        if key in ("input_shape", "target_shape"):
            return tuple(int(v) for v in value.replace(",", ":").split(":") if v.strip())
        if key == "bias":  # from disable_bias
            return value.lower() not in ("true", "1", "yes")
        if key == "return_sequences":
            return value.lower() in ("true", "1", "yes")
        if key in ("pooling", "padding"):
            return value.lower() if key == "pooling" else value
        if key in ("kernel_size", "stride", "pool_size", "dilation"):
            return tuple(int(v) for v in value.split(",") if v.strip())
        if key == "dropout_rate":
            return float(value)
        return int(value)
    except ValueError:
        raise InvalidModelFile(f"{path}:{line}: {key} = {clip(value)} is not a valid value") \
            from None


def _find(sections: list[Section], name: str) -> Section | None:
    return next((s for s in sections if s.name.lower() == name), None)


def _value(section: Section | None, key: str) -> str | None:
    if section is None or key not in section.entries:
        return None
    return section.entries[key][0]


def _int(section: Section, key: str, path: str) -> int | None:
    if key not in section.entries:
        return None
    value, line = section.entries[key]
    try:
        return int(value)
    except ValueError:
        raise InvalidModelFile(f"{path}:{line}: {key} must be an integer, got {clip(value)}") \
            from None


def _check_keys(section: Section, known: set[str], path: str) -> None:
    for key, (_, line) in section.entries.items():
        if key not in known:
            raise InvalidModelFile(f"{path}:{line}: [{section.name}]: unknown key {clip(key)}; "
                                   f"known keys: {', '.join(sorted(known))}")
