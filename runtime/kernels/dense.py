"""Input, fully-connected and embedding kernels (planner/layers/dense.py).

Fully connected layers run in lanes (runtime/kernels/parallel.py) with BLAS on one thread in
each: OpenBLAS's own threads spin waiting for each other, and a product on two of them takes
tens of times longer when another process holds one of the cores."""

from __future__ import annotations

import numpy as np

from trainplan.runtime.kernels.base import (
    KernelError,
    KernelSpec,
    LayerCtx,
    chunks,
    copy_into,
    flat,
    register,
    rows,
)


def input_forward(ctx: LayerCtx) -> None:
    """The data placeholder: its output is the data (a no-op when it is a view of it)."""
    copy_into(ctx.outputs[0], ctx.inputs[0])


def fc_forward(ctx: LayerCtx) -> None:
    """y = x W + b over the last dimension, in lanes of rows."""
    x, y, w = rows(ctx.inputs[0]), rows(ctx.outputs[0]), ctx.weights["weight"]
    bias = ctx.weights.get("bias")

    def lane(r: slice) -> None:
        np.matmul(x[r], w, out=y[r])
        if bias is not None:
            y[r] += bias

    ctx.over(x.shape[0], lane)


def fc_calc_gradient(ctx: LayerCtx) -> None:
    """dW = xᵀ dy, db = Σ dy: sums over every row, so in lanes of their columns."""
    x, dy, g = rows(ctx.inputs[0]), rows(ctx.out_grads[0]), ctx.weight_grads

    def lane(c: slice) -> None:
        np.matmul(x.T, dy[:, c], out=g["weight"][:, c])
        if "bias" in g:
            np.sum(dy[:, c], axis=0, out=g["bias"][c])

    ctx.over(dy.shape[1], lane)


def fc_calc_derivative(ctx: LayerCtx) -> None:
    """dx = dy Wᵀ, in lanes of rows."""
    dy, dx, w = rows(ctx.out_grads[0]), rows(ctx.in_derivs[0]), ctx.weights["weight"]
    ctx.over(dy.shape[0], lambda r: np.matmul(dy[r], w.T, out=dx[r]))


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
    if ctx.props.get("padding_idx") is not None:  # PyTorch's: the padding row never learns
        dw[int(ctx.props["padding_idx"])] = 0


def _ids(ctx: LayerCtx, ids: np.ndarray, vocab: int) -> np.ndarray:
    """Token ids as integers; KernelError when one is outside the table."""
    index = ids.astype(np.intp)
    if index.size and (index.min() < 0 or index.max() >= vocab):
        raise KernelError(f"{ctx.props.get('name', 'embedding')}: token id outside "
                          f"[0, {vocab})")
    return index


register("input", KernelSpec(input_forward))
register("fully_connected", KernelSpec(fc_forward, fc_calc_gradient, fc_calc_derivative))
register("embedding", KernelSpec(embedding_forward, embedding_calc_gradient))
