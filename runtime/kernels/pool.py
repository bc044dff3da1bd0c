"""Pooling kernels (max, average, global): window by window over (batch x channel) planes,
in lanes of planes and bounded chunks of them — a lane program (runtime/kernels/program.py)
but for global pooling."""

from __future__ import annotations

import numpy as np

from trainplan.planner.layers.base import pair
from trainplan.planner.layers.conv import padding
from trainplan.runtime.kernels.base import KernelSpec, LayerCtx, chunks, flat, register, view
from trainplan.runtime.kernels.parallel import split
from trainplan.runtime.kernels.program import Call, Scratch, call, lane_program
from trainplan.runtime.kernels.windows import Tap, taps


def _pool_setup(ctx: LayerCtx) -> tuple[str, tuple[Tap, ...]]:
    setup = ctx.memo.get("pool")
    if setup is None:
        props = ctx.props
        kind = str(props.get("pooling", "max")).lower()
        if kind.startswith("global"):
            setup = kind, ()
        else:
            h, w = ctx.inputs[0].shape[2:]
            k = pair(props.get("pool_size", 2))
            s = pair(props.get("stride", 1))
            p = padding(props.get("padding", 0), k, (1, 1), props.get("name", "pooling2d"))
            setup = kind, taps((h, w), ctx.outputs[0].shape[2:], k, s, p)
        ctx.memo["pool"] = setup
    return setup


def _planes(a: np.ndarray) -> np.ndarray:
    return view(a, (a.shape[0] * a.shape[1], *a.shape[2:]))


def _argmax(ctx: LayerCtx) -> np.ndarray:
    """The saved window index of each maximum (int32, one per output)."""
    name = "argmax" if "argmax" in ctx.helpers else "helper_idx"
    return _planes(ctx.helper(name))


def pool_forward(ctx: LayerCtx) -> None:
    """Max (first maximum wins), average (padding counts as zeros) or global pooling."""
    _pool_step(ctx, "forward", _planes(ctx.inputs[0]), _planes(ctx.outputs[0]),
               _global_forward, _forward_calls)


def pool_calc_derivative(ctx: LayerCtx) -> None:
    """Each output gradient goes back to its window's maximum, or spread over the window."""
    _pool_step(ctx, "calc_derivative", _planes(ctx.out_grads[0]), _planes(ctx.in_derivs[0]),
               _global_back, _back_calls)


def _pool_step(ctx: LayerCtx, step: str, src: np.ndarray, dst: np.ndarray, global_step,
               lane_calls) -> None:
    """A step over planes, from ``src`` (x; dy) to ``dst`` (y; dx): global pooling in lanes of
    planes, else the step's lane program (``lane_calls`` per lane of planes)."""
    kind, tap_list = _pool_setup(ctx)
    arg = _argmax(ctx) if kind in ("max", "global_max") else None
    if kind.startswith("global"):
        ctx.over(src.shape[0], lambda planes: global_step(
            kind, src[planes], dst[planes], None if arg is None else arg[planes]),
            elementwise=True)
        return
    ctx.run(lane_program(ctx, step, lambda: [
        lane_calls(ctx, k, kind, tap_list, src, dst, arg, planes)
        for k, planes in enumerate(split(src.shape[0], ctx.lanes))]))


def _plane_chunks(planes: slice, per_plane: int):
    for s in chunks(planes.stop - planes.start, per_plane):
        yield slice(planes.start + s.start, planes.start + s.stop)


def _global_forward(kind: str, x: np.ndarray, y: np.ndarray, arg: np.ndarray | None) -> None:
    x2, y1 = view(x, (x.shape[0], -1)), flat(y)
    if kind == "global_average":
        np.sum(x2, axis=1, out=y1)
        y1 *= 1.0 / x2.shape[1]
    else:
        np.max(x2, axis=1, out=y1)
        flat(arg)[...] = np.argmax(x2, axis=1)


def _forward_calls(ctx: LayerCtx, lane: int, kind: str, tap_list, x: np.ndarray,
                   y: np.ndarray, arg: np.ndarray | None, planes: slice) -> list[Call]:
    """A lane's planes, chunk by chunk: the running maximum (or the sum) over the taps."""
    calls = []
    for s in _plane_chunks(planes, y[0].size):
        if kind == "average":
            calls += _average_calls(tap_list, x[s], y[s])
            continue
        shape = y[s].shape
        calls += _max_calls(x[s], y[s], arg[s], tap_list, ctx.scratch(lane, shape, bool),
                            ctx.scratch(lane, shape, np.int32))
    return calls


def _average_calls(tap_list, x: np.ndarray, y: np.ndarray) -> list[Call]:
    calls = [call(np.copyto, y, 0)]
    for t in tap_list:
        if not t.empty:
            target = y[:, t.out_rows, t.out_cols]
            calls.append(call(np.add, target, x[:, t.in_rows, t.in_cols], out=target))
    return [*calls, call(np.multiply, y, 1.0 / len(tap_list), out=y)]


