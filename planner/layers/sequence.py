"""Multi-head attention and LSTM: the layers with the most saved state per step."""

from trainplan.planner.errors import InvalidShape
from trainplan.planner.layers.base import (
    AG,
    CD,
    CG,
    F,
    Helper,
    LayerSpec,
    Realised,
    Weight,
    positive,
    register,
)


def realise_multi_head_attention(inputs, props, compat):
    """Inputs (query[, key[, value]]), each (B, T, D); one input means self-attention."""
    name = props["name"]
    q = inputs[0]
    k = inputs[1] if len(inputs) > 1 else q
    v = inputs[2] if len(inputs) > 2 else k
    if len(q) != 3 or len(k) != 3 or len(v) != 3 or k[1] != v[1] or q[0] != k[0]:
        raise InvalidShape(f"{name}: attention needs (B, T, D) inputs with matching key/value "
                           f"lengths, got {q}, {k}, {v}")
    heads = positive("num_heads", props.get("num_heads", 1), name)
    d = int(props.get("projected_dim", q[2]))
    if d % heads:
        raise InvalidShape(f"{name}: projected dimension {d} must be a multiple of num_heads "
                           f"{heads}")
    b, tq, tk = q[0], q[1], k[1]
    weights = {}
    for w, din in (("query", q[2]), ("key", k[2]), ("value", v[2]), ("output", d)):
        weights[f"{w}_weight"] = Weight((din, d if w != "output" else q[2]))
        bias = (d if w != "output" else q[2],)
        weights[f"{w}_bias"] = Weight(bias, read_at_derivative=False)
    proj = 2 * b * d * (tq * q[2] + tk * k[2] + tk * v[2] + tq * q[2])
    attn = 4 * b * tq * tk * d + 5 * b * heads * tq * tk
    # natively calc_gradient runs the whole attention backward (runtime/kernels/sequence.py)
    # and calc_derivative needs only dq, dk, dv; d probabilities is its own workspace
    saved = (F, CG, CD) if compat else (F, CG)
    helpers = [
        Helper("q", (b, tq, d), saved), Helper("k", (b, tk, d), saved),
        Helper("v", (b, tk, d), saved), Helper("probs", (b, heads, tq, tk), saved),
        Helper("context", (b, tq, d), (F, CG)),
        Helper("dq", (b, tq, d), (CG, CD)), Helper("dk", (b, tk, d), (CG, CD)),
        Helper("dv", (b, tk, d), (CG, CD)),
    ]
    if not compat:
        helpers.append(Helper("dprobs", (b, heads, tq, tk), (CG,)))
    return Realised(outputs=[(b, tq, q[2])], weights=weights, helpers=helpers,
                    flops={F: proj + attn, CG: proj + 2 * attn, CD: proj - 2 * b * tq * d * q[2]},
                    input_steps=frozenset({F, CG}), weight_steps=frozenset({CG, CD}))


def lstm_dims(x: tuple[int, ...], name: str) -> tuple[int, int, int]:
    """(batch, time, features) of an LSTM input: (B, T, F), or NNTrainer's (B, 1, T, F)."""
    if len(x) == 4 and x[1] == 1:
        return x[0], x[2], x[3]
    if len(x) != 3:
        raise InvalidShape(f"{name}: lstm needs a (batch, time, features) input, or "
                           f"NNTrainer's (batch, 1, time, features), got {x}")
    return x


def lstm_biases(props: dict) -> tuple[str, ...]:
    """The bias weights: one integrated ``bias_h`` (the default), PyTorch's and NNTrainer's
    separate ``bias_ih`` and ``bias_hh`` (``integrate_bias = False``), or none."""
    if not props.get("bias", True):
        return ()
    return ("bias_h",) if props.get("integrate_bias", True) else ("bias_ih", "bias_hh")


def realise_lstm(inputs, props, compat):
    """Output (B, T, H) with return_sequences, else the last step (B, H); for NNTrainer's
    4-D input (B, 1, T or 1, H)."""
    (x,) = inputs
    name = props["name"]
    b, t, i = lstm_dims(x, name)
    if int(props.get("max_timestep", t)) > t:
        raise InvalidShape(f"{name}: max_timestep {props['max_timestep']} is longer than the "
                           f"input's {t} time steps")
    h = positive("unit", props.get("unit"), name)
    weights = {"weight_ih": Weight((i, 4 * h)), "weight_hh": Weight((h, 4 * h))}
    for bias in lstm_biases(props):
        weights[bias] = Weight((4 * h,), read_at_derivative=False)
    if compat:  # NNTrainer's ITERATION tensors, each with its gradient
        helpers = []
        for helper, width in (("hidden_state", h), ("cell_state", h), ("ifgo", 4 * h)):
            helpers += [Helper(helper, (b, t, width), (F, CG, CD, AG)),
                        Helper(f"{helper}:grad", (b, t, width), (CG, CD, AG))]
    else:
        helpers = [
            Helper("gates", (b, t, 4 * h), (F, CG)), Helper("cell", (b, t, h), (F, CG)),
            Helper("hidden", (b, t, h), (F, CG)), Helper("d_gates", (b, t, 4 * h), (CG, CD)),
        ]
    seq = props.get("return_sequences", False)
    out = (b, t, h) if seq else (b, h)
    if len(x) == 4:
        out = (b, 1, t if seq else 1, h)
    mac_x, mac_h = b * t * i * 4 * h, b * t * h * 4 * h
    return Realised(outputs=[out], weights=weights, helpers=helpers,
                    flops={F: 2 * (mac_x + mac_h) + 12 * b * t * h,
                           CG: 2 * (mac_x + 2 * mac_h) + 16 * b * t * h, CD: 2 * mac_x},
                    input_steps=frozenset({F, CG}), weight_steps=frozenset({CG, CD}))


register(LayerSpec("multi_head_attention", realise_multi_head_attention, max_inputs=3,
                   description="scaled dot-product attention with input/output projections"))
register(LayerSpec("lstm", realise_lstm, description="LSTM unrolled through time"))
