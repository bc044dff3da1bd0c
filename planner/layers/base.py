"""What a layer type declares: output shapes, weights, helper tensors, flops, and which
tensors each of the four steps reads.

A layer type is one ``LayerSpec`` row in ``LAYERS``; its ``realise`` function turns input
shapes and properties into a ``Realised`` record. The graph builder (planner/build.py) turns
that record into op and tensor nodes, so the rules of what each step needs live here, per layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from trainplan.planner.errors import InvalidShape

F, CG, CD, AG = "forward", "calc_gradient", "calc_derivative", "apply_gradient"

# In-place kinds, as NNTrainer classifies layers.
NONE, RESTRICTING, NON_RESTRICTING = "none", "restricting", "non_restricting"

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Weight:
    """A weight; non-trainable ones (batch-norm running statistics) get no gradient or state."""

    shape: Shape
    trainable: bool = True
    read_at_derivative: bool = True


@dataclass(frozen=True)
class Helper:
    """A tensor a layer keeps for itself: written at ``steps[0]``, read at the other steps."""

    name: str
    shape: Shape
    steps: tuple[str, ...]
    dtype: str = "float32"
    role: str = "workspace"


@dataclass(frozen=True)
class Realised:
    """One layer instance: shapes, weights, helpers, flops per step and step needs.

    ``input_steps``: steps that read the layer's inputs (forward always does).
    ``output_steps``: steps after forward that read the layer's own outputs.
    ``grad_steps``: steps that read the output gradients (default: calc_gradient when the
    layer has trainable weights, and calc_derivative).
    ``derivative``: whether the layer can send a derivative to its inputs at all.
    ``weight_steps``: backward steps that read the weights (besides forward).
    ``gather_rows``: per step, the contiguous rows its strided window gathers and scatters
    touch (im2col, col2im, pooling taps): a lowering cost beyond flops and bytes, since each
    row is a separate short copy (simulator/device.py ``gather_row_s``).
    """

    outputs: list[Shape]
    weights: dict[str, Weight] = field(default_factory=dict)
    helpers: list[Helper] = field(default_factory=list)
    flops: dict[str, int] = field(default_factory=dict)
    input_steps: frozenset = frozenset({F})
    output_steps: frozenset = frozenset()
    grad_steps: frozenset | None = None
    derivative: bool = True
    inplace: str = NONE
    weight_steps: frozenset = frozenset({CD})
    gather_rows: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerSpec:
    """A registered layer type; ``realise(inputs, props, compat)`` -> Realised."""

    type: str
    realise: Callable[[list[Shape], dict, bool], Realised]
    min_inputs: int = 1
    max_inputs: int = 1
    is_loss: bool = False
    is_input: bool = False
    description: str = ""


LAYERS: dict[str, LayerSpec] = {}


def register(spec: LayerSpec) -> LayerSpec:
    LAYERS[spec.type] = spec
    return spec


def positive(name: str, value, layer: str = "") -> int:
    """An int > 0, or InvalidShape saying which property of which layer is wrong."""
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise InvalidShape(f"{layer}: {name} must be a positive integer, got {value!r}") from None
    if v <= 0:
        raise InvalidShape(f"{layer}: {name} must be a positive integer, got {value!r}")
    return v


def pair(value, name: str = "") -> tuple[int, int]:
    """Read an int or an (a, b) pair from a property (``3`` or ``"3,3"`` or ``(3, 3)``)."""
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",") if p]
        value = tuple(int(p) for p in parts)
    if isinstance(value, int):
        return value, value
    value = tuple(int(v) for v in value)
    return (value[0], value[0]) if len(value) == 1 else (value[0], value[1])


def numel(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
