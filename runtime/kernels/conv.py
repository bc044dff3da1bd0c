"""Convolution (grouped, strided, dilated, padded) and pooling kernels.

Convolution is im2col plus one BLAS product per chunk of samples, the chunk's samples side by
side in the columns. The chunk size is read off the declared column helpers
(planner/layers/conv.py ``conv_chunk``), so the runtime and the plan agree on the workspace.
Forward: Y = W · col(x), written back sample-major. calc_gradient: dW = Σ_chunks dY · colᵀ, the
chunks after the first through a partial helper, added in order. calc_derivative: col = Wᵀ · dY,
then col2im sums the columns back onto dx tap by tap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trainplan.planner.layers.base import pair
from trainplan.planner.layers.conv import padding
from trainplan.runtime.kernels.base import KernelSpec, LayerCtx, chunks, flat, register, view
from trainplan.runtime.kernels.windows import Tap, col2im, im2col, taps


@dataclass(frozen=True)
class ConvGeom:
    batch: int
    channels: int
    filters: int
    groups: int
    kernel: tuple[int, int]
    out: tuple[int, int]
    taps: tuple[Tap, ...]
    pointwise: bool

    @property
    def rows(self) -> int:  # column-matrix rows per group
        return self.channels // self.groups * self.kernel[0] * self.kernel[1]

    @property
    def cols(self) -> int:
        return self.out[0] * self.out[1]


def _geom(ctx: LayerCtx) -> ConvGeom:
    b, c, h, w = ctx.inputs[0].shape
    f, cg, kh, kw = ctx.weights["filter"].shape
    oh, ow = ctx.outputs[0].shape[2:]
    props = ctx.props
    s = pair(props.get("stride", 1))
    d = pair(props.get("dilation", 1))
    p = padding(props.get("padding", 0), (kh, kw), d, props.get("name", "conv2d"))
    pointwise = (kh, kw) == (1, 1) and s == (1, 1) and p == (0, 0)
    return ConvGeom(b, c, f, c // cg, (kh, kw), (oh, ow), taps((h, w), (oh, ow), (kh, kw), s, p, d),
                    pointwise)


def _prefix(buf: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The leading bytes of a helper, viewed with a (possibly smaller) shape."""
    return view(flat(buf)[:math.prod(shape)], shape)


def _chunks(ctx: LayerCtx, g: ConvGeom, step: str):
    """Sample ranges of the step's chunks (the size is the column helper's)."""
    col = ctx.helpers.get(f"col_{step}")
    size = col.shape[1] if col is not None else 1 if g.pointwise else ctx.helper(f"col_{step}")
    for n0 in range(0, g.batch, size):
        yield n0, min(g.batch, n0 + size)


def _col6(buf: np.ndarray, g: ConvGeom, n: int) -> np.ndarray:
    """A (rows, n, cols) column buffer viewed (n, c, kh, kw, oh, ow) for im2col/col2im."""
    return _prefix(buf, (g.channels, *g.kernel, n, *g.out)).transpose(3, 0, 1, 2, 4, 5)


def _columns(ctx: LayerCtx, g: ConvGeom, step: str, n0: int, n1: int) -> np.ndarray:
    """The chunk's column matrix (groups, rows, n * cols), im2col'd into the step's helper."""
    x = ctx.inputs[0]
    col = ctx.helpers.get(f"col_{step}")
    if col is None:  # pointwise, one sample per chunk: the input is the column matrix
        return view(x[n0], (g.groups, g.rows, g.cols))
    im2col(x[n0:n1], _col6(col, g, n1 - n0), g.taps)
    return _prefix(col, (g.groups, g.rows, (n1 - n0) * g.cols))


def _grads(ctx: LayerCtx, g: ConvGeom, step: str, n0: int, n1: int) -> np.ndarray:
    """The chunk's output gradient as (groups, filters / groups, n * cols)."""
    fg = g.filters // g.groups
    dy3 = view(ctx.out_grads[0], (g.batch, g.filters, g.cols))
    if n1 - n0 == 1:
        return view(dy3[n0], (g.groups, fg, g.cols))
    buf = _prefix(ctx.helper(f"grad_t_{step}"), (g.filters, n1 - n0, g.cols))
    np.copyto(buf, dy3[n0:n1].transpose(1, 0, 2))
    return view(buf, (g.groups, fg, (n1 - n0) * g.cols))


def conv_forward(ctx: LayerCtx) -> None:
    g = _geom(ctx)
    fg = g.filters // g.groups
    w3 = view(ctx.weights["filter"], (g.groups, fg, g.rows))
    y3 = view(ctx.outputs[0], (g.batch, g.filters, g.cols))
    for n0, n1 in _chunks(ctx, g, "forward"):
        cols = _columns(ctx, g, "forward", n0, n1)
        if n1 - n0 == 1:
            np.matmul(w3, cols, out=view(y3[n0], (g.groups, fg, g.cols)))
            continue
        out_t = _prefix(ctx.helper("out_t_forward"), (g.groups, fg, (n1 - n0) * g.cols))
        np.matmul(w3, cols, out=out_t)
        np.copyto(y3[n0:n1], view(out_t, (g.filters, n1 - n0, g.cols)).transpose(1, 0, 2))
    if "bias" in ctx.weights:
        y3 += ctx.weights["bias"][:, None]


