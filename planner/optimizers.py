"""Optimizers and the state tensors each keeps per trainable weight."""

from trainplan.planner.errors import UnknownName

OPTIMIZER_STATES: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "momentum": ("velocity",),
    "adam": ("m", "v"),
}

# flops per weight element of one update step
OPTIMIZER_FLOPS = {"sgd": 2, "momentum": 4, "adam": 12}


def optimizer_states(name: str) -> tuple[str, ...]:
    """The state tensors ``name`` keeps per weight; UnknownName lists the valid optimizers."""
    key = name.lower()
    if key not in OPTIMIZER_STATES:
        raise UnknownName(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZER_STATES)}")
    return OPTIMIZER_STATES[key]
