"""Optimizers updating a weight and its state tensors in place (the apply_gradient step).

One registry ``OPTIMIZERS[name] -> update(weight, grad, states, hyper, step)``; the state names
are trainplan.planner.optimizers.OPTIMIZER_STATES'. Updates run over bounded slices (trainplan.runtime.kernels.base
``chunks``), so temporaries stay small whatever the weight's size; ``step`` counts from 1.

- sgd: w -= lr · g
- momentum (PyTorch's convention): v = μ · v + g; w -= lr · v
- adam (NNTrainer's form): m = β1 · m + (1 − β1) · g; v = β2 · v + (1 − β2) · g²;
  w -= lr_t · m / (√v + ε) with lr_t = lr · √(1 − β2^t) / (1 − β1^t)

>>> w, g = np.ones(3, np.float32), np.full(3, 0.5, np.float32)
>>> apply_gradient("sgd", w, g, {}, Hyper(learning_rate=0.1), step=1)
>>> w
array([0.95, 0.95, 0.95], dtype=float32)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from trainplan.planner.optimizers import optimizer_states
from trainplan.runtime.kernels.base import chunks, flat


@dataclass(frozen=True)
class Hyper:
    """Optimizer hyper-parameters; NNTrainer's defaults for adam (ε = 1e-7)."""

    learning_rate: float = 1e-3
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-7


def sgd(w: np.ndarray, g: np.ndarray, states: dict, hyper: Hyper, step: int) -> None:
    for s in chunks(w.size):
        w[s] -= hyper.learning_rate * g[s]


def momentum(w: np.ndarray, g: np.ndarray, states: dict, hyper: Hyper, step: int) -> None:
    v = flat(states["velocity"])
    for s in chunks(w.size):
        v[s] *= hyper.momentum
        v[s] += g[s]
        w[s] -= hyper.learning_rate * v[s]


def adam(w: np.ndarray, g: np.ndarray, states: dict, hyper: Hyper, step: int) -> None:
    m, v = flat(states["m"]), flat(states["v"])
    b1, b2 = hyper.beta1, hyper.beta2
    lr_t = hyper.learning_rate * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step)
    for s in chunks(w.size):
        m[s] *= b1
        m[s] += (1.0 - b1) * g[s]
        v[s] *= b2
        v[s] += (1.0 - b2) * np.square(g[s])
        t = np.sqrt(v[s])
        t += hyper.epsilon
        np.divide(m[s], t, out=t)
        t *= lr_t
        w[s] -= t


OPTIMIZERS: dict[str, Callable[..., None]] = {"sgd": sgd, "momentum": momentum, "adam": adam}


def apply_gradient(name: str, weight: np.ndarray, grad: np.ndarray, states: dict[str, np.ndarray],
                   hyper: Hyper, *, step: int) -> None:
    """Update ``weight`` (and ``states``) in place from ``grad``; ``step`` >= 1."""
    names = optimizer_states(name)  # UnknownName for a bad optimizer
    missing = [s for s in names if s not in states]
    if missing:
        raise KeyError(f"{name} needs state tensors {', '.join(missing)}")
    if step < 1:
        raise ValueError(f"optimizer step counts from 1, got {step}")
    OPTIMIZERS[name.lower()](flat(weight), flat(grad), states, hyper, step)