def _max_calls(x: np.ndarray, y: np.ndarray, arg: np.ndarray, tap_list, better: Scratch,
               index_if: Scratch) -> list[Call]:
    """Branch-free running maximum over the taps (random masks make masked copies slow).

    Taps come in increasing index order, so "the index of a strictly better tap, else the old
    one" is max(old, better * index): the first maximum wins, as in PyTorch.
    """
    first = tap_list[0]
    covered = _covers_outputs(first, y.shape[1:])  # the first tap starts the maximum
    calls = [call(np.copyto, y, x[:, first.in_rows, first.in_cols] if covered else -np.inf),
             call(np.copyto, arg, 0)]
    for index, t in enumerate(tap_list):
        if t.empty or (index == 0 and covered):
            continue
        src, dst = x[:, t.in_rows, t.in_cols], y[:, t.out_rows, t.out_cols]
        where = arg[:, t.out_rows, t.out_cols]
        if index:
            gt, product = better.part(dst.shape), index_if.part(dst.shape)
            calls += [call(np.greater, src, dst, out=gt),
                      call(np.multiply, gt, np.int32(index), out=product),
                      call(np.maximum, where, product, out=where)]
        calls.append(call(np.maximum, dst, src, out=dst))
    return calls


def _covers_outputs(t: Tap, out: tuple[int, int]) -> bool:
    """The tap has an input for every output position."""
    return (not t.empty and t.out_rows.start == 0 and t.out_cols.start == 0
            and t.out_rows.stop == out[0] and t.out_cols.stop == out[1])


def _tiles(tap_list, plane: tuple[int, int], out: tuple[int, int]) -> bool:
    """The windows tile the plane: every input element in exactly one window (stride equal
    to the pool size, no padding, nothing left over)."""
    rows = {t.in_rows.start for t in tap_list}
    cols = {t.in_cols.start for t in tap_list}
    kh, kw = len(rows), len(cols)
    return (all(_covers_outputs(t, out) for t in tap_list)
            and sorted(rows) == list(range(kh)) and sorted(cols) == list(range(kw))
            and all(t.in_rows.step == kh and t.in_cols.step == kw for t in tap_list)
            and plane == (out[0] * kh, out[1] * kw))


def _global_back(kind: str, dy: np.ndarray, dx: np.ndarray, arg: np.ndarray | None) -> None:
    dx2, dy1 = view(dx, (dx.shape[0], -1)), view(dy, (dy.shape[0], 1))
    if kind == "global_average":
        np.multiply(dy1, 1.0 / dx2.shape[1], out=dx2)
    else:
        dx2[...] = 0
        index = view(arg, (dx2.shape[0], 1)).astype(np.intp)
        np.put_along_axis(dx2, index, dy1, axis=1)


def _back_calls(ctx: LayerCtx, lane: int, kind: str, tap_list, dy: np.ndarray,
                dx: np.ndarray, arg: np.ndarray | None, planes: slice) -> list[Call]:
    """A lane's planes, chunk by chunk: each output gradient onto its maximum, or spread."""
    calls = []
    for s in _plane_chunks(planes, dy[0].size):
        shape = dy[s].shape
        calls += _back_chunk_calls(kind, tap_list, dy[s], dx[s], None if arg is None else arg[s],
                                   ctx.scratch(lane, shape, bool),
                                   ctx.scratch(lane, shape, dx.dtype))
    return calls


def _back_chunk_calls(kind: str, tap_list, dy: np.ndarray, dx: np.ndarray,
                      arg: np.ndarray | None, hit: Scratch, spread: Scratch) -> list[Call]:
    if kind == "max" and _tiles(tap_list, dx.shape[1:], dy.shape[1:]):
        calls = []
        for index, t in enumerate(tap_list):  # one tap per input element: assign, no sum
            calls += [call(np.equal, arg, index, out=hit),
                      call(np.multiply, dy, hit, out=dx[:, t.in_rows, t.in_cols])]
        return calls
    calls = [call(np.copyto, dx, 0)]
    if kind == "average":
        for t in tap_list:
            if not t.empty:
                target = dx[:, t.in_rows, t.in_cols]
                calls.append(call(np.add, target, dy[:, t.out_rows, t.out_cols], out=target))
        return [*calls, call(np.multiply, dx, 1.0 / len(tap_list), out=dx)]
    for index, t in enumerate(tap_list):
        if t.empty:
            continue
        rows, cols = t.out_rows, t.out_cols
        tap_hit, tap_spread = hit.part(dy[:, rows, cols].shape), spread.part(dy[:, rows, cols].shape)
        target = dx[:, t.in_rows, t.in_cols]
        calls += [call(np.equal, arg[:, rows, cols], index, out=tap_hit),
                  call(np.multiply, dy[:, rows, cols], tap_hit, out=tap_spread),
                  call(np.add, target, tap_spread, out=target)]
    return calls


register("pooling2d", KernelSpec(pool_forward, None, pool_calc_derivative))
