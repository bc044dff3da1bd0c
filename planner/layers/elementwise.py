"""Activations, dropout, addition, concat, reshape/flatten, multiout and identity."""

from trainplan.planner.errors import InvalidShape
from trainplan.planner.layers.base import (
    CD,
    NON_RESTRICTING,
    RESTRICTING,
    F,
    Helper,
    LayerSpec,
    Realised,
    numel,
    positive,
    register,
)

# flops per element at forward and at calc_derivative; whether backward uses the output
ACTIVATIONS = {
    "relu": (1, 1, True), "relu6": (2, 2, True), "sigmoid": (4, 3, True),
    "tanh": (4, 3, True), "softmax": (5, 4, True), "gelu": (12, 16, False),
    "gelu_erf": (16, 20, False), "none": (0, 1, True),
}


def realise_activation(inputs, props, compat):
    (x,) = inputs
    kind = str(props.get("activation", "relu")).lower()
    if kind not in ACTIVATIONS:
        raise InvalidShape(f"{props['name']}: unknown activation {kind!r}; valid: "
                           + ", ".join(ACTIVATIONS))
    fwd, bwd, uses_output = ACTIVATIONS[kind]
    n = numel(x)
    if uses_output:  # backward from the output: the input can be overwritten
        return Realised(outputs=[x], flops={F: fwd * n, CD: bwd * n},
                        output_steps=frozenset({CD}), inplace=NON_RESTRICTING)
    return Realised(outputs=[x], flops={F: fwd * n, CD: bwd * n},
                    input_steps=frozenset({F, CD}))


def realise_dropout(inputs, props, compat):
    (x,) = inputs
    rate = float(props.get("dropout_rate", props.get("dropout", 0.5)))
    if not 0.0 <= rate < 1.0:
        raise InvalidShape(f"{props['name']}: dropout rate must be in [0, 1), got {rate}")
    n = numel(x)
    return Realised(outputs=[x], helpers=[Helper("mask", x, (F, CD))],
                    flops={F: 2 * n, CD: n})


def realise_addition(inputs, props, compat):
    first = inputs[0]
    for other in inputs[1:]:
        if other != first:
            raise InvalidShape(f"{props['name']}: addition needs equal input shapes, got "
                               f"{first} and {other}")
    n = numel(first)
    return Realised(outputs=[first], flops={F: n * (len(inputs) - 1), CD: n * len(inputs)})


def concat_axis(shape: tuple[int, ...], props: dict) -> int:
    """The concatenated axis: the ``axis`` property; without one, NNTrainer's rule on a 4-D
    input (width when the channel axis is larger than 1, else the channel), else axis 1."""
    axis = props.get("axis")
    if axis is None:
        return 3 if len(shape) == 4 and shape[1] > 1 else 1
    return int(axis) % len(shape)


def realise_concat(inputs, props, compat):
    rank = len(inputs[0])
    axis = concat_axis(inputs[0], props)
    for other in inputs[1:]:
        if len(other) != rank or any(a != b for i, (a, b) in enumerate(zip(inputs[0], other))
                                     if i != axis):
            raise InvalidShape(f"{props['name']}: concat inputs must agree except on axis "
                               f"{axis}: {inputs}")
    out = list(inputs[0])
    out[axis] = sum(s[axis] for s in inputs)
    n = numel(out)
    return Realised(outputs=[tuple(out)], flops={F: n, CD: n})


def realise_reshape(inputs, props, compat):
    (x,) = inputs
    target = props.get("target_shape")
    if target is None:
        target = (numel(x[1:]),)
    target = tuple(int(t) for t in target)
    if -1 in target:
        known = numel([t for t in target if t != -1])
        target = tuple(numel(x[1:]) // known if t == -1 else t for t in target)
    if numel(target) != numel(x[1:]):
        raise InvalidShape(f"{props['name']}: cannot reshape {x[1:]} to {target}")
    return Realised(outputs=[(x[0], *target)], flops={F: 0, CD: 0}, inplace=RESTRICTING)


def realise_flatten(inputs, props, compat):
    (x,) = inputs
    return realise_reshape(inputs, {**props, "target_shape": (numel(x[1:]),)}, compat)


def realise_split(inputs, props, compat):
    """NNTrainer's split: ``split_number`` equal parts along ``axis`` (default: parts of
    size 1), one output each."""
    (x,) = inputs
    name = props["name"]
    if props.get("axis") is None:
        raise InvalidShape(f"{name}: split needs axis, the dimension to split")
    axis = int(props["axis"]) % len(x)
    parts = positive("split_number", props.get("split_number", x[axis]), name)
    if x[axis] % parts:
        raise InvalidShape(f"{name}: dimension {axis} of {x} does not split into {parts} parts")
    out = list(x)
    out[axis] = x[axis] // parts
    return Realised(outputs=[tuple(out)] * parts, flops={F: numel(x), CD: numel(x)})


def realise_multiout(inputs, props, compat):
    (x,) = inputs
    k = positive("outputs", props.get("outputs", 2), props["name"])
    return Realised(outputs=[x] * k, flops={F: 0, CD: numel(x) * (k - 1)}, inplace=RESTRICTING)


def realise_identity(inputs, props, compat):
    (x,) = inputs
    return Realised(outputs=[x], flops={F: 0, CD: 0}, inplace=RESTRICTING)


register(LayerSpec("activation", realise_activation,
                   description="relu, relu6, sigmoid, tanh, softmax, gelu (tanh form), "
                   "gelu_erf (exact)"))
register(LayerSpec("dropout", realise_dropout, description="inverted dropout with a saved mask"))
register(LayerSpec("addition", realise_addition, max_inputs=64,
                   description="element-wise sum (residual connections)"))
register(LayerSpec("concat", realise_concat, max_inputs=64, description="concatenate on axis"))
register(LayerSpec("split", realise_split, description="equal parts along an axis, one "
                   "output each"))
register(LayerSpec("reshape", realise_reshape, description="a view with another shape"))
register(LayerSpec("flatten", realise_flatten, description="(B, ...) -> (B, N) view"))
register(LayerSpec("multiout", realise_multiout,
                   description="one output to many consumers; sums their derivatives"))
register(LayerSpec("identity", realise_identity, description="passes its input through"))

