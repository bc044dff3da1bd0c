"""Input, fully-connected and embedding kernels (planner/layers/dense.py)."""

from __future__ import annotations

import numpy as np

from trainplan.runtime.kernels.base import KernelError, KernelSpec, LayerCtx, chunks, copy_into, flat, register, rows


def input_forward(ctx: LayerCtx) -> None:
    """The data placeholder: its output is the data (a no-op when it is a view of it)."""
    copy_into(ctx.outputs[0], ctx.inputs[0])


def fc_forward(ctx: LayerCtx) -> None:
    """y = x W + b over the last dimension."""
    x, y = rows(ctx.inputs[0]), rows(ctx.outputs[0])
    np.matmul(x, ctx.weights["weight"], out=y)
    if "bias" in ctx.weights:
        y += ctx.weights["bias"]


def fc_calc_gradient(ctx: LayerCtx) -> None:
    """dW = xᵀ dy, db = Σ dy."""
    x, dy = rows(ctx.inputs[0]), rows(ctx.out_grads[0])
    np.matmul(x.T, dy, out=ctx.weight_grads["weight"])
    if "bias" in ctx.weight_grads:
        np.sum(dy, axis=0, out=ctx.weight_grads["bias"])


def fc_calc_derivative(ctx: LayerCtx) -> None:
    """dx = dy Wᵀ."""
    np.matmul(rows(ctx.out_grads[0]), ctx.weights["weight"].T, out=rows(ctx.in_derivs[0]))


def embedding_forward(ctx: LayerCtx) -> None:
    """Rows of the table picked by the token ids (stored as floats, as NNTrainer does)."""
    ids, y, table = flat(ctx.inputs[0]), rows(ctx.outputs[0]), ctx.weights["weight"]
    for s in chunks(ids.size, table.shape[1]):
        np.take(table, _ids(ctx, ids[s], table.shape[0]), axis=0, out=y[s], mode="clip")


def embedding_calc_gradient(ctx: LayerCtx) -> None:
    """dW[id] += dy row by row, in token order (np.add.at: repeated ids accumulate)."""
    ids, dy, dw = flat(ctx.inputs[0]), rows(ctx.out_grads[0]), ctx.weight_grads["weight"]
    dw[...] = 0
    for s in chunks(ids.size, dw.shape[1]):
        np.add.at(dw, _ids(ctx, ids[s], dw.shape[0]), dy[s])


def _ids(ctx: LayerCtx, ids: np.ndarray, vocab: int) -> np.ndarray:
    """Token ids as integers; KernelError when one is outside the table."""
    index = ids.astype(np.intp)
    if index.size and (index.min() < 0 or index.max() >= vocab):
        raise KernelError(f"{ctx.props.get('name', 'embedding')}: token id outside "
                          f"[0, {vocab})")
    return index


register("input", KernelSpec(input_forward))
register("fully_connected", KernelSpec(fc_forward, fc_calc_gradient, fc_calc_derivative,
                                       blas=True))
register("embedding", KernelSpec(embedding_forward, embedding_calc_gradient))
