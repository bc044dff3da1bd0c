"""Model importers, one registry: the ``--model`` value picks the importer, each a function to
the same ModelSpec.

- ``zoo``: a name in the model zoo (planner/zoo);
- ``ini``: an NNTrainer INI file, a path or the name of a shipped example (planner/ini.py);
- ``onnx``: an ONNX file, ``model.onnx`` (planner/importers/from_onnx.py; the ``onnx`` extra);
- ``torch``: ``path/to/file.py:factory`` or ``package.module:factory``, a function returning
  an ``nn.Module`` (planner/importers/from_torch.py; the ``torch`` extra).

>>> importer_for("lenet5"), importer_for("models/net.py:build"), importer_for("a/b.onnx")
('zoo', 'torch', 'onnx')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trainplan.planner.errors import UnknownModel
from trainplan.planner.importers import from_onnx, from_torch, ini, zoo
from trainplan.planner.spec import ModelSpec


@dataclass(frozen=True)
class Importer:
    """``accepts(value)``: whether the ``--model`` value is this importer's;
    ``load(value, batch=, input_shape=, classes=)`` -> ModelSpec."""

    accepts: Callable[[str], bool]
    load: Callable[..., ModelSpec]
    description: str


# in the order they are asked
IMPORTERS: dict[str, Importer] = {
    "onnx": Importer(from_onnx.accepts, from_onnx.load, "an ONNX file (model.onnx)"),
    "torch": Importer(from_torch.accepts, from_torch.load, "a PyTorch factory (file.py:fn or "
                      "package.module:fn) with --input-shape"),
    "ini": Importer(ini.accepts, ini.load, "an NNTrainer INI file, or a shipped example"),
    "zoo": Importer(zoo.accepts, zoo.load, "a zoo model name"),
}


def importer_for(value: str) -> str | None:
    """The name of the first importer that accepts ``value``, None if none does."""
    return next((name for name, imp in IMPORTERS.items() if imp.accepts(value)), None)


def model_source(value: str) -> str | None:
    """The file a ``--model`` value reads (an INI, an ONNX file, a PyTorch module's source),
    None for a zoo model, whose code is trainplan's own; so a sweep can key its rows by the
    file's content."""
    name = importer_for(value)
    if name == "ini":
        return ini.model_file(value)
    if name == "onnx":
        return value
    if name == "torch":
        return from_torch.source_file(value)
    return None


def import_model(value: str, *, batch: int | None = None,
                 input_shape: tuple[int, ...] | None = None,
                 classes: int | None = None) -> ModelSpec:
    """The ModelSpec the ``--model`` value names, through the first importer accepting it."""
    name = importer_for(value)
    if name is not None:
        return IMPORTERS[name].load(value, batch=batch, input_shape=input_shape,
                                    classes=classes)
    raise UnknownModel(f"unknown model {value!r}; give {zoo.names_hint()}, an NNTrainer .ini "
                       "file (or a shipped example: " + ", ".join(ini.example_files())
                       + "), an ONNX file (.onnx), or a PyTorch factory (file.py:fn or "
                       "package.module:fn)")
