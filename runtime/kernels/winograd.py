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

Lanes: every pass is cut by samples of the chunk, the products by tile component, the filter
transforms by filters — fixed cuts, so the bits do not depend on the thread count. The
workspaces are the layer's helpers (``wino_*_{step}``); their shapes give the chunk and block
sizes the planner chose.
"""

from __future__ import annotations

import math

import numpy as np

from trainplan.runtime.kernels.base import LayerCtx, flat, view
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
    buf = ctx.helper(f"wino_{name}_{step}")
    return view(flat(buf)[:math.prod(shape)], shape)


def _ranges(total: int, size: int):
    for start in range(0, total, size):
        yield start, min(total, start + size)


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


def _output_tiles(ctx: LayerCtx, step: str, m: np.ndarray, dst: np.ndarray, n0: int,
                  o0: int, lanes: list[slice], bias: np.ndarray | None) -> None:
    """dst[n0:, o0:] (n, block, h, w) = Aᵀ M A of the products ``m`` (16, n · tiles, block)."""
    h, w = dst.shape[2:]
    th, tw = h // 2, w // 2
    n, block = m.shape[1] // (th * tw), m.shape[2]
    m6 = view(m, (4, 4, n, th, tw, block))
    s6 = _ws(ctx, "s", step, (2, 4, n, th, tw, block))
    y = _ws(ctx, "y", step, (n, h, w, block))
    y6 = view(y, (n, th, 2, tw, 2, block))

    def lane(k: int) -> None:
        s = lanes[k]
        if s.stop <= s.start:
            return
        mm = m6[:, :, s]
        np.add(mm[0], mm[1], out=s6[0][:, s])
        s6[0][:, s] += mm[2]
        np.subtract(mm[1], mm[2], out=s6[1][:, s])
        s6[1][:, s] -= mm[3]
        for a in range(2):
            r = s6[a][:, s]
            even, odd = y6[s, :, a, :, 0], y6[s, :, a, :, 1]
            np.add(r[0], r[1], out=even)
            even += r[2]
            np.subtract(r[1], r[2], out=odd)
            odd -= r[3]
        if bias is not None:
            y[s] += bias[o0:o0 + block]
        np.copyto(dst[n0 + s.start:n0 + s.stop, o0:o0 + block], y[s].transpose(0, 3, 1, 2))

    ctx.each_lane(lane)


def _convolve(ctx: LayerCtx, step: str, src: np.ndarray, filt: np.ndarray, dst: np.ndarray,
              flipped: bool, bias: np.ndarray | None = None) -> None:
    """dst = the F(2x2, 3x3) convolution of ``src`` with ``filt`` (filters, channels, 3, 3);
    ``flipped``: with the filters flipped and their two channel axes swapped (calc_derivative)."""
    batch, c = src.shape[:2]
    out_channels = dst.shape[1]
    h, w = src.shape[2:]
    tiles = h // 2 * (w // 2)
    u_shape = ctx.helper(f"wino_u_{step}").shape
    size = ctx.helper(f"wino_v_{step}").shape[1]
    block = u_shape[2] if flipped else u_shape[0]
    gg = _transform(ctx, filt.dtype, flipped)
    filters = filt.shape[0]
    comps = split(16, ctx.lanes)
    for n0, n1 in _ranges(batch, size):
        samples = split(n1 - n0, ctx.lanes)
        v = _input_tiles(ctx, step, src, n0, n1, samples)
        for o0, o1 in _ranges(out_channels, block):
            b = o1 - o0
            # the block's filter transforms, one (16, taps) x (taps, channels) product per filter:
            # U (block, 16, c) for filters o0:o1, or U' (filters, 16, block) for channels o0:o1
            filt9 = view(filt, (filters, filt.shape[1], 9))
            taps = filt9[:, o0:o1] if flipped else filt9[o0:o1]
            u = _ws(ctx, "u", step, (filters, 16, b) if flipped else (b, 16, c))
            parts = split(taps.shape[0], ctx.lanes)

            def filters_lane(k: int, u=u, taps=taps, parts=parts) -> None:
                np.matmul(gg, taps[parts[k]].transpose(0, 2, 1), out=u[parts[k]])

            ctx.each_lane(filters_lane)
            m = _ws(ctx, "m", step, (16, (n1 - n0) * tiles, b))
            ut = u.transpose(1, 0, 2) if flipped else u.transpose(1, 2, 0)  # (16, source, block)

            def products(k: int, v=v, m=m, ut=ut) -> None:
                np.matmul(v[comps[k]], ut[comps[k]], out=m[comps[k]])

            ctx.each_lane(products)
            _output_tiles(ctx, step, m, dst, n0, o0, samples, bias)


def winograd_forward(ctx: LayerCtx) -> None:
    _convolve(ctx, "forward", ctx.inputs[0], ctx.weights["filter"], ctx.outputs[0], False,
              ctx.weights.get("bias"))


def winograd_calc_derivative(ctx: LayerCtx) -> None:
    _convolve(ctx, "calc_derivative", ctx.out_grads[0], ctx.weights["filter"],
              ctx.in_derivs[0], True)


def _gradient_tiles(ctx: LayerCtx, dy: np.ndarray, n0: int, n1: int, f0: int, f1: int,
                    lanes: list[slice]) -> np.ndarray:
    """dM = A dY Aᵀ of samples n0:n1, filters f0:f1 of the output gradient: (16, n · tiles,
    block)."""
    h, w = dy.shape[2:]
    n, b, th, tw = n1 - n0, f1 - f0, h // 2, w // 2
    d = _ws(ctx, "dy", "calc_gradient", (n, h, w, b))
    r = _ws(ctx, "r", "calc_gradient", (2, n, th, w, b))
    dm = _ws(ctx, "dm", "calc_gradient", (4, 4, n, th, tw, b))

    def lane(k: int) -> None:
        s = lanes[k]
        if s.stop <= s.start:
            return
        np.copyto(d[s], dy[n0 + s.start:n0 + s.stop, f0:f1].transpose(0, 2, 3, 1))
        top, bottom = d[s, 0::2], d[s, 1::2]  # row 0 and row 1 of every 2x2 block
        np.add(top, bottom, out=r[0][s])
        np.subtract(top, bottom, out=r[1][s])
        # tile rows: (top, top + bottom, top - bottom, -bottom); the last by negating
        for a, src in enumerate((top, r[0][s], r[1][s], bottom)):
            left, right = src[:, :, 0::2], src[:, :, 1::2]
            out = dm[a][:, s]
            np.copyto(out[0], left)
            np.add(left, right, out=out[1])
            np.subtract(left, right, out=out[2])
            np.negative(right, out=out[3])
            if a == 3:
                np.negative(out, out=out)

    ctx.each_lane(lane)
    return view(dm, (16, n * th * tw, b))


def winograd_calc_gradient(ctx: LayerCtx) -> None:
    x, dy = ctx.inputs[0], ctx.out_grads[0]
    batch, c, h, w = x.shape
    filters = dy.shape[1]
    if "bias" in ctx.weight_grads:
        np.sum(view(dy, (batch, filters, h * w)), axis=(0, 2), out=ctx.weight_grads["bias"])
    if "filter" not in ctx.weight_grads:
        return
    dw9 = view(ctx.weight_grads["filter"], (filters * c, 9))
    size = ctx.helper("wino_v_calc_gradient").shape[1]
    block = ctx.helper("wino_du_calc_gradient").shape[1]
    gg = _transform(ctx, x.dtype)
    comps = split(16, ctx.lanes)
    for n0, n1 in _ranges(batch, size):
        samples = split(n1 - n0, ctx.lanes)
        v = _input_tiles(ctx, "calc_gradient", x, n0, n1, samples)
        for f0, f1 in _ranges(filters, block):
            b = f1 - f0
            dm = _gradient_tiles(ctx, dy, n0, n1, f0, f1, samples)
            du = _ws(ctx, "du", "calc_gradient", (16, b, c))

            def products(k: int, v=v, dm=dm, du=du) -> None:
                np.matmul(dm[comps[k]].transpose(0, 2, 1), v[comps[k]], out=du[comps[k]])

            ctx.each_lane(products)
            target = dw9[f0 * c:f1 * c]
            out = target if n0 == 0 else _ws(ctx, "part", "calc_gradient", (b * c, 9))
            du2t = view(du, (16, b * c)).T
            rows = split(b * c, ctx.lanes)

            def taps(k: int, out=out, du2t=du2t, target=target, rows=rows, first=n0 == 0
                     ) -> None:
                np.matmul(du2t[rows[k]], gg, out=out[rows[k]])
                if not first:
                    target[rows[k]] += out[rows[k]]

            ctx.each_lane(taps)