def conv_calc_gradient(ctx: LayerCtx) -> None:
    g = _geom(ctx)
    dy3 = view(ctx.out_grads[0], (g.batch, g.filters, g.cols))
    if "bias" in ctx.weight_grads:
        np.sum(dy3, axis=(0, 2), out=ctx.weight_grads["bias"])
    if "filter" not in ctx.weight_grads:
        return
    dw3 = view(ctx.weight_grads["filter"], (g.groups, g.filters // g.groups, g.rows))
    for k, (n0, n1) in enumerate(_chunks(ctx, g, "calc_gradient")):
        cols = _columns(ctx, g, "calc_gradient", n0, n1)
        grads = _grads(ctx, g, "calc_gradient", n0, n1)
        target = dw3 if k == 0 else view(ctx.helper("filter_grad_part"), dw3.shape)
        np.matmul(grads, cols.transpose(0, 2, 1), out=target)
        if k:
            dw3 += target


def conv_calc_derivative(ctx: LayerCtx) -> None:
    g = _geom(ctx)
    dx = ctx.in_derivs[0]
    w3t = view(ctx.weights["filter"], (g.groups, g.filters // g.groups, g.rows))
    w3t = w3t.transpose(0, 2, 1)
    col = ctx.helpers.get("col_calc_derivative")
    for n0, n1 in _chunks(ctx, g, "calc_derivative"):
        grads = _grads(ctx, g, "calc_derivative", n0, n1)
        if col is None:
            np.matmul(w3t, grads, out=view(dx[n0], (g.groups, g.rows, g.cols)))
            continue
        np.matmul(w3t, grads, out=_prefix(col, (g.groups, g.rows, (n1 - n0) * g.cols)))
        col2im(_col6(col, g, n1 - n0), dx[n0:n1], g.taps)


# --- pooling: window by window over (batch x channel) planes, in bounded row chunks ---------

def _pool_setup(ctx: LayerCtx) -> tuple[str, tuple[Tap, ...]]:
    props = ctx.props
    kind = str(props.get("pooling", "max")).lower()
    if kind.startswith("global"):
        return kind, ()
    h, w = ctx.inputs[0].shape[2:]
    k = pair(props.get("pool_size", 2))
    s = pair(props.get("stride", 1))
    p = padding(props.get("padding", 0), k, (1, 1), props.get("name", "pooling2d"))
    return kind, taps((h, w), ctx.outputs[0].shape[2:], k, s, p)


def _planes(a: np.ndarray) -> np.ndarray:
    return view(a, (a.shape[0] * a.shape[1], *a.shape[2:]))


def _argmax(ctx: LayerCtx) -> np.ndarray:
    """The saved window index of each maximum (int32, one per output)."""
    name = "argmax" if "argmax" in ctx.helpers else "helper_idx"
    return _planes(ctx.helper(name))


def pool_forward(ctx: LayerCtx) -> None:
    """Max (first maximum wins), average (padding counts as zeros) or global pooling."""
    kind, tap_list = _pool_setup(ctx)
    x, y = _planes(ctx.inputs[0]), _planes(ctx.outputs[0])
    if kind.startswith("global"):
        x2, y1 = view(x, (x.shape[0], -1)), flat(y)
        if kind == "global_average":
            np.sum(x2, axis=1, out=y1)
            y1 *= 1.0 / x2.shape[1]
        else:
            np.max(x2, axis=1, out=y1)
            flat(_argmax(ctx))[...] = np.argmax(x2, axis=1)
        return
    if kind == "average":
        y[...] = 0
        for t in tap_list:
            if not t.empty:
                y[:, t.out_rows, t.out_cols] += x[:, t.in_rows, t.in_cols]
        y *= 1.0 / len(tap_list)
        return
    arg = _argmax(ctx)
    for s in chunks(y.shape[0], y[0].size):
        _max_chunk(x[s], y[s], arg[s], tap_list)


def _max_chunk(x: np.ndarray, y: np.ndarray, arg: np.ndarray, tap_list) -> None:
    """Branch-free running maximum over the taps (random masks make masked copies slow).

    Taps come in increasing index order, so "the index of a strictly better tap, else the old
    one" is max(old, better * index): the first maximum wins, as in PyTorch.
    """
    y[...] = -np.inf
    arg[...] = 0
    for index, t in enumerate(tap_list):
        if t.empty:
            continue
        src, dst = x[:, t.in_rows, t.in_cols], y[:, t.out_rows, t.out_cols]
        where = arg[:, t.out_rows, t.out_cols]
        if index:
            np.maximum(where, (src > dst) * np.int32(index), out=where)
        np.maximum(dst, src, out=dst)


def pool_calc_derivative(ctx: LayerCtx) -> None:
    """Each output gradient goes back to its window's maximum, or spread over the window."""
    kind, tap_list = _pool_setup(ctx)
    dy, dx = _planes(ctx.out_grads[0]), _planes(ctx.in_derivs[0])
    if kind.startswith("global"):
        dx2, dy1 = view(dx, (dx.shape[0], -1)), view(dy, (dy.shape[0], 1))
        if kind == "global_average":
            np.multiply(dy1, 1.0 / dx2.shape[1], out=dx2)
        else:
            dx2[...] = 0
            index = view(_argmax(ctx), (dx2.shape[0], 1)).astype(np.intp)
            np.put_along_axis(dx2, index, dy1, axis=1)
        return
    dx[...] = 0
    if kind == "average":
        for t in tap_list:
            if not t.empty:
                dx[:, t.in_rows, t.in_cols] += dy[:, t.out_rows, t.out_cols]
        dx *= 1.0 / len(tap_list)
        return
    arg = _argmax(ctx)
    for s in chunks(dy.shape[0], dy[0].size):
        for index, t in enumerate(tap_list):
            if t.empty:
                continue
            hit = arg[s, t.out_rows, t.out_cols] == index
            dx[s, t.in_rows, t.in_cols] += dy[s, t.out_rows, t.out_cols] * hit


register("conv2d", KernelSpec(conv_forward, conv_calc_gradient, conv_calc_derivative))
register("pooling2d", KernelSpec(pool_forward, None, pool_calc_derivative))
