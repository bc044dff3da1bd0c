"""Batch and layer normalisation (training mode), both in place as in NNTrainer.

The backward pass uses the normalised input and the inverse standard deviation saved at
forward, not the input itself, which is what lets the output overwrite the input.
"""

from trainplan.planner.layers.base import (
    CD, CG, F, NON_RESTRICTING, Helper, LayerSpec, Realised, Weight, numel, register,
)


def realise_batch_normalization(inputs, props, compat):
    (x,) = inputs
    c = x[1] if len(x) == 4 else x[-1]
    n = numel(x)
    weights = {
        "gamma": Weight((c,)), "beta": Weight((c,), read_at_derivative=False),
        "moving_mean": Weight((c,), trainable=False, read_at_derivative=False),
        "moving_variance": Weight((c,), trainable=False, read_at_derivative=False),
    }
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
