"""The INI importer: an NNTrainer model file, by path or by the name of a shipped example
(planner/zoo/examples/)."""

from __future__ import annotations

import os

from trainplan.planner.errors import UnknownModel
from trainplan.planner.spec import ModelSpec

EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "zoo", "examples")


def example_files() -> list[str]:
    """The NNTrainer INI files shipped with the package, reachable by file name
    (``--model mnist.ini``)."""
    return sorted(f for f in os.listdir(EXAMPLES_DIR) if f.endswith(".ini"))


def accepts(value: str) -> bool:
    """A ``.ini`` name, or any path (NNTrainer does not require the extension)."""
    return value.lower().endswith(".ini") or os.path.sep in value


def model_file(value: str, also: tuple[str, ...] = ()) -> str:
    """A path as given, else a shipped example of that name (planner/zoo/examples);
    UnknownModel naming both, the INI examples and ``also`` (other shipped files)."""
    if os.path.exists(value):
        return value
    shipped = os.path.join(EXAMPLES_DIR, value)
    if os.path.sep not in value and os.path.exists(shipped):
        return shipped
    raise UnknownModel(f"model file {value!r} does not exist (the shipped examples: "
                       f"{', '.join([*example_files(), *also])})")


def load(value: str, *, batch: int | None = None, input_shape: tuple[int, ...] | None = None,
         classes: int | None = None) -> ModelSpec:
    """The file's model; its shapes and classes are the file's, ``batch`` overrides its own."""
    from trainplan.planner.ini import load_ini
    return load_ini(model_file(value), batch=batch)
