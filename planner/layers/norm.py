"""Batch and layer normalisation (training mode), both in place as in NNTrainer.

The backward pass uses the normalised input and the inverse standard deviation saved at
forward, not the input itself, which is what lets the output overwrite the input.
"""

from trainplan.planner.layers.base import (
    AG,
    CD,
    CG,
    NON_RESTRICTING,
    F,
    Helper,
    LayerSpec,
    Realised,
    Weight,
    numel,
    register,
)


def channel_axis(shape: tuple[int, ...], props: dict) -> int:
    """Batch norm's channel axis: the ``axis`` property, else NNTrainer's rule — axis 1 of a
    4-D input with more than one channel, otherwise the last axis."""
    if props.get("axis") is not None:
        return int(props["axis"]) % len(shape)
    return 1 if len(shape) == 4 and shape[1] > 1 else len(shape) - 1


_ITERATION = (F, CG, CD, AG)


def realise_batch_normalization(inputs, props, compat):
    (x,) = inputs
    c = x[channel_axis(x, props)]
    n = numel(x)
    running = Weight((c,), trainable=False, read_at_derivative=False)
    weights = {"moving_mean": running, "moving_variance": running, "gamma": Weight((c,)),
               "beta": Weight((c,), read_at_derivative=False)}
    if compat:  # NNTrainer's requests, in its order; ``deviation`` holds x̂ here
        helpers = [Helper("moviing_mean_backup", (c,), _ITERATION),
                   Helper("moviing_variance_backup", (c,), _ITERATION),
                   Helper("deviation", x, _ITERATION), Helper("invstd", (c,), _ITERATION),
                   Helper("tensor_full", x, (CD,)), Helper("cvar", (c,), _ITERATION),
                   Helper("tensor_reduced", (c,), (F, CD))]
    else:
        helpers = [Helper("normalized", x, (F, CG, CD)), Helper("invstd", (c,), (F, CD))]
    return Realised(outputs=[x], weights=weights, helpers=helpers,
                    flops={F: 8 * n, CG: 4 * n, CD: 8 * n}, inplace=NON_RESTRICTING)


def realise_layer_normalization(inputs, props, compat):
    (x,) = inputs
    d = x[-1]
    n = numel(x)
    weights = {"gamma": Weight((d,)), "beta": Weight((d,), read_at_derivative=False)}
    helpers = [Helper("normalized", x, (F, CG, CD)), Helper("invstd", x[:-1], (F, CD))]
    return Realised(outputs=[x], weights=weights, helpers=helpers,
                    flops={F: 8 * n, CG: 4 * n, CD: 8 * n}, inplace=NON_RESTRICTING)


register(LayerSpec("batch_normalization", realise_batch_normalization,
                   description="batch norm over channels with running statistics"))
register(LayerSpec("layer_normalization", realise_layer_normalization,
                   description="layer norm over the last dimension"))
