"""Convolution kernels (grouped, strided, dilated, padded): im2col plus batched BLAS products.

Samples are processed in chunks whose size is read off the declared column helpers
(planner/layers/conv.py ``conv_chunk``), so the runtime and the plan agree on the workspace.
Forward: Y[n] = W · col(x[n]) for every sample of a chunk in one stacked product.
calc_gradient: dW = Σ_chunks dYᵀ-chunk · col-chunk — one product per chunk, the chunk's samples
laid side by side; chunks after the first go through a partial helper and are added in order.
calc_derivative: col = Wᵀ · dY[n], then col2im sums the columns back, tap by tap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.layers.base import pair
from planner.layers.conv import padding
from runtime.kernels.base import KernelSpec, LayerCtx, chunks, flat, register, view
from runtime.kernels.windows import Tap, col2im, im2col, taps


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
    return view(flat(buf)[:int(np.prod(shape))], shape)


def _col6(buf: np.ndarray, g: ConvGeom, n: int, sample_major: bool) -> np.ndarray:
    """A column buffer as (n, c, kh, kw, oh, ow) over either memory layout."""
    kh, kw = g.kernel
    if sample_major:
        return _prefix(buf, (n, g.channels, kh, kw, *g.out))
    return _prefix(buf, (g.channels, kh, kw, n, *g.out)).transpose(3, 0, 1, 2, 4, 5)


def _chunks(batch: int, size: int):
    for n0 in range(0, batch, size):
        yield n0, min(batch, n0 + size)


def conv_forward(ctx: LayerCtx) -> None:
    g = _geom(ctx)
    x, y = ctx.inputs[0], ctx.outputs[0]
    fg = g.filters // g.groups
    w3 = view(ctx.weights["filter"], (g.groups, fg, g.rows))
    if g.pointwise:
        np.matmul(w3, view(x, (g.batch, g.groups, g.rows, g.cols)),
                  out=view(y, (g.batch, g.groups, fg, g.cols)))
    else:
        col = ctx.helper("col_forward")
        for n0, n1 in _chunks(g.batch, col.shape[0]):
            im2col(x[n0:n1], _col6(col, g, n1 - n0, True), g.taps)
            np.matmul(w3, _prefix(col, (n1 - n0, g.groups, g.rows, g.cols)),
                      out=view(y[n0:n1], (n1 - n0, g.groups, fg, g.cols)))
    if "bias" in ctx.weights:
        view(y, (g.batch, g.filters, g.cols))[...] += ctx.weights["bias"][:, None]


def conv_calc_gradient(ctx: LayerCtx) -> None:
    g = _geom(ctx)
    dy3 = view(ctx.out_grads[0], (g.batch, g.filters, g.cols))
    if "bias" in ctx.weight_grads:
        np.sum(dy3, axis=(0, 2), out=ctx.weight_grads["bias"])
    if "filter" not in ctx.weight_grads:
        return
    fg = g.filters // g.groups
    dw3 = view(ctx.weight_grads["filter"], (g.groups, fg, g.rows))
    col = ctx.helpers.get("col_calc_gradient")
    size = col.shape[1] if col is not None else 1
    for k, (n0, n1) in enumerate(_chunks(g.batch, size)):
        n = n1 - n0
        if col is None:  # pointwise, one sample per chunk: the input is the column matrix
            cols = view(ctx.inputs[0][n0], (g.groups, g.rows, g.cols))
        else:
            im2col(ctx.inputs[0][n0:n1], _col6(col, g, n, False), g.taps)
            cols = _prefix(col, (g.groups, g.rows, n * g.cols))
        if size > 1:  # the chunk's output gradient, samples side by side
            grad_t = _prefix(ctx.helper("grad_t"), (g.filters, n, g.cols))
            np.copyto(grad_t, dy3[n0:n1].transpose(1, 0, 2))
            grads = view(grad_t, (g.groups, fg, n * g.cols))
        else:
            grads = view(dy3[n0], (g.groups, fg, g.cols))
        target = dw3 if k == 0 else view(ctx.helper("filter_grad_part"), dw3.shape)
        np.matmul(grads, cols.transpose(0, 2, 1), out=target)
        if k:
            dw3 += target


def conv_calc_derivative(ctx: LayerCtx) -> None:
    g = _geom(ctx)
    dx = ctx.in_derivs[0]
    fg = g.filters // g.groups
    w3t = view(ctx.weights["filter"], (g.groups, fg, g.rows)).transpose(0, 2, 1)
    dy4 = view(ctx.out_grads[0], (g.batch, g.groups, fg, g.cols))
    if g.pointwise:
        np.matmul(w3t, dy4, out=view(dx, (g.batch, g.groups, g.rows, g.cols)))
        return
    col = ctx.helper("col_calc_derivative")
    for n0, n1 in _chunks(g.batch, col.shape[0]):
        np.matmul(w3t, dy4[n0:n1], out=_prefix(col, (n1 - n0, g.groups, g.rows, g.cols)))
        col2im(_col6(col, g, n1 - n0, True), dx[n0:n1], g.taps)




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
        ys, args = y[s], arg[s]
        ys[...] = -np.inf
        args[...] = -1
        for index, t in enumerate(tap_list):
            if t.empty:
                continue
            src, dst = x[s, t.in_rows, t.in_cols], ys[:, t.out_rows, t.out_cols]
            better = src > dst
            np.copyto(dst, src, where=better)
            np.copyto(args[:, t.out_rows, t.out_cols], index, where=better)


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
            dst = dx[s, t.in_rows, t.in_cols]
            np.add(dst, dy[s, t.out_rows, t.out_cols], out=dst,
                   where=arg[s, t.out_rows, t.out_cols] == index)


register("conv2d", KernelSpec(conv_forward, conv_calc_gradient, conv_calc_derivative))
register("pooling2d", KernelSpec(pool_forward, None, pool_calc_derivative))
