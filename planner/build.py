"""Model spec -> training graph: op and tensor nodes for the four steps of every layer.

For every layer the builder decides (1) whether it learns (trainable weights, not frozen),
(2) whether it sends a derivative to its inputs (only when something upstream learns),
(3) whether it runs in place, and (4) which tensors each active step reads and writes, from
the layer's declared needs (planner/layers). ``compat=True`` follows NNTrainer's realisation
instead (see docs/nntrainer-rules.md): every layer counts as trainable unless told otherwise,
inputs keep NNTrainer's lifespans, placeholders live outside the pools.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from trainplan.planner.build_inplace import decide_inplace
from trainplan.planner.errors import UnknownName
from trainplan.planner.graph import Slot, add_op, add_tensor, check_graph, new_graph
from trainplan.planner.initial_weights import check_weights
from trainplan.planner.layers import LAYERS
from trainplan.planner.layers.base import AG, CD, CG, F, LayerSpec, Realised
from trainplan.planner.optimizers import OPTIMIZER_FLOPS, optimizer_states
from trainplan.planner.spec import (
    LayerDef,
    ModelSpec,
    check_batch,
    is_graph_input,
    resolve,
    split_ref,
)

# Layer types whose inputs NNTrainer keeps for forward only.
_COMPAT_FORWARD_ONLY_INPUTS = {"activation", "multiout", "batch_normalization",
                               "layer_normalization"}


@dataclass
class LayerPlan:
    """Build-time facts about one layer."""

    d: LayerDef
    spec: LayerSpec
    real: Realised
    index: int
    inputs: list[tuple[str, int]]
    trainable: bool
    learns: bool
    slots: int = 1
    derivative: bool = False
    active: set = field(default_factory=set)
    input_steps: set = field(default_factory=set)
    output_steps: set = field(default_factory=set)
    grad_steps: set = field(default_factory=set)
    inplace: str = "none"
    placeholder: bool = False
    learns_upstream: bool = False


def build_training_graph(
    spec: ModelSpec, *, batch: int | None = None, optimizer: str | None = None,
    freeze_until: str | None = None, inplace: bool = True, compat: bool = False,
) -> nx.DiGraph:
    """Build the training graph of ``spec`` (one iteration: forward, backward, update)."""
    batch = check_batch(spec.batch if batch is None else batch)
    optimizer = (optimizer or spec.optimizer).lower()
    states = optimizer_states(optimizer)
    plans = _realise(resolve(spec, compat=compat), batch, freeze_until, compat)
    _decide_steps(plans, compat)
    decide_inplace(plans, enabled=inplace, compat=compat)
    graph = new_graph(model=spec.name, batch=batch, optimizer=optimizer, compat=compat,
                      inplace=inplace, freeze_until=freeze_until,
                      layers=[_layer_record(p) for p in plans.values()],
                      tensor_pool_end=_pool_end(plans, inplace) if compat else None)
    _emit(graph, plans, states, optimizer, compat)
    check_graph(graph)
    if spec.weights:
        check_weights(spec.weights, graph)
        graph.graph["initial_weights"] = spec.weights
    return graph


def _realise(layers, batch, freeze_until, compat) -> dict[str, LayerPlan]:
    names = [layer.name for layer in layers]
    if freeze_until is not None and freeze_until not in names:
        raise UnknownName(f"--freeze-until {freeze_until!r} is not a layer of the model; "
                          f"layers: {', '.join(names)}")
    frozen_upto = names.index(freeze_until) if freeze_until is not None else -1
    plans: dict[str, LayerPlan] = {}
    for i, d in enumerate(layers):
        ls = LAYERS[d.type]
        inputs = [split_ref(r) for r in d.inputs]
        placeholder = is_graph_input(d)
        shapes = [plans[p].real.outputs[k] for p, k in inputs]
        if placeholder and not ls.is_input:
            shapes = [(batch, *d.props["input_shape"])]
        real = ls.realise(shapes, {**d.props, "name": d.name, "batch": batch}, compat)
        trainable = d.trainable and i > frozen_upto
        learns = trainable and any(w.trainable for w in real.weights.values())
        plans[d.name] = LayerPlan(d, ls, real, i, inputs, trainable, learns,
                                  placeholder=placeholder)
    return plans


def _decide_steps(plans: dict[str, LayerPlan], compat: bool) -> None:
    """Slots, derivative, active steps and what each step reads, per layer."""
    for p in plans.values():
        p.slots = 3 if p.trainable else 1  # NNTrainer: every layer unless marked otherwise
        p.learns_upstream = any(plans[s].learns or plans[s].learns_upstream for s, _ in p.inputs)
        if compat:  # NNTrainer requests an input derivative for every non-input layer
            p.derivative = not p.spec.is_input
        else:  # a derivative is computed only when something upstream learns
            p.derivative = p.real.derivative and not p.spec.is_input and p.learns_upstream
        if compat and p.slots == 3:
            p.active = {F, CG, CD, AG}
        else:
            p.active = {F} | ({CG, AG} if p.learns else set()) | ({CD} if p.derivative else set())
        p.input_steps, p.output_steps, p.grad_steps = _needs(p, compat)


def _needs(p: LayerPlan, compat: bool) -> tuple[set, set, set]:
    real = p.real
    if compat:
        if p.spec.is_loss:
            inputs = {F, CD}
        elif p.d.type in _COMPAT_FORWARD_ONLY_INPUTS or p.slots == 1:
            inputs = {F}
        else:
            inputs = {F, CG}
        grads = set() if p.spec.is_loss else {CG, CD}
    else:
        inputs = set(real.input_steps)
        default = {CG, CD} if p.learns else {CD}
        grads = set(real.grad_steps) if real.grad_steps is not None else default
    return inputs & p.active, set(real.output_steps) & p.active, grads & p.active


def _pool_end(plans: dict[str, LayerPlan], inplace: bool) -> str:
    """The layer whose apply_gradient EO ends NNTrainer's tensor pool: the first layer, or with
    memory optimisation the earliest layer that does any backward work at run time."""
    ordered = list(plans.values())
    if not inplace:
        return ordered[0].d.name
    working = [p for p in ordered if p.learns or p.learns_upstream]
    return (working[0] if working else ordered[0]).d.name


def _layer_record(p: LayerPlan) -> dict:
    return {"name": p.d.name, "type": p.d.type, "index": p.index, "slots": p.slots,
            "trainable": p.trainable, "learns": p.learns, "derivative": p.derivative,
            "inplace": p.inplace, "inputs": [(s, k) for s, k in p.inputs],
            "placeholder": p.placeholder, "is_loss": p.spec.is_loss,
            "outputs": [list(shape) for shape in p.real.outputs],
            "props": {**p.d.props, "name": p.d.name, "batch": p.real.outputs[0][0]}}


def out_name(layer: str, k: int) -> str:
    return f"{layer}:out{k}"


def grad_name(layer: str, k: int) -> str:
    return f"{layer}:out{k}:grad"


def _emit(graph, plans, states, optimizer, compat) -> None:
    """Create tensor nodes, then one op per active step of every layer. In NNTrainer-compatible
    mode the layers before the tensor pool's end layer run their forward step only: NNTrainer
    requests their backward tensors but does no backward work there at run time."""
    consumers = _consumers(plans)
    for p in plans.values():
        _emit_tensors(graph, p, plans, consumers, states, compat)
    end = plans[graph.graph["tensor_pool_end"]].index if compat else 0
    if compat:  # NNTrainer requests optimizer variables once every layer is finalised
        for p in plans.values():
            for w in p.real.weights:
                _states(graph, p, w, states)
    for p in plans.values():
        _emit_ops(graph, p, plans, states, optimizer, forward_only=p.index < end)


def _consumers(plans) -> dict[tuple[str, int], list[LayerPlan]]:
    out: dict[tuple[str, int], list[LayerPlan]] = {}
    for p in plans.values():
        for ref in p.inputs:
            out.setdefault(ref, []).append(p)
    return out


def _input_tensor(p: LayerPlan, j: int) -> str:
    src, k = p.inputs[j]
    return out_name(src, k)


def _input_names(p: LayerPlan) -> list[str]:
    """The tensors a layer reads as inputs: its data placeholder, or its producers' outputs."""
    if p.placeholder:
        return [f"{p.d.name}:input"]
    return [_input_tensor(p, j) for j in range(len(p.inputs))]


