"""The zoo importer: a model name -> the zoo builder's ModelSpec."""

from __future__ import annotations

from dataclasses import replace

from trainplan.planner.spec import ModelSpec


def accepts(value: str) -> bool:
    from trainplan.planner.zoo import MODELS
    return value in MODELS


def names_hint() -> str:
    from trainplan.planner.zoo import MODELS
    return "a zoo model (" + ", ".join(MODELS) + ")"


def load(value: str, *, batch: int | None = None, input_shape: tuple[int, ...] | None = None,
         classes: int | None = None) -> ModelSpec:
    """Build zoo model ``value``; ``input_shape`` and ``classes`` override its defaults."""
    from trainplan.planner.zoo import MODELS
    entry = MODELS[value]
    kwargs = dict(entry.defaults)
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    if classes is not None:
        kwargs["classes"] = classes
    spec = entry.builder(batch=32 if batch is None else batch, **kwargs)
    return spec if spec.name == value else replace(spec, name=value)
