"""Which layers run in place: their output (and output gradient) reuse their input's bytes.

A *restricting* in-place layer (reshape, flatten, multiout, identity) only reinterprets its
input; a *non-restricting* one (activation, batch/layer norm, input) overwrites it. Natively a
non-restricting layer runs in place only when no other step still needs the bytes it would
overwrite: no tensor sharing those bytes is read after the layer's forward, except by forward
steps already done. That keeps every planned run bit-identical to an unplanned one. In NNTrainer
compatibility mode NNTrainer's own rule applies (docs/nntrainer-rules.md).
"""

from __future__ import annotations

from trainplan.planner.layers.base import NON_RESTRICTING, NONE, RESTRICTING, F


def decide_inplace(plans: dict, *, enabled: bool, compat: bool) -> None:
    """Set ``plan.inplace`` on every layer plan, in topological order."""
    readers = _readers(plans)
    classes: dict[tuple[str, int], list] = {}
    for name, p in plans.items():
        kind = p.real.inplace if enabled else NONE
        if kind != NONE and not p.spec.is_input and len(p.inputs) != 1:
            kind = NONE
        if kind != NONE and not p.spec.is_input:
            src = p.inputs[0]
            if compat:
                kind = _compat_kind(kind, plans[src[0]].inplace, p.d.type)
            elif kind == NON_RESTRICTING and _hazard(p, classes.get(src, [src]), readers):
                kind = NONE
        p.inplace = kind
        for k in range(len(p.real.outputs)):
            if kind != NONE and not p.spec.is_input:
                cls = classes.setdefault(p.inputs[0], [p.inputs[0]])
                cls.append((name, k))
                classes[(name, k)] = cls
            else:
                classes[(name, k)] = [(name, k)]


def _compat_kind(kind: str, producer: str, layer_type: str) -> str:
    """NNTrainer: a layer that would modify bytes a restricting layer shares runs out of place;
    a restricting layer (multiout aside) stays restricting only behind another one."""
    if kind == NON_RESTRICTING and producer == RESTRICTING:
        return NONE
    if kind == RESTRICTING and producer != RESTRICTING and layer_type != "multiout":
        return NON_RESTRICTING
    return kind


def _readers(plans: dict) -> dict[tuple[str, int], list[tuple[int, str]]]:
    """Every (layer index, step) that reads each layer output."""
    out: dict[tuple[str, int], list[tuple[int, str]]] = {}
    for name, p in plans.items():
        for k in range(len(p.real.outputs)):
            out.setdefault((name, k), []).extend((p.index, s) for s in p.output_steps)
        for ref in p.inputs:
            out.setdefault(ref, []).extend((p.index, s) for s in p.input_steps)
    return out


def _hazard(p, members: list, readers: dict) -> bool:
    """True when overwriting ``members``' bytes at p's forward would corrupt a later read."""
    if p.input_steps != {F}:
        return True
    for member in members:
        for index, step in readers.get(member, []):
            if index == p.index and step == F:
                continue
            if step == F and index < p.index:
                continue
            return True
    return False