def _emit_tensors(graph, p, plans, consumers, states, compat) -> None:
    name = p.d.name
    if p.placeholder:
        shape = p.real.outputs[0] if p.spec.is_input else (graph.graph["batch"],
                                                            *p.d.props["input_shape"])
        add_tensor(graph, f"{name}:input", shape, "input", layer=name,
                   pool="external" if compat else "tensor", slot=Slot("input"))
    if p.spec.is_loss:
        add_tensor(graph, f"{name}:label", p.real.outputs[0] if compat else
                   plans[p.inputs[0][0]].real.outputs[p.inputs[0][1]], "label", layer=name,
                   pool="external" if compat else "tensor", slot=Slot("label"))
    source = _input_names(p)[0] if (p.placeholder or p.inputs) else None
    # NNTrainer requests each output's variable and gradient together, output by output
    outputs = list(enumerate(p.real.outputs))
    for part in ([[o] for o in outputs] if compat else [outputs]):
        for k, shape in part:
            alias = source if p.inplace != "none" else None
            add_tensor(graph, out_name(name, k), shape, "activation", alias=alias, layer=name,
                       slot=Slot("output", k))
        for k, shape in part:
            if any(c.derivative for c in consumers.get((name, k), [])):
                add_tensor(graph, grad_name(name, k), shape, "derivative", layer=name,
                           alias=_grad_alias(graph, p, compat), slot=Slot("output_grad", k))
    # NNTrainer requests weights and extra tensors as two arguments of one call, which GCC
    # evaluates right to left: the extra tensors reach the pool first
    for part in ((_helpers, _weight_grads) if compat else (_weight_grads, _helpers)):
        part(graph, p)
    for w, spec in p.real.weights.items():
        add_tensor(graph, f"{name}:{w}", spec.shape, "weight", layer=name,
                   learnable=spec.trainable, slot=Slot("weight", w))
        if not compat:
            _states(graph, p, w, states)


