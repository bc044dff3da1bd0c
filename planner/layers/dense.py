"""Input, fully-connected and embedding layers."""

from trainplan.planner.errors import InvalidShape
from trainplan.planner.layers.base import (
    CD,
    CG,
    NON_RESTRICTING,
    F,
    LayerSpec,
    Realised,
    Weight,
    numel,
    positive,
    register,
)


def realise_input(inputs, props, compat):
    shape = props.get("input_shape")
    if not shape:
        raise InvalidShape(f"{props.get('name', 'input')}: an input layer needs input_shape")
    batch = props["batch"]
    dims = tuple(positive("input_shape", d, props.get("name", "input")) for d in shape)
    return Realised(outputs=[(batch, *dims)], inplace=NON_RESTRICTING, derivative=False,
                    flops={F: 0})


def realise_fully_connected(inputs, props, compat):
    (x,) = inputs
    units = positive("unit", props.get("unit"), props["name"])
    n_in, rows = x[-1], numel(x[:-1])
    weights = {"weight": Weight((n_in, units))}
    if props.get("bias", True):
        weights["bias"] = Weight((units,), read_at_derivative=False)
    mac = rows * n_in * units
    return Realised(
        outputs=[(*x[:-1], units)], weights=weights,
        flops={F: 2 * mac + rows * units, CG: 2 * mac + rows * units, CD: 2 * mac},
        input_steps=frozenset({F, CG}),
    )


def realise_embedding(inputs, props, compat):
    (x,) = inputs
    vocab = positive("in_dim", props.get("in_dim"), props["name"])
    dim = positive("out_dim", props.get("out_dim"), props["name"])
    rows = numel(x)
    # NNTrainer's (B, C, 1, L) ids give (B, C, L, out_dim)
    out = (x[0], x[1], x[3], dim) if len(x) == 4 and x[2] == 1 else (*x, dim)
    return Realised(
        outputs=[out], weights={"weight": Weight((vocab, dim))},
        flops={F: rows * dim, CG: rows * dim}, input_steps=frozenset({F, CG}),
        derivative=False,
    )


register(LayerSpec("input", realise_input, min_inputs=0, max_inputs=0, is_input=True,
                   description="a network input (data placeholder); in place"))
register(LayerSpec("fully_connected", realise_fully_connected,
                   description="y = x W + b over the last dimension"))
register(LayerSpec("embedding", realise_embedding,
                   description="token ids (B, T) -> vectors (B, T, out_dim)"))
