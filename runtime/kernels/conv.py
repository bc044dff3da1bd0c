"""Convolution kernels (grouped, strided, dilated, padded); 3x3 "same" convolutions with many
channels run as Winograd F(2x2, 3x3) (runtime/kernels/winograd.py).

Convolution is im2col plus one BLAS product per chunk of samples, the chunk's samples side by
side in the columns. The chunk size is read off the declared column helpers
(planner/layers/conv.py ``conv_chunk``), so the runtime and the plan agree on the workspace.
Forward: Y = W · col(x), written back sample-major. calc_derivative: col = Wᵀ · dY, then col2im
sums the columns back onto dx tap by tap — or, for a "same" stride-1 convolution, dx is the
convolution of dY with the flipped filters (no summing back). Both run lanes of samples, each
lane its chunks in its own workspace (the helpers' leading axis). calc_gradient: dW = Σ_chunks
dY · colᵀ over all samples, the chunks after the first through a partial helper, added in
order: in lanes of samples, each summing its own partial dW, when the filter is small
(planner/layers/conv.py ``gradient_in_sample_lanes``); else in lanes that split each chunk by
channels (or groups, or taps for one channel), each gathering its channels' columns and
computing its own columns of dW.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from trainplan.planner.layers.base import pair
from trainplan.planner.layers.conv import COL_PAD, padding, wide_grid
from trainplan.runtime.kernels.base import KernelSpec, LayerCtx, flat, register, spans, view
from trainplan.runtime.kernels.parallel import split
from trainplan.runtime.kernels.program import Call, call, lane_program, run_calls
from trainplan.runtime.kernels.windows import (
    ShiftPlan,
    Tap,
    col2im_calls,
    col2im_wide_calls,
    im2col_calls,
    im2col_taps_calls,
    shifts,
    taps,
    unpadded,
    wide_run,
    window_view,
)
from trainplan.runtime.kernels.winograd import (
    winograd_calc_derivative,
    winograd_calc_gradient,
    winograd_forward,
)


@dataclass(frozen=True)
class ConvGeom:
    batch: int
    channels: int
    filters: int
    groups: int
    kernel: tuple[int, int]
    out: tuple[int, int]
    taps: tuple[Tap, ...]
    shifts: ShiftPlan | None
    pointwise: bool
    grid_width: int  # output rows as the workspaces hold them: the input's width when wide
    run: int  # a wide tap's flat run

    @property
    def rows(self) -> int:  # column-matrix rows per group
        return self.channels // self.groups * self.kernel[0] * self.kernel[1]

    @property
    def cols(self) -> int:  # outputs per sample
        return self.out[0] * self.out[1]

    @property
    def wide(self) -> bool:
        return self.grid_width != self.out[1]

    @property
    def gcols(self) -> int:  # workspace columns per sample
        return self.out[0] * self.grid_width


def _geom(ctx: LayerCtx) -> ConvGeom:
    """The layer's geometry, derived once per context."""
    geom = ctx.memo.get("conv")
    if geom is None:
        b, c, h, w = ctx.inputs[0].shape
        f, cg, kh, kw = ctx.weights["filter"].shape
        oh, ow = ctx.outputs[0].shape[2:]
        props = ctx.props
        s = pair(props.get("stride", 1))
        d = pair(props.get("dilation", 1))
        p = padding(props.get("padding", 0), (kh, kw), d, props.get("name", "conv2d"))
        pointwise = (kh, kw) == (1, 1) and s == (1, 1) and p == (0, 0)
        tap_list = taps((h, w), (oh, ow), (kh, kw), s, p, d)
        geom = ctx.memo["conv"] = ConvGeom(
            b, c, f, c // cg, (kh, kw), (oh, ow), tap_list, shifts(tap_list, (h, w), (oh, ow)),
            pointwise, ow, wide_run(tap_list, (h, w), (oh, ow)))
        ctx.memo["conv_derivative"] = (dataclasses.replace(geom, grid_width=w)
                                       if wide_grid(s, p, ow, w) else geom)
    return geom


