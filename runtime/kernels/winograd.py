"""Winograd F(2x2, 3x3) convolution: 3x3, stride 1, padding 1, one group, many channels
(planner/layers/conv.py ``winograd``).

Each 2x2 block of outputs comes from a 4x4 tile of the padded input: Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A
per (filter, channel) pair summed over channels, so a step is 16 products (tiles x channels)
by (channels x outputs), one per tile component, instead of im2col's 9 taps x 4 positions: 4/9
of the flops. The transforms are passes over tensors laid out channel-last, so that every
element-wise pass runs along rows of channels (in the input's layout the rows would be two
elements long on resnet18_cifar's last stage).

- forward: U = G g Gᵀ per block of filters, V = Bᵀ d B per chunk of samples, M = V · Uᵀ per
  component, Y = Aᵀ M A.
- calc_derivative: the same convolution of the output gradient with the filters flipped and
  channels and filters swapped; flipping a 3x3 filter swaps rows 0 and 3 of G, so its
  transform is U with ``G_FLIPPED``.
- calc_gradient: the transpose of forward's product: dM = A dY Aᵀ per tile, dU = Σ_tiles
  dMᵀ · V per component, dg = Gᵀ dU G; chunks after the first add their share in order.

Lanes: per chunk of samples, the input transform is cut by samples; then each lane takes its
share of every block's output channels (filters, for calc_gradient) through filter transform,
products and output transform alone, in its own part of the block workspaces, so the lanes meet
twice per chunk, not after every phase of every block. The cuts are fixed, so the bits do not
depend on the thread count. The workspaces are the layer's helpers (``wino_*_{step}``), declared
for the chunks and blocks of planner/layers/conv.py ``winograd_blocks``.
"""

from __future__ import annotations

import math

import numpy as np

from trainplan.planner.layers.conv import winograd_blocks
from trainplan.runtime.kernels.base import LayerCtx, flat, spans, view
from trainplan.runtime.kernels.parallel import split

# The F(2x2, 3x3) filter transform, and the same for a filter flipped in both axes.
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
G_FLIPPED = G[[3, 1, 2, 0]]


def _kron(g: np.ndarray) -> np.ndarray:
    """(16, 9): component (a, b) of G w Gᵀ as a combination of the 9 taps (i, j)."""
    return np.einsum("ai,bj->abij", g, g).reshape(16, 9)


def _transform(ctx: LayerCtx, dtype, flipped: bool = False) -> np.ndarray:
    """The (16, 9) filter transform in the arrays' dtype, made once per layer."""
    key = ("winograd", np.dtype(dtype).str, flipped)
    made = ctx.memo.get(key)
    if made is None:
        made = ctx.memo[key] = _kron(G_FLIPPED if flipped else G).astype(dtype)
    return made


def _ws(ctx: LayerCtx, name: str, step: str, shape: tuple[int, ...]) -> np.ndarray:
    """The leading bytes of helper ``wino_{name}_{step}`` as a contiguous ``shape``."""
    return _lane_ws(ctx, name, step, 0, shape)


def _input_tiles(ctx: LayerCtx, step: str, src: np.ndarray, n0: int, n1: int,
                 lanes: list[slice]) -> np.ndarray:
    """V = Bᵀ d B of samples n0:n1 of ``src`` (n, c, h, w): (16, n · tiles, c)."""
    _, c, h, w = src.shape
    n, th, tw = n1 - n0, h // 2, w // 2
    pad = _ws(ctx, "pad", step, (n, h + 2, w + 2, c))
    rows = _ws(ctx, "rows", step, (4, n, th, w + 2, c))
    v = _ws(ctx, "v", step, (16, n, th, tw, c))

    def lane(k: int) -> None:
        s = lanes[k]
        if s.stop <= s.start:
            return
        p = pad[s]
        np.copyto(p[:, 1:h + 1, 1:w + 1], src[n0 + s.start:n0 + s.stop].transpose(0, 2, 3, 1))
        p[:, 0] = 0
        p[:, h + 1] = 0
        p[:, 1:h + 1, 0] = 0
        p[:, 1:h + 1, w + 1] = 0
        d = [p[:, i:i + h - 1:2] for i in range(4)]  # row i of every tile
        t = rows[:, s]
        np.subtract(d[0], d[2], out=t[0])
        np.add(d[1], d[2], out=t[1])
        np.subtract(d[2], d[1], out=t[2])
        np.subtract(d[1], d[3], out=t[3])
        for a in range(4):
            e = [t[a][:, :, j:j + w - 1:2] for j in range(4)]  # column j of every tile
            np.subtract(e[0], e[2], out=v[4 * a][s])
            np.add(e[1], e[2], out=v[4 * a + 1][s])
            np.subtract(e[2], e[1], out=v[4 * a + 2][s])
            np.subtract(e[1], e[3], out=v[4 * a + 3][s])

    ctx.each_lane(lane)
    return view(v, (16, n * th * tw, c))


