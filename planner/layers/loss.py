"""Losses: softmax or sigmoid fused with cross-entropy, and mean squared error.

A loss layer reads the label at forward (for the loss value) and at calc_derivative. Its
derivative needs either the softmax output (cross-entropy) or the prediction (mse).
"""

from trainplan.planner.layers.base import CD, F, LayerSpec, Realised, numel, register


def realise_cross_softmax(inputs, props, compat):
    (x,) = inputs
    n = numel(x)
    if compat:  # NNTrainer keeps the loss input for calc_derivative (FORWARD_DERIV)
        return Realised(outputs=[x], flops={F: 6 * n, CD: 2 * n},
                        input_steps=frozenset({F, CD}), grad_steps=frozenset())
    return Realised(outputs=[x], flops={F: 6 * n, CD: 2 * n}, output_steps=frozenset({CD}),
                    grad_steps=frozenset())


def realise_cross_sigmoid(inputs, props, compat):
    """Sigmoid + binary cross-entropy over every element (NNTrainer's cross_sigmoid, PyTorch's
    BCEWithLogitsLoss): the output holds the probabilities, backward reads the input."""
    (x,) = inputs
    n = numel(x)
    return Realised(outputs=[x], flops={F: 8 * n, CD: 5 * n}, input_steps=frozenset({F, CD}),
                    grad_steps=frozenset())


def realise_mse(inputs, props, compat):
    (x,) = inputs
    n = numel(x)
    out = x if compat else (x[0], 1)
    return Realised(outputs=[out], flops={F: 3 * n, CD: 2 * n},
                    input_steps=frozenset({F, CD}), grad_steps=frozenset())


register(LayerSpec("cross_softmax", realise_cross_softmax, is_loss=True,
                   description="softmax + cross-entropy; the output holds the probabilities"))
register(LayerSpec("cross_sigmoid", realise_cross_sigmoid, is_loss=True,
                   description="sigmoid + binary cross-entropy, the mean over elements"))
register(LayerSpec("mse", realise_mse, is_loss=True, description="mean squared error"))