def _derivative_geom(ctx: LayerCtx) -> ConvGeom:
    """calc_derivative's geometry: rows as wide as the input's when ``wide_grid``."""
    _geom(ctx)
    return ctx.memo["conv_derivative"]


def _prefix(buf: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The leading bytes of a helper, viewed with a (possibly smaller) shape."""
    return view(flat(buf)[:math.prod(shape)], shape)


def _chunk_size(ctx: LayerCtx, g: ConvGeom, step: str) -> int:
    """Samples per chunk of the step (the column helper's; 1 when the input is the columns)."""
    col = ctx.helpers.get(f"col_{step}")
    if col is None:
        return 1 if g.pointwise else ctx.helper(f"col_{step}").shape[-1]  # KernelError
    return _samples(col, g.gcols)


def _samples(col: np.ndarray, width: int) -> int:
    """Samples per chunk of a column helper (rows, chunk x width + COL_PAD)."""
    return (col.shape[-1] - COL_PAD) // width


def _col_matrix(buf: np.ndarray, rows: int, length: int) -> np.ndarray:
    """The leading bytes of a column helper as a (rows, length) matrix whose rows are COL_PAD
    elements longer (planner/layers/conv.py: a power-of-two row stride slows BLAS)."""
    return _prefix(buf, (rows, length + COL_PAD))[:, :length]


def _col6(buf: np.ndarray, g: ConvGeom, n: int) -> np.ndarray:
    """A column helper's (rows, n x cols) matrix viewed (n, c, kh, kw, oh, ow) for
    im2col/col2im, or (n, c, kh, kw, oh * w) when the rows are wide."""
    m = _col_matrix(buf, g.groups * g.rows, n * g.gcols)
    if g.wide:
        return view(m, (g.channels, *g.kernel, n, g.gcols)).transpose(3, 0, 1, 2, 4)
    return view(m, (g.channels, *g.kernel, n, *g.out)).transpose(3, 0, 1, 2, 4, 5)


def _col3(buf: np.ndarray, g: ConvGeom, n: int) -> np.ndarray:
    """A column helper's matrix as the product sees it: (groups, rows, n x cols)."""
    return view(_col_matrix(buf, g.groups * g.rows, n * g.gcols), (g.groups, g.rows, n * g.gcols))


def _windows(ctx: LayerCtx, g: ConvGeom) -> np.ndarray | None:
    """The input's windows (n, c, kh, kw, oh, ow) when no tap is padded, made once per input
    array."""
    x = ctx.inputs[0]
    made = ctx.memo.get("windows")
    if made is None or made[0] is not x:
        made = ctx.memo["windows"] = (
            x, window_view(x, g.taps, (*g.kernel, *g.out)) if unpadded(g.taps) else None)
    return made[1]


def _columns(ctx: LayerCtx, col: np.ndarray | None, g: ConvGeom, n0: int, n1: int,
             channels: slice = slice(None), which: slice | None = None) -> np.ndarray:
    """The chunk's column matrix (groups, rows, n * cols), im2col'd (the ``channels`` only, or
    the taps ``which`` only) into ``col`` — or, pointwise one sample at a time (``col`` None),
    the input itself."""
    calls, cols = _column_calls(ctx, col, g, n0, n1, channels, which)
    run_calls(calls)
    return cols


def _column_calls(ctx: LayerCtx, col: np.ndarray | None, g: ConvGeom, n0: int, n1: int,
                  channels: slice = slice(None), which: slice | None = None
                  ) -> tuple[list[Call], np.ndarray]:
    """``_columns`` as the calls that fill it, and the column matrix."""
    x = ctx.inputs[0]
    if col is None:
        return [], view(x[n0], (g.groups, g.rows, g.cols))
    col6 = _col6(col, g, n1 - n0)[:, channels]
    windows = _windows(ctx, g)
    windows = None if windows is None else windows[n0:n1, channels]
    calls = (im2col_calls(x[n0:n1, channels], col6, g.taps, g.shifts, windows)
             if which is None else
             im2col_taps_calls(x[n0:n1, channels], col6, g.taps, which, windows))
    return calls, _col3(col, g, n1 - n0)


def _transposed(dy3: np.ndarray, buf: np.ndarray | None, g: ConvGeom, n0: int, n1: int,
                filters: slice = slice(None)) -> np.ndarray:
    """The chunk's output gradient as (groups, filters / groups, n * cols); several samples,
    or wide rows (zeros past the real outputs), are copied (the ``filters`` only) into ``buf``
    laid out (filters, n x cols), its rows padded as a column helper's."""
    calls, out = _transposed_calls(dy3, buf, g, n0, n1, filters)
    run_calls(calls)
    return out


def _transposed_calls(dy3: np.ndarray, buf: np.ndarray | None, g: ConvGeom, n0: int, n1: int,
                      filters: slice = slice(None)) -> tuple[list[Call], np.ndarray]:
    """``_transposed`` as the calls that do it, and the matrix they fill."""
    fg = g.filters // g.groups
    if n1 - n0 == 1 and not g.wide:
        return [], view(dy3[n0], (g.groups, fg, g.cols))
    m = _col_matrix(buf, g.filters, (n1 - n0) * g.gcols)
    if g.wide:
        out = view(m, (g.filters, n1 - n0, g.out[0], g.grid_width))
        dy4 = view(dy3, (g.batch, g.filters, *g.out))
        calls = [call(np.copyto, out[filters, :, :, :g.out[1]],
                      dy4[n0:n1, filters].transpose(1, 0, 2, 3)),
                 call(np.copyto, out[filters, :, :, g.out[1]:], 0)]
    else:
        out = view(m, (g.filters, n1 - n0, g.cols))
        calls = [call(np.copyto, out[filters], dy3[n0:n1, filters].transpose(1, 0, 2))]
    return calls, view(out, (g.groups, fg, (n1 - n0) * g.gcols))


def _lane(helper: np.ndarray | None, lane: int) -> np.ndarray | None:
    return None if helper is None else helper[lane]


def _declared_lanes(ctx: LayerCtx, helper: np.ndarray | None) -> None:
    """Run no more lanes than the step's workspace declares (its leading axis: one for a
    convolution whose columns are too large to hold twice, planner/layers/conv.py)."""
    if helper is not None:
        ctx.lanes = min(ctx.lanes, helper.shape[0])


def conv_forward(ctx: LayerCtx) -> None:
    if "wino_v_forward" in ctx.helpers:
        winograd_forward(ctx)
        return
    g = _geom(ctx)
    col, out_t = ctx.helpers.get("col_forward"), ctx.helpers.get("out_t_forward")
    _declared_lanes(ctx, col if col is not None else out_t)
    ctx.run(lane_program(ctx, "forward", lambda: _forward_lanes(ctx, g, col, out_t)))


def _forward_lanes(ctx: LayerCtx, g: ConvGeom, col, out_t) -> list[list[Call]]:
    """Per lane of samples, per chunk: im2col, Y = W · col, Y back sample-major, + bias."""
    fg = g.filters // g.groups
    w3 = view(ctx.weights["filter"], (g.groups, fg, g.rows))
    y3 = view(ctx.outputs[0], (g.batch, g.filters, g.cols))
    size = _chunk_size(ctx, g, "forward")
    bias = ctx.weights.get("bias")

    def chunk(k: int, j: int, n0: int, n1: int) -> list[Call]:
        fill, cols = _column_calls(ctx, _lane(col, k), g, n0, n1)
        calls = [*fill, *_sample_major_calls(w3, cols, y3, _lane(out_t, k), g, n0, n1)]
        if bias is not None:
            calls.append(call(np.add, y3[n0:n1], bias[:, None], out=y3[n0:n1]))
        return calls

    return _lanes_of_chunks(ctx, g, size, chunk)


def _lanes_of_chunks(ctx: LayerCtx, g: ConvGeom, size: int, chunk) -> list[list[Call]]:
    """Per lane of samples, the calls of each of its chunks of ``size`` samples in order:
    ``chunk(lane, j, n0, n1)`` for the lane's j-th chunk, samples n0:n1."""
    return [[c for j, (n0, n1) in enumerate(spans(part, size)) for c in chunk(k, j, n0, n1)]
            for k, part in enumerate(split(g.batch, ctx.lanes))]


def _sample_major_calls(w: np.ndarray, cols: np.ndarray, dst3: np.ndarray,
                        buf: np.ndarray | None, g: ConvGeom, n0: int, n1: int) -> list[Call]:
    """The product ``w · cols`` of samples n0:n1 into ``dst3`` (batch, channels, cols): for one
    sample straight in, for several through ``buf`` laid out (channels, n x cols) and copied
    back sample-major."""
    channels, n = dst3.shape[1], n1 - n0
    per_group = channels // g.groups
    if n == 1:
        return [call(np.matmul, w, cols, out=view(dst3[n0], (g.groups, per_group, g.cols)))]
    product = view(_col_matrix(buf, channels, n * g.cols), (g.groups, per_group, n * g.cols))
    return [call(np.matmul, w, cols, out=product),
            call(np.copyto, dst3[n0:n1], view(product, (channels, n, g.cols)).transpose(1, 0, 2))]


def _channel_lanes(g: ConvGeom, lanes: int) -> list[tuple[slice, slice, tuple, slice | None]]:
    """calc_gradient's lanes: (input channels, their column rows, their index into the
    (groups, filters / groups, rows) filter gradient, the taps or None for all); whole groups
    when grouped, taps when there is one channel."""
    kk = g.kernel[0] * g.kernel[1]
    out = []
    if g.groups > 1:
        per = g.channels // g.groups
        for s in split(g.groups, lanes):
            out.append((slice(s.start * per, s.stop * per), slice(None), (s,), None))
    elif g.channels == 1:
        for s in split(kk, lanes):
            out.append((slice(None), s, (slice(None), slice(None), s), s))
    else:
        for s in split(g.channels, lanes):
            rows = slice(s.start * kk, s.stop * kk)
            out.append((s, rows, (slice(None), slice(None), rows), None))
    return out


def conv_calc_gradient(ctx: LayerCtx) -> None:
    if "wino_v_calc_gradient" in ctx.helpers:
        winograd_calc_gradient(ctx)
        return
    g = _geom(ctx)
    dy3 = view(ctx.out_grads[0], (g.batch, g.filters, g.cols))
    if "bias" in ctx.weight_grads:
        np.sum(dy3, axis=(0, 2), out=ctx.weight_grads["bias"])
    if "filter" not in ctx.weight_grads:
        return
    dw3 = view(ctx.weight_grads["filter"], (g.groups, g.filters // g.groups, g.rows))
    if "filter_grad_lanes" in ctx.helpers:
        _gradient_in_sample_lanes(ctx, g, dy3, dw3)
        return
    part = ctx.helpers.get("filter_grad_part")
    col, grad_t = ctx.helpers.get("col_calc_gradient"), ctx.helpers.get("grad_t_calc_gradient")
    size = _chunk_size(ctx, g, "calc_gradient")
    filter_lanes, channel_lanes = split(g.filters, ctx.lanes), _channel_lanes(g, ctx.lanes)
    for k, (n0, n1) in enumerate(spans(slice(0, g.batch), size)):
        if n1 - n0 > 1:  # every lane needs every filter's gradient: transpose them first
            ctx.each_lane(lambda i, n0=n0, n1=n1: _transposed(dy3, grad_t, g, n0, n1,
                                                              filter_lanes[i]))
        grads = _transposed_view(dy3, grad_t, g, n0, n1)

        def lane(i: int, k=k, n0=n0, n1=n1, grads=grads) -> None:
            channels, rows, index, which = channel_lanes[i]
            cols = _columns(ctx, col, g, n0, n1, channels, which)
            target = dw3 if k == 0 else view(part, dw3.shape)
            np.matmul(grads[index[:1]], cols[index[:1] + (rows,)].transpose(0, 2, 1),
                      out=target[index])
            if k:
                dw3[index] += target[index]

        ctx.each_lane(lane)


def _gradient_in_sample_lanes(ctx: LayerCtx, g: ConvGeom, dy3: np.ndarray,
                              dw3: np.ndarray) -> None:
    """dW = Σ over lanes of samples of each lane's Σ over its chunks, added in lane order. A
    lane sums dWᵀ = col · dYᵀ into its ``filter_grad_lanes``: BLAS runs the product with the
    columns untransposed about a fifth faster than dY · colᵀ (resnet18's first stage)."""
    shape_t = (g.groups, g.rows, g.filters // g.groups)
    sums = [view(buf, shape_t) for buf in ctx.helper("filter_grad_lanes")]
    ctx.run(lane_program(ctx, "calc_gradient", lambda: _gradient_lanes(ctx, g, dy3, sums)))
    lanes = split(g.batch, ctx.lanes)
    used = [k for k in range(ctx.lanes) if lanes[k].stop > lanes[k].start]
    np.copyto(dw3, sums[used[0]].transpose(0, 2, 1))
    for k in used[1:]:
        dw3 += sums[k].transpose(0, 2, 1)


def _gradient_lanes(ctx: LayerCtx, g: ConvGeom, dy3: np.ndarray,
                    sums: list[np.ndarray]) -> list[list[Call]]:
    """Per lane of samples, per chunk: im2col, dY transposed, the lane's partial dWᵀ."""
    col, grad_t = ctx.helpers.get("col_calc_gradient"), ctx.helpers.get("grad_t_calc_gradient")
    part = ctx.helpers.get("filter_grad_part")
    shape_t = sums[0].shape
    size = _chunk_size(ctx, g, "calc_gradient")

    def chunk(k: int, j: int, n0: int, n1: int) -> list[Call]:
        fill, cols = _column_calls(ctx, _lane(col, k), g, n0, n1)
        copy, grads = _transposed_calls(dy3, _lane(grad_t, k), g, n0, n1)
        target = sums[k] if j == 0 else view(part[k], shape_t)
        calls = [*fill, *copy, call(np.matmul, cols, grads.transpose(0, 2, 1), out=target)]
        return [*calls, call(np.add, sums[k], target, out=sums[k])] if j else calls

    return _lanes_of_chunks(ctx, g, size, chunk)


def _transposed_view(dy3: np.ndarray, buf: np.ndarray | None, g: ConvGeom, n0: int,
                     n1: int) -> np.ndarray:
    """The chunk's output gradient (groups, filters / groups, n * cols) once transposed."""
    fg = g.filters // g.groups
    if n1 - n0 == 1:
        return view(dy3[n0], (g.groups, fg, g.cols))
    return view(_col_matrix(buf, g.filters, (n1 - n0) * g.cols), (g.groups, fg, (n1 - n0) * g.cols))


def _derivative_as_convolution(ctx: LayerCtx, g: ConvGeom) -> None:
    """dx as a "same" stride-1 convolution of dY with the filters flipped, channels and
    filters swapped (planner/layers/conv.py ``derivative_as_convolution``): W' = the
    ``filter_flipped`` helper, W'[c, f, i, j] = W[f, c, kh-1-i, kw-1-j] per group; then per
    chunk im2col(dY) by flat shifts and one product W' · col, laid out (channels, n, cols)."""
    kh, kw = g.kernel
    fg, cg = g.filters // g.groups, g.channels // g.groups
    w5 = view(ctx.weights["filter"], (g.groups, fg, cg, kh, kw))
    flip = ctx.helper("filter_flipped")
    np.copyto(view(flip, (g.groups, cg, fg, kh, kw)), w5.transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1])
    wf3 = view(flip, (g.groups, cg, fg * kh * kw))
    col, dx_t = ctx.helpers["col_calc_derivative"], ctx.helpers.get("dx_t_calc_derivative")
    _declared_lanes(ctx, col)
    ctx.run(lane_program(ctx, "calc_derivative", lambda: _flipped_lanes(ctx, g, wf3, col, dx_t)))


def _flipped_lanes(ctx: LayerCtx, g: ConvGeom, wf3: np.ndarray, col: np.ndarray,
                   dx_t: np.ndarray | None) -> list[list[Call]]:
    """Per lane of samples, per chunk: im2col of dY by flat shifts, dx = W' · col, laid back
    sample-major."""
    kh, kw = g.kernel
    dy = ctx.out_grads[0]
    dx3 = view(ctx.in_derivs[0], (g.batch, g.channels, g.cols))

    def chunk(k: int, j: int, n0: int, n1: int) -> list[Call]:
        n = n1 - n0
        m = _col_matrix(col[k], g.filters * kh * kw, n * g.cols)
        col6 = view(m, (g.filters, kh, kw, n, *g.out)).transpose(3, 0, 1, 2, 4, 5)
        cols = view(m, (g.groups, g.filters // g.groups * kh * kw, n * g.cols))
        return [*im2col_calls(dy[n0:n1], col6, g.taps, g.shifts),
                *_sample_major_calls(wf3, cols, dx3, _lane(dx_t, k), g, n0, n1)]

    return _lanes_of_chunks(ctx, g, _samples(col, g.cols), chunk)


def conv_calc_derivative(ctx: LayerCtx) -> None:
    if "wino_v_calc_derivative" in ctx.helpers:
        winograd_calc_derivative(ctx)
        return
    if "filter_flipped" in ctx.helpers:
        _derivative_as_convolution(ctx, _geom(ctx))
        return
    g = _derivative_geom(ctx)
    col, grad_t = ctx.helpers.get("col_calc_derivative"), ctx.helpers.get(
        "grad_t_calc_derivative")
    _declared_lanes(ctx, col if col is not None else grad_t)
    ctx.run(lane_program(ctx, "calc_derivative", lambda: _derivative_lanes(ctx, g, col, grad_t)))


def _derivative_lanes(ctx: LayerCtx, g: ConvGeom, col, grad_t) -> list[list[Call]]:
    """Per lane of samples, per chunk: dY transposed, col = Wᵀ · dY, col2im onto dx."""
    dx = ctx.in_derivs[0]
    dy3 = view(ctx.out_grads[0], (g.batch, g.filters, g.cols))
    w3t = view(ctx.weights["filter"], (g.groups, g.filters // g.groups, g.rows))
    w3t = w3t.transpose(0, 2, 1)
    size = _chunk_size(ctx, g, "calc_derivative")

    def chunk(k: int, j: int, n0: int, n1: int) -> list[Call]:
        copy, grads = _transposed_calls(dy3, _lane(grad_t, k), g, n0, n1)
        if col is None:
            return [*copy, call(np.matmul, w3t, grads,
                                out=view(dx[n0], (g.groups, g.rows, g.cols)))]
        col6 = _col6(col[k], g, n1 - n0)
        return [*copy, call(np.matmul, w3t, grads, out=_col3(col[k], g, n1 - n0)),
                *(col2im_wide_calls(col6, dx[n0:n1], g.taps, g.run) if g.wide
                  else col2im_calls(col6, dx[n0:n1], g.taps, g.shifts))]

    return _lanes_of_chunks(ctx, g, size, chunk)


register("conv2d", KernelSpec(conv_forward, conv_calc_gradient, conv_calc_derivative))