def _own(block: int, size: int, lanes: int, k: int) -> slice:
    """Lane k's channels of a block of ``size`` (at most ``block``): its part of the full
    block's cut, the same in every block (of a smaller last block, what remains of it), so
    that the lanes need not wait for each other between blocks."""
    part = split(block, lanes)[k]
    return slice(min(part.start, size), min(part.stop, size))


def _lane_ws(ctx: LayerCtx, name: str, step: str, lane: int,
             shape: tuple[int, ...]) -> np.ndarray:
    """Lane ``lane``'s part of helper ``wino_{name}_{step}`` (declared with a leading axis of
    LANES parts), its leading bytes as a contiguous ``shape``; a single lane may use them all."""
    buf = ctx.helper(f"wino_{name}_{step}")
    start = lane * (buf.size // buf.shape[0])
    return view(flat(buf)[start:start + math.prod(shape)], shape)


def _output_tiles(ctx: LayerCtx, step: str, lane: int, m: np.ndarray, dst: np.ndarray,
                  n0: int, c0: int, bias: np.ndarray | None) -> None:
    """dst[n0:, c0:] (n, channels, h, w) = Aᵀ M A of the lane's products ``m`` (16, n · tiles,
    channels)."""
    h, w = dst.shape[2:]
    th, tw = h // 2, w // 2
    n, nb = m.shape[1] // (th * tw), m.shape[2]
    mm = view(m, (4, 4, n, th, tw, nb))
    s6 = _lane_ws(ctx, "s", step, lane, (2, 4, n, th, tw, nb))
    y = _lane_ws(ctx, "y", step, lane, (n, h, w, nb))
    y6 = view(y, (n, th, 2, tw, 2, nb))
    np.add(mm[0], mm[1], out=s6[0])
    s6[0] += mm[2]
    np.subtract(mm[1], mm[2], out=s6[1])
    s6[1] -= mm[3]
    for a in range(2):
        r = s6[a]
        even, odd = y6[:, :, a, :, 0], y6[:, :, a, :, 1]
        np.add(r[0], r[1], out=even)
        even += r[2]
        np.subtract(r[1], r[2], out=odd)
        odd -= r[3]
    if bias is not None:
        y += bias[c0:c0 + nb]
    np.copyto(dst[n0:n0 + n, c0:c0 + nb], y.transpose(0, 3, 1, 2))


def _convolve(ctx: LayerCtx, step: str, src: np.ndarray, filt: np.ndarray, dst: np.ndarray,
              flipped: bool, bias: np.ndarray | None = None) -> None:
    """dst = the F(2x2, 3x3) convolution of ``src`` with ``filt`` (filters, channels, 3, 3);
    ``flipped``: with the filters flipped and their two channel axes swapped (calc_derivative).
    Per chunk of samples: the input transform in lanes of samples, then each lane its share
    of every block's output channels — filter transform, products, output transform."""
    batch, c, h, w = src.shape
    out_channels, tiles = dst.shape[1], h // 2 * (w // 2)
    size, block = winograd_blocks(batch, c, out_channels, (h, w))
    gg = _transform(ctx, filt.dtype, flipped)
    filters = filt.shape[0]
    filt9 = view(filt, (filters, filt.shape[1], 9))
    for n0, n1 in spans(slice(0, batch), size):
        v = _input_tiles(ctx, step, src, n0, n1, split(n1 - n0, ctx.lanes))

        def lane(k: int, v=v, n0=n0, n1=n1) -> None:
            for o0, o1 in spans(slice(0, out_channels), block):
                own = _own(block, o1 - o0, ctx.lanes, k)
                nb = own.stop - own.start
                if nb <= 0:
                    continue
                mine = slice(o0 + own.start, o0 + own.stop)
                if flipped:  # U'[k][f, c] for its channels, one product per filter
                    u = _lane_ws(ctx, "u", step, k, (filters, 16, nb))
                    np.matmul(gg, filt9[:, mine].transpose(0, 2, 1), out=u)
                    ut = u.transpose(1, 0, 2)
                else:  # U[k][f, c] for its filters
                    u = _ws(ctx, "u", step, (block, 16, c))[own]
                    np.matmul(gg, filt9[mine].transpose(0, 2, 1), out=u)
                    ut = u.transpose(1, 2, 0)
                m = _lane_ws(ctx, "m", step, k, (16, (n1 - n0) * tiles, nb))
                np.matmul(v, ut, out=m)
                _output_tiles(ctx, step, k, m, dst, n0, mine.start, bias)

        ctx.each_lane(lane)


def winograd_forward(ctx: LayerCtx) -> None:
    _convolve(ctx, "forward", ctx.inputs[0], ctx.weights["filter"], ctx.outputs[0], False,
              ctx.weights.get("bias"))


def winograd_calc_derivative(ctx: LayerCtx) -> None:
    _convolve(ctx, "calc_derivative", ctx.out_grads[0], ctx.weights["filter"],
              ctx.in_derivs[0], True)


def _gradient_tiles(ctx: LayerCtx, lane: int, dy: np.ndarray, n0: int, n1: int,
                    filters: slice) -> np.ndarray:
    """dM = A dY Aᵀ of samples n0:n1 and ``filters`` of the output gradient, in the lane's
    workspace: (16, n · tiles, filters)."""
    h, w = dy.shape[2:]
    n, nb, th, tw = n1 - n0, filters.stop - filters.start, h // 2, w // 2
    d = _lane_ws(ctx, "dy", "calc_gradient", lane, (n, h, w, nb))
    r = _lane_ws(ctx, "r", "calc_gradient", lane, (2, n, th, w, nb))
    dm = _lane_ws(ctx, "dm", "calc_gradient", lane, (4, 4, n, th, tw, nb))
    np.copyto(d, dy[n0:n1, filters].transpose(0, 2, 3, 1))
    top, bottom = d[:, 0::2], d[:, 1::2]  # row 0 and row 1 of every 2x2 block
    np.add(top, bottom, out=r[0])
    np.subtract(top, bottom, out=r[1])
    # tile rows: (top, top + bottom, top - bottom, -bottom); the last by negating
    for a, src in enumerate((top, r[0], r[1], bottom)):
        left, right = src[:, :, 0::2], src[:, :, 1::2]
        out = dm[a]
        np.copyto(out[0], left)
        np.add(left, right, out=out[1])
        np.subtract(left, right, out=out[2])
        np.negative(right, out=out[3])
        if a == 3:
            np.negative(out, out=out)
    return view(dm, (16, n * th * tw, nb))


def winograd_calc_gradient(ctx: LayerCtx) -> None:
    """Per chunk of samples: the input transform in lanes of samples, then each lane its
    share of every block's filters — output gradient transform, products summed over the
    chunk's tiles, filter gradient (the first chunk's written, the others' added)."""
    x, dy = ctx.inputs[0], ctx.out_grads[0]
    batch, c, h, w = x.shape
    filters = dy.shape[1]
    if "bias" in ctx.weight_grads:
        np.sum(view(dy, (batch, filters, h * w)), axis=(0, 2), out=ctx.weight_grads["bias"])
    if "filter" not in ctx.weight_grads:
        return
    dw9 = view(ctx.weight_grads["filter"], (filters * c, 9))
    size, block = winograd_blocks(batch, c, filters, (h, w))
    gg = _transform(ctx, x.dtype)
    du = _ws(ctx, "du", "calc_gradient", (16, block, c))
    for n0, n1 in spans(slice(0, batch), size):
        v = _input_tiles(ctx, "calc_gradient", x, n0, n1, split(n1 - n0, ctx.lanes))

        def lane(k: int, v=v, n0=n0, n1=n1) -> None:
            for f0, f1 in spans(slice(0, filters), block):
                own = _own(block, f1 - f0, ctx.lanes, k)
                if own.stop <= own.start:
                    continue
                dm = _gradient_tiles(ctx, k, dy, n0, n1, slice(f0 + own.start, f0 + own.stop))
                np.matmul(dm.transpose(0, 2, 1), v, out=du[:, own])
                rows = slice((f0 + own.start) * c, (f0 + own.stop) * c)
                target = dw9[rows]
                out = target if n0 == 0 else _ws(ctx, "part", "calc_gradient",
                                                 (block * c, 9))[own.start * c:own.stop * c]
                np.matmul(view(du[:, own], (16, (own.stop - own.start) * c)).T, gg, out=out)
                if n0:
                    target += out

        ctx.each_lane(lane)
