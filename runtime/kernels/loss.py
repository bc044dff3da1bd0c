"""Loss kernels (planner/layers/loss.py): softmax or sigmoid + cross-entropy, and mean squared
error.

Forward returns the loss, the mean over the batch (None without a label); calc_derivative writes
d(loss)/d(input). Cross-entropy: softmax over the last axis, the output holds the
probabilities, and backward reads them (not the input). MSE: the mean of squared errors over
all elements; natively the (batch, 1) output holds each sample's mean, in NNTrainer-compatible
graphs (output shaped like the input) the output is a copy of the input, as NNTrainer does.
"""

from __future__ import annotations

import numpy as np

from trainplan.runtime.kernels.base import (
    KernelSpec,
    LayerCtx,
    chunks,
    copy_into,
    flat,
    register,
    rows,
)
from trainplan.runtime.kernels.elementwise import sigmoid


def cross_softmax_forward(ctx: LayerCtx) -> float | None:
    x, y = rows(ctx.inputs[0]), rows(ctx.outputs[0])
    peak = np.max(x, axis=1)
    loss = None
    if ctx.label is not None:  # read x before y (maybe x's bytes) is written
        label = rows(ctx.label)
        picked = np.einsum("rc,rc->r", label, x)
        mass = np.sum(label, axis=1)
    np.subtract(x, peak[:, None], out=y)
    np.exp(y, out=y)
    total = np.sum(y, axis=1)
    y /= total[:, None]
    if ctx.label is not None:
        per_row = mass * (np.log(total) + peak) - picked
        loss = float(np.sum(per_row, dtype=np.float64)) / ctx.inputs[0].shape[0]
    return loss


def cross_softmax_calc_derivative(ctx: LayerCtx) -> None:
    """dx = (Σlabel · softmax − label) / batch; Σlabel is 1 for one-hot labels."""
    y, label, dx = rows(ctx.outputs[0]), rows(ctx.label), rows(ctx.in_derivs[0])
    np.multiply(y, np.sum(label, axis=1)[:, None], out=dx)
    dx -= label
    dx *= 1.0 / ctx.inputs[0].shape[0]


def cross_sigmoid_forward(ctx: LayerCtx) -> float | None:
    """The output holds sigmoid(x); the loss is the mean over elements of
    log(1 + exp(−|x|)) + max(x, 0) − x · label (stable for any x)."""
    x, y = flat(ctx.inputs[0]), flat(ctx.outputs[0])
    total = 0.0
    label = flat(ctx.label) if ctx.label is not None else None
    for s in chunks(x.size):
        if label is not None:  # read x before y (maybe x's bytes) is written
            t = np.abs(x[s])
            np.negative(t, out=t)
            np.exp(t, out=t)
            np.log1p(t, out=t)
            t += np.maximum(x[s], 0)
            t -= x[s] * label[s]
            total += float(np.sum(t, dtype=np.float64))
        sigmoid(x[s], y[s])
    return total / x.size if label is not None else None


def cross_sigmoid_calc_derivative(ctx: LayerCtx) -> None:
    """dx = (sigmoid(x) − label) / number of elements."""
    x, label, dx = flat(ctx.inputs[0]), flat(ctx.label), flat(ctx.in_derivs[0])
    for s in chunks(x.size):
        sigmoid(x[s], dx[s])
        dx[s] -= label[s]
        dx[s] *= 1.0 / x.size


def mse_forward(ctx: LayerCtx) -> float | None:
    x, y = rows(ctx.inputs[0]), ctx.outputs[0]
    per_sample = y.shape != ctx.inputs[0].shape
    if ctx.label is None:
        if per_sample:
            y[...] = 0
        else:
            copy_into(y, ctx.inputs[0])
        return None
    label = rows(ctx.label)
    sums = np.empty(x.shape[0], dtype=np.float64)
    for s in chunks(x.shape[0], x.shape[1]):
        d = x[s] - label[s]
        sums[s] = np.einsum("rd,rd->r", d, d)
    per_row = x.size // ctx.inputs[0].shape[0]
    if per_sample:
        samples = sums.reshape(y.shape[0], -1).sum(axis=1)
        y.reshape(-1)[...] = samples / per_row
    else:
        copy_into(y, ctx.inputs[0])
    return float(np.sum(sums)) / x.size


def mse_calc_derivative(ctx: LayerCtx) -> None:
    """dx = 2 (x − label) / number of elements."""
    dx = ctx.in_derivs[0]
    np.subtract(ctx.inputs[0], ctx.label, out=dx)
    dx *= 2.0 / dx.size


register("cross_softmax", KernelSpec(cross_softmax_forward, None, cross_softmax_calc_derivative))
register("cross_sigmoid", KernelSpec(cross_sigmoid_forward, None,
                                    cross_sigmoid_calc_derivative))
register("mse", KernelSpec(mse_forward, None, mse_calc_derivative))