def _states(graph, p: LayerPlan, w: str, states) -> None:
    """The optimizer state tensors of weight ``w`` (none unless the layer learns it)."""
    spec = p.real.weights[w]
    if p.learns and spec.trainable:
        for s in states:
            add_tensor(graph, f"{p.d.name}:{w}:{s}", spec.shape, "optimizer_state",
                       layer=p.d.name, slot=Slot("state", s, weight=w))


def _weight_grads(graph, p: LayerPlan) -> None:
    for w, spec in p.real.weights.items():
        if p.learns and spec.trainable:
            add_tensor(graph, f"{p.d.name}:{w}:grad", spec.shape, "gradient", layer=p.d.name,
                       slot=Slot("weight_grad", w))


def _helpers(graph, p: LayerPlan) -> None:
    for h in p.real.helpers:
        if any(s in p.active for s in h.steps):
            add_tensor(graph, f"{p.d.name}:{h.name}", h.shape, h.role, dtype=h.dtype,
                       layer=p.d.name, slot=Slot("helper", h.name))


def _grad_alias(graph, p: LayerPlan, compat: bool) -> str | None:
    """An in-place layer's output gradient shares its input derivative (multiout excepted)."""
    if p.inplace == "none" or p.d.type == "multiout":
        return None
    if p.placeholder:
        if not compat:
            return None
        ghost = f"{p.d.name}:input:grad"
        if ghost not in graph:
            add_tensor(graph, ghost, p.real.outputs[0], "derivative", layer=p.d.name,
                       pool="external", slot=Slot("input_grad"))
        return ghost
    src = grad_name(*p.inputs[0])
    return src if src in graph and p.derivative else None


def _helpers_at(p: LayerPlan, step: str) -> tuple[list[str], list[str]]:
    """(read, written) helper tensors of ``p`` at ``step``."""
    read, written = [], []
    for h in p.real.helpers:
        steps = [s for s in h.steps if s in p.active]
        if step in steps:
            (written if steps[0] == step else read).append(f"{p.d.name}:{h.name}")
    return read, written


def _emit_ops(graph, p: LayerPlan, plans, states, optimizer, forward_only: bool = False) -> None:
    name, real = p.d.name, p.real
    inputs = _input_names(p)
    outputs = [out_name(name, k) for k in range(len(real.outputs))]
    grads = [g for g in (grad_name(name, k) for k in range(len(real.outputs))) if g in graph]
    label = [f"{name}:label"] if p.spec.is_loss else []
    weights = [f"{name}:{w}" for w, s in real.weights.items() if s.trainable]
    running = [f"{name}:{w}" for w, s in real.weights.items() if not s.trainable]
    learned = [w for w in weights if f"{w}:grad" in graph]
    backward_weights = [f"{name}:{w}" for w, s in real.weights.items() if s.read_at_derivative]

    def reads_at(step):
        r = []
        r += inputs if step in p.input_steps else []
        r += outputs if step in p.output_steps else []
        r += grads if step in p.grad_steps else []
        return r + _helpers_at(p, step)[0]

    def op(step, reads, writes, flops):
        if reads or writes:
            add_op(graph, f"{name}:{step}", layer=name, step=step, op_type=p.d.type,
                   flops=flops, reads=reads, writes=writes, inplace=p.inplace != "none",
                   gather_rows=real.gather_rows.get(step, 0) if flops else 0)

    op(F, inputs + weights + running + label + _helpers_at(p, F)[0],
       outputs + _helpers_at(p, F)[1] + [_updated(graph, w) for w in running],
       real.flops.get(F, 0))
    if forward_only:
        return
    if CG in p.active:
        cg_weights = backward_weights if CG in real.weight_steps and p.learns else []
        op(CG, reads_at(CG) + cg_weights, [f"{w}:grad" for w in learned]
           + _helpers_at(p, CG)[1], real.flops.get(CG, 0) if p.learns else 0)
    if CD in p.active:
        derivs = [grad_name(s, k) for s, k in p.inputs if grad_name(s, k) in graph]
        derivs = derivs if p.derivative else []
        op(CD, reads_at(CD) + (backward_weights if derivs else []) + label,
           derivs + _helpers_at(p, CD)[1], real.flops.get(CD, 0) if derivs else 0)
    if AG in p.active:
        state_names = [f"{w}:{s}" for w in learned for s in states]
        updates = [_updated(graph, t) for t in learned + state_names]
        size = sum(graph.nodes[w]["nbytes"] // 4 for w in learned)
        op(AG, learned + [f"{w}:grad" for w in learned] + state_names + reads_at(AG), updates,
           OPTIMIZER_FLOPS[optimizer] * size)


def _updated(graph, tensor: str) -> str:
    """A new version of ``tensor`` written in place (same bytes)."""
    data = graph.nodes[tensor]
    new = f"{tensor}@updated"
    add_tensor(graph, new, data["shape"], data["role"], dtype=data["dtype"], alias=tensor,
               layer=data["layer"], pool=data["pool"], slot=data["slot"], version_of=tensor)
    return new
