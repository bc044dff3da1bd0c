"""Sliding windows over (rows, cols) planes: one ``Tap`` per kernel offset, im2col and col2im.

A tap (i, j) of a kernel with stride s, padding p and dilation d pairs output position o with
input position ``o * s - p + i * d``. Each tap knows the block of outputs whose input is inside
the plane, so padding is never materialised: out-of-plane columns are zeros.

When the stride is 1 and output rows are as wide as input rows (a "same" convolution), a tap is
one shift of the whole flattened plane: im2col copies one contiguous run per (sample, channel,
tap) and then zeroes the few out-of-plane elements (whole rows at the top or bottom, a column
strip at the sides), instead of one short copy per output row; col2im adds back the same way.
Each is given as the numpy calls that do it (runtime/kernels/program.py), which a kernel builds
once into its lanes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from trainplan.runtime.kernels.program import Call, call


@dataclass(frozen=True)
class Tap:
    """One kernel offset: the valid output block and the input elements it reads."""

    i: int
    j: int
    out_rows: slice
    out_cols: slice
    in_rows: slice
    in_cols: slice
    empty: bool
    borders: tuple[tuple[slice, slice], ...]  # output blocks outside the plane


def _valid(size: int, n_out: int, offset: int, stride: int) -> tuple[int, int]:
    """Outputs o in [lo, hi) with 0 <= o * stride + offset < size."""
    lo = max(0, -(offset // stride))  # ceil(-offset / stride)
    last = size - 1 - offset
    hi = min(n_out, last // stride + 1) if last >= 0 else 0
    return lo, max(lo, hi)


@lru_cache(maxsize=512)
def taps(plane: tuple[int, int], out: tuple[int, int], kernel: tuple[int, int],
         stride: tuple[int, int], pad: tuple[int, int],
         dilation: tuple[int, int] = (1, 1)) -> tuple[Tap, ...]:
    """Every tap of a kernel, row-major (the filter's (kh, kw) order)."""
    result = []
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            r_off, c_off = i * dilation[0] - pad[0], j * dilation[1] - pad[1]
            r0, r1 = _valid(plane[0], out[0], r_off, stride[0])
            c0, c1 = _valid(plane[1], out[1], c_off, stride[1])
            borders = tuple(b for b in (
                (slice(0, r0), slice(None)), (slice(r1, out[0]), slice(None)),
                (slice(r0, r1), slice(0, c0)), (slice(r0, r1), slice(c1, out[1])),
            ) if b[0].stop > b[0].start and (b[1].stop is None or b[1].stop > b[1].start))
            in_rows = slice(r0 * stride[0] + r_off, (r1 - 1) * stride[0] + r_off + 1, stride[0])
            in_cols = slice(c0 * stride[1] + c_off, (c1 - 1) * stride[1] + c_off + 1, stride[1])
            result.append(Tap(i, j, slice(r0, r1), slice(c0, c1), in_rows, in_cols,
                              r1 == r0 or c1 == c0, borders))
    return tuple(result)


@dataclass(frozen=True)
class Shift:
    """A tap as a shift of flattened planes: output positions [start, stop) read input positions
    ``offset`` further on (in between, the run wraps round row ends)."""

    tap: Tap
    start: int
    stop: int
    offset: int


@dataclass(frozen=True)
class ShiftPlan:
    """Every non-empty tap as a Shift; the out-of-plane outputs are, whatever the other kernel
    index, the row ``bands`` (kernel row i, output rows) and the column ``strips`` (kernel
    column j, output columns): zeroed once per kernel row and column, not per tap."""

    shifts: tuple[Shift, ...]
    bands: tuple[tuple[int, slice], ...]
    strips: tuple[tuple[int, slice], ...]


def shifts(tap_list: tuple[Tap, ...], plane: tuple[int, int],
           out: tuple[int, int]) -> ShiftPlan | None:
    """The taps as a ShiftPlan, or None unless the stride is 1 and the output rows are as wide
    as the input rows (then output (r, q) reads input (r + dr, q + dc) for the tap's fixed dr,
    dc: one flat offset)."""
    if out[1] != plane[1] or any(
            not t.empty and (t.in_rows.step != 1 or t.in_cols.step != 1) for t in tap_list):
        return None
    width, result, bands, strips = plane[1], [], {}, {}
    for t in tap_list:
        r0, r1, c0, c1 = t.out_rows.start, t.out_rows.stop, t.out_cols.start, t.out_cols.stop
        bands[t.i] = (slice(0, r0), slice(r1, out[0])) if r1 > r0 else (slice(0, out[0]),)
        strips[t.j] = (slice(0, c0), slice(c1, out[1])) if c1 > c0 else (slice(0, out[1]),)
        if not t.empty:
            offset = (t.in_rows.start - r0) * width + (t.in_cols.start - c0)
            result.append(Shift(t, r0 * width + c0, (r1 - 1) * width + c1, offset))
    return ShiftPlan(tuple(result),
                     tuple((i, s) for i, cut in bands.items() for s in cut if s.stop > s.start),
                     tuple((j, s) for j, cut in strips.items() for s in cut if s.stop > s.start))


def im2col_calls(x: np.ndarray, col: np.ndarray, tap_list: tuple[Tap, ...],
                 plan: ShiftPlan | None = None, windows: np.ndarray | None = None) -> list[Call]:
    """The calls putting the columns of ``x`` (n, c, h, w) into ``col`` viewed (n, c, kh, kw,
    oh, ow) (runtime/kernels/program.py); ``plan``: the taps' ``shifts`` when there are;
    ``windows``: ``window_view(x)`` when already made."""
    if windows is not None or unpadded(tap_list):  # every window inside the plane: one copy
        return [call(np.copyto, col, window_view(x, tap_list, col.shape[2:])
                     if windows is None else windows)]
    if plan is not None:
        return _im2col_shifted(x, col, plan)
    out = []
    for t in tap_list:
        dst = col[:, :, t.i, t.j]
        if t.empty:
            out.append(call(np.copyto, dst, 0))
            continue
        out.append(call(np.copyto, dst[:, :, t.out_rows, t.out_cols],
                        x[:, :, t.in_rows, t.in_cols]))
        out += [call(np.copyto, dst[:, :, rows, cols], 0) for rows, cols in t.borders]
    return out


def im2col_taps_calls(x: np.ndarray, col: np.ndarray, tap_list: tuple[Tap, ...],
                      which: slice, windows: np.ndarray | None = None) -> list[Call]:
    """The calls filling the columns of the taps ``tap_list[which]`` only (as ``im2col``
    fills them)."""
    out = []
    for t in tap_list[which]:
        dst = col[:, :, t.i, t.j]
        if windows is not None:
            out.append(call(np.copyto, dst, windows[:, :, t.i, t.j]))
        elif t.empty:
            out.append(call(np.copyto, dst, 0))
        else:
            out.append(call(np.copyto, dst[:, :, t.out_rows, t.out_cols],
                            x[:, :, t.in_rows, t.in_cols]))
            out += [call(np.copyto, dst[:, :, rows, cols], 0) for rows, cols in t.borders]
    return out


def wide_run(tap_list: tuple[Tap, ...], plane: tuple[int, int], out: tuple[int, int]) -> int:
    """On output rows as wide as the input's (an unpadded stride-1 kernel), the flat length
    every tap copies: up to the last real output."""
    return (out[0] - 1) * plane[1] + out[1]


def _wide_offset(t: Tap, width: int) -> int:
    return t.in_rows.start * width + t.in_cols.start


def col2im_wide_calls(col: np.ndarray, dx: np.ndarray, tap_list: tuple[Tap, ...],
                      run: int) -> list[Call]:
    """The calls that sum columns ``col`` (n, c, kh, kw, oh * w) of an unpadded stride-1
    kernel on output rows w wide, zero past each row's real outputs, back onto ``dx``
    (n, c, h, w) in kernel order: one flat run per plane and tap (the zeros land on real
    inputs and add nothing)."""
    dst = _flat(dx)
    out = [call(np.copyto, dx, 0)]
    for t in tap_list:
        off = _wide_offset(t, dx.shape[3])
        target = dst[:, :, off:off + run]
        out.append(call(np.add, target, col[:, :, t.i, t.j, :run], out=target))
    return out


def _flat(a: np.ndarray) -> np.ndarray:
    """(n, c, rows, cols) with contiguous planes as (n, c, rows * cols), a view (ValueError
    if the planes are not contiguous)."""
    n, c, h, w = a.shape
    flat = a.view()
    flat.shape = (n, c, h * w)
    return flat


def _im2col_shifted(x: np.ndarray, col: np.ndarray, plan: ShiftPlan) -> list[Call]:
    src = _flat(x)
    out = [call(np.copyto, _flat(col[:, :, sh.tap.i, sh.tap.j])[:, :, sh.start:sh.stop],
                src[:, :, sh.start + sh.offset:sh.stop + sh.offset]) for sh in plan.shifts]
    out += [call(np.copyto, col[:, :, i, :, rows], 0) for i, rows in plan.bands]
    out += [call(np.copyto, col[:, :, :, j, :, cols], 0) for j, cols in plan.strips]
    return out


def unpadded(tap_list: tuple[Tap, ...]) -> bool:
    return all(not t.empty and not t.borders for t in tap_list)


def window_view(x: np.ndarray, tap_list: tuple[Tap, ...],
                shape: tuple[int, ...]) -> np.ndarray:
    """A (n, c, kh, kw, oh, ow) view of x's windows (no copy), for an unpadded kernel. Make it
    once per array and slice it: making it reads ``__array_interface__``, which has been seen
    to allocate megabytes inside a long-running process."""
    kh, kw, oh, ow = shape
    first, last = tap_list[0], tap_list[-1]
    dil = ((last.in_rows.start - first.in_rows.start) // max(kh - 1, 1),
           (last.in_cols.start - first.in_cols.start) // max(kw - 1, 1))
    span = ((kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1)
    windows = np.lib.stride_tricks.sliding_window_view(x, span, axis=(2, 3))
    windows = windows[:, :, ::first.in_rows.step, ::first.in_cols.step,
                      ::max(dil[0], 1), ::max(dil[1], 1)]
    return windows[:, :, :oh, :ow].transpose(0, 1, 4, 5, 2, 3)


def col2im_calls(col: np.ndarray, dx: np.ndarray, tap_list: tuple[Tap, ...],
                 plan: ShiftPlan | None = None) -> list[Call]:
    """The calls that sum columns ``col`` (n, c, kh, kw, oh, ow) back onto ``dx``
    (n, c, h, w), tap by tap.

    A tap that reads the whole plane (stride 1) is assigned first instead of zeroing ``dx``;
    the others are added in kernel order, the same order whatever the chunk. With a flat-shift
    plan the out-of-plane elements of ``col`` are overwritten with zeros.
    """
    plane = dx.shape[2:]
    full = next((t for t in tap_list if _covers(t, plane)), None)
    out = [call(np.copyto, dx, 0 if full is None else col[:, :, full.i, full.j])]
    if plan is not None:  # the columns are scratch: their out-of-plane strips become zeros
        out += [call(np.copyto, col[:, :, :, j, :, cols], 0) for j, cols in plan.strips]
        dst = _flat(dx)
        for sh in plan.shifts:
            if sh.tap is not full:
                target = dst[:, :, sh.start + sh.offset:sh.stop + sh.offset]
                out.append(call(np.add, target,
                                _flat(col[:, :, sh.tap.i, sh.tap.j])[:, :, sh.start:sh.stop],
                                out=target))
        return out
    for t in tap_list:
        if not t.empty and t is not full:
            target = dx[:, :, t.in_rows, t.in_cols]
            out.append(call(np.add, target, col[:, :, t.i, t.j, t.out_rows, t.out_cols],
                            out=target))
    return out


def _covers(t: Tap, plane: tuple[int, int]) -> bool:
    """The tap's outputs read every input element of the plane, one to one."""
    return (not t.empty and t.in_rows == slice(0, plane[0], 1)
            and t.in_cols == slice(0, plane[1], 1)
            and t.out_rows.stop - t.out_rows.start == plane[0]
            and t.out_cols.stop - t.out_cols.start == plane[1])
