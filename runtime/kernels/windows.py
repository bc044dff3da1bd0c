"""Sliding windows over (rows, cols) planes: one ``Tap`` per kernel offset, im2col and col2im.

A tap (i, j) of a kernel with stride s, padding p and dilation d pairs output position o with
input position ``o * s - p + i * d``. Each tap knows the block of outputs whose input is inside
the plane, so padding is never materialised: out-of-plane columns are zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


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


def im2col(x: np.ndarray, col: np.ndarray, tap_list: tuple[Tap, ...]) -> None:
    """Columns of ``x`` (n, c, h, w) into ``col`` viewed (n, c, kh, kw, oh, ow)."""
    if _unpadded(tap_list):  # every window inside the plane: one strided copy
        np.copyto(col, _windows(x, tap_list, col.shape[2:]))
        return
    for t in tap_list:
        dst = col[:, :, t.i, t.j]
        if t.empty:
            dst[...] = 0
            continue
        dst[:, :, t.out_rows, t.out_cols] = x[:, :, t.in_rows, t.in_cols]
        for rows, cols in t.borders:
            dst[:, :, rows, cols] = 0


def _unpadded(tap_list: tuple[Tap, ...]) -> bool:
    return all(not t.empty and not t.borders for t in tap_list)


def _windows(x: np.ndarray, tap_list: tuple[Tap, ...], shape: tuple[int, ...]) -> np.ndarray:
    """A (n, c, kh, kw, oh, ow) view of x's windows (no copy), for an unpadded kernel."""
    kh, kw, oh, ow = shape
    first, last = tap_list[0], tap_list[-1]
    dil = ((last.in_rows.start - first.in_rows.start) // max(kh - 1, 1),
           (last.in_cols.start - first.in_cols.start) // max(kw - 1, 1))
    span = ((kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1)
    windows = np.lib.stride_tricks.sliding_window_view(x, span, axis=(2, 3))
    windows = windows[:, :, ::first.in_rows.step, ::first.in_cols.step,
                      ::max(dil[0], 1), ::max(dil[1], 1)]
    return windows[:, :, :oh, :ow].transpose(0, 1, 4, 5, 2, 3)


def col2im(col: np.ndarray, dx: np.ndarray, tap_list: tuple[Tap, ...]) -> None:
    """Sum columns ``col`` (n, c, kh, kw, oh, ow) back onto ``dx`` (n, c, h, w), tap by tap.

    A tap that reads the whole plane (stride 1) is assigned first instead of zeroing ``dx``;
    the others are added in kernel order, the same order whatever the chunk.
    """
    plane = dx.shape[2:]
    full = next((t for t in tap_list if _covers(t, plane)), None)
    if full is None:
        dx[...] = 0
    else:
        np.copyto(dx, col[:, :, full.i, full.j])
    for t in tap_list:
        if not t.empty and t is not full:
            dx[:, :, t.in_rows, t.in_cols] += col[:, :, t.i, t.j, t.out_rows, t.out_cols]


def _covers(t: Tap, plane: tuple[int, int]) -> bool:
    """The tap's outputs read every input element of the plane, one to one."""
    return (not t.empty and t.in_rows == slice(0, plane[0], 1)
            and t.in_cols == slice(0, plane[1], 1)
            and t.out_rows.stop - t.out_rows.start == plane[0]
            and t.out_cols.stop - t.out_cols.start == plane[1])
