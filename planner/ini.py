"""Load a model from NNTrainer's INI model description.

Sections: ``[Model]`` (batch_size, loss, memory_optimization ...), ``[Optimizer]``,
``[LearningRateScheduler]``, dataset sections, and one section per layer (planner/ini_layers.py).
The text is read as iniparser reads it (planner/ini_read.py): case-insensitive names and keys,
quoted values, comments. Properties that do not change memory (initialisers, learning rate,
save path ...) are accepted and ignored; a key NNTrainer does not know is refused with its
line, as is a layer type trainplan does not model. The loss of ``[Model]`` is realised as
NNTrainer does: a softmax (sigmoid) output followed by ``loss = cross`` fuses into one
``cross_softmax`` (``cross_sigmoid``) layer, ``loss = mse`` appends an ``mse`` layer.
"""

from __future__ import annotations

import os

from trainplan.planner.errors import InvalidModelFile
from trainplan.planner.fileio import clip, read_text_file
from trainplan.planner.ini_layers import read_layers
from trainplan.planner.ini_read import Section, read_sections
from trainplan.planner.layers import LAYERS
from trainplan.planner.spec import LayerDef, ModelSpec

MODEL_KEYS = {
    "type", "loss", "batch_size", "epochs", "save_path", "save_best_path",
    "memory_optimization", "learning_rate", "optimizer", "decay_rate", "decay_steps",
    "beta1", "beta2", "epsilon", "model_tensor_type", "tensor_type", "tensor_format",
    "memory_swap", "memory_swap_path", "memory_swap_lookahead", "fsu", "fsu_path",
    "fsu_lookahead", "continue_train", "loss_scale", "trainable", "num_epochs",
    "input_layers", "label_layers", "clip_grad_by_norm",
}
OPTIMIZER_KEYS = {"type", "learning_rate", "beta1", "beta2", "epsilon", "decay_rate",
                  "decay_steps", "momentum", "torch_ref", "weight_decay"}
SCHEDULER_KEYS = {"type", "learning_rate", "decay_rate", "decay_steps", "iteration",
                  "max_learning_rate", "min_learning_rate"}
# the deprecated [DataSet] keys (BufferSize included, which NNTrainer still reads) and the
# file data buffer's
DATASET_KEYS = {"type", "buffer_size", "buffersize", "traindata", "validdata", "testdata",
                "labeldata", "train_data", "valid_data", "test_data", "label_data", "path"}
DATASET_SECTIONS = {"dataset", "train_set", "valid_set", "test_set"}
DEFAULT_BATCH = 1  # NNTrainer's batch_size default


def load_ini(path: str, *, batch: int | None = None) -> ModelSpec:
    """Parse an NNTrainer INI into a ModelSpec; ``batch`` overrides the file's batch_size.
    Backbone files a section names are read relative to ``path``'s folder."""
    return parse_ini(read_text_file(path, "model file"), path=path, batch=batch)


def parse_ini(text: str, *, path: str = "model.ini", batch: int | None = None) -> ModelSpec:
    sections = read_sections(text, path)
    model = _find(sections, "model")
    if model is None:
        raise InvalidModelFile(f"{path}: no [Model] section; NNTrainer reads a file without "
                               "[Model] only as a backbone of another file (a layer section "
                               f"with backbone = {os.path.basename(path)})")
    _check_keys(model, MODEL_KEYS, path)
    opt_section = _find(sections, "optimizer")
    if opt_section is not None:
        _check_keys(opt_section, OPTIMIZER_KEYS, path)
    for s in sections:
        if s.name == "learningratescheduler":
            _check_keys(s, SCHEDULER_KEYS, path)
        elif s.name in DATASET_SECTIONS:
            _check_keys(s, DATASET_KEYS, path)
    layers = _apply_loss(read_layers(sections, path), _value(model, "loss"), path)
    file_batch = _int(model, "batch_size", path)
    if file_batch is not None and file_batch < 1:
        raise InvalidModelFile(f"{path}:{model.entries['batch_size'][1]}: batch_size must be "
                               f"1 or more, got {file_batch}")
    file_batch = file_batch or DEFAULT_BATCH
    optimizer = (_value(opt_section, "type") if opt_section else None) \
        or _value(model, "optimizer") or "adam"
    memopt = (_value(model, "memory_optimization") or "true").lower() in ("true", "1", "yes")
    name = os.path.splitext(os.path.basename(path))[0]
    return ModelSpec(name, tuple(layers), batch if batch is not None else file_batch,
                     optimizer.lower(), f"NNTrainer model file {os.path.basename(path)}",
                     {"memory_optimization": memopt, "source": path})


_CROSS = {"softmax": "cross_softmax", "sigmoid": "cross_sigmoid"}


def _apply_loss(layers: list[LayerDef], loss: str | None, path: str) -> list[LayerDef]:
    """Add the [Model] loss after the last layer unless a loss layer is already written; a
    file without either has nothing to train."""
    last = layers[-1]
    if LAYERS[last.type].is_loss:
        return layers
    if not loss or loss.lower() == "none":
        raise InvalidModelFile(f"{path}: the model has no loss: [Model] names none and no loss "
                               "layer is written (an inference model); NNTrainer trains only a "
                               "model with a loss, add e.g. loss = cross to [Model]")
    loss = loss.lower()
    if loss in ("cross", "cross_softmax", "cross_entropy_softmax", "cross_sigmoid"):
        act = last.props.get("activation") if last.type == "activation" else None
        if act not in _CROSS:
            raise InvalidModelFile(f"{path}: loss = cross needs the last layer to end in a "
                                   f"softmax or sigmoid activation (NNTrainer fuses it into the "
                                   f"loss); [{last.name}] is a {last.type} layer"
                                   + (f" with {act}" if act else ""))
        kind = _CROSS[act]
        return layers[:-1] + [LayerDef(f"{kind}0", kind, {}, last.inputs)]
    if loss == "mse":
        return layers + [LayerDef("mse0", "mse", {}, (last.name,))]
    raise InvalidModelFile(f"{path}: [Model] loss {clip(loss)} is not supported; use cross or mse")


def _find(sections: list[Section], name: str) -> Section | None:
    return next((s for s in sections if s.name == name), None)


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
