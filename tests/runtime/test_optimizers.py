"""Optimizers update weights and states in place; one step checked against hand arithmetic."""

import math

import numpy as np
import pytest

from trainplan.planner.errors import UnknownName
from trainplan.runtime.optimizers import Hyper, apply_gradient

HYPER = Hyper(learning_rate=0.1, momentum=0.9, beta1=0.9, beta2=0.999, epsilon=1e-7)


def _tensors():
    w = np.array([1.0, -2.0, 0.5], np.float32)
    g = np.array([0.5, 0.25, -1.0], np.float32)
    return w, g


def test_sgd_step_in_place():
    w, g = _tensors()
    buffer = w
    apply_gradient("sgd", w, g, {}, HYPER, step=1)
    assert w is buffer
    np.testing.assert_allclose(w, [1.0 - 0.05, -2.0 - 0.025, 0.5 + 0.1], rtol=1e-6)


def test_momentum_two_steps():
    w, g = _tensors()
    velocity = np.zeros(3, np.float32)
    apply_gradient("momentum", w, g, {"velocity": velocity}, HYPER, step=1)
    np.testing.assert_allclose(velocity, g)
    apply_gradient("momentum", w, g, {"velocity": velocity}, HYPER, step=2)
    # v2 = 0.9 g + g = 1.9 g; w = w0 - 0.1 g - 0.1 * 1.9 g = w0 - 0.29 g
    np.testing.assert_allclose(velocity, 1.9 * g, rtol=1e-6)
    np.testing.assert_allclose(w, _tensors()[0] - 0.29 * g, rtol=1e-6)


def test_adam_first_steps_by_hand():
    w, g = _tensors()
    w0 = w.copy()
    m, v = np.zeros(3, np.float32), np.zeros(3, np.float32)
    apply_gradient("adam", w, g, {"m": m, "v": v}, HYPER, step=1)
    np.testing.assert_allclose(m, 0.1 * g, rtol=1e-6)
    np.testing.assert_allclose(v, 0.001 * g * g, rtol=1e-5)
    # step 1: lr_t = 0.1 * sqrt(0.001) / 0.1, so w moves by sqrt(0.001) * 0.1 g / (|g| sqrt(0.001))
    lr_t = 0.1 * math.sqrt(1 - 0.999) / (1 - 0.9)
    expected = w0 - lr_t * (0.1 * g) / (np.sqrt(0.001 * g * g) + 1e-7)
    np.testing.assert_allclose(w, expected, rtol=1e-5)
    np.testing.assert_allclose(w, w0 - 0.1 * np.sign(g), rtol=1e-4)
    apply_gradient("adam", w, g, {"m": m, "v": v}, HYPER, step=2)
    m2, v2 = 0.9 * 0.1 * g + 0.1 * g, 0.999 * 0.001 * g * g + 0.001 * g * g
    lr_2 = 0.1 * math.sqrt(1 - 0.999 ** 2) / (1 - 0.9 ** 2)
    np.testing.assert_allclose(w, expected - lr_2 * m2 / (np.sqrt(v2) + 1e-7), rtol=1e-5)


def test_updates_cross_chunk_boundaries_like_one_pass():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(200_003).astype(np.float32)
    g = rng.standard_normal(w.size).astype(np.float32)
    m, v = np.zeros_like(w), np.zeros_like(w)
    expected = w - np.float32(0.1 * math.sqrt(0.001) / 0.1) * (np.float32(0.1) * g) / (
        np.sqrt(np.float32(0.001) * g * g) + np.float32(1e-7))
    apply_gradient("adam", w, g, {"m": m, "v": v}, HYPER, step=1)
    np.testing.assert_allclose(w, expected, rtol=1e-5, atol=1e-6)


def test_bad_optimizer_state_or_step():
    w, g = _tensors()
    with pytest.raises(UnknownName, match="adam"):
        apply_gradient("rmsprop", w, g, {}, HYPER, step=1)
    with pytest.raises(KeyError, match="velocity"):
        apply_gradient("momentum", w, g, {}, HYPER, step=1)
    with pytest.raises(ValueError, match="from 1"):
        apply_gradient("adam", w, g, {"m": g.copy(), "v": g.copy()}, HYPER, step=0)


def _adam_reference(w, grads, hyper, torch_form: bool):
    """Adam in float64: NNTrainer's form, w -= lr·√(1−β2^t)/(1−β1^t) · m / (√v + ε), or
    PyTorch's, w -= lr · m̂ / (√v̂ + ε) with m̂ = m/(1−β1^t), v̂ = v/(1−β2^t)."""
    w = w.astype(np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    b1, b2, eps, lr = hyper.beta1, hyper.beta2, hyper.epsilon, hyper.learning_rate
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if torch_form:
            w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        else:
            w = w - lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
    return w


def test_adam_places_epsilon_as_nntrainer_does():
    """Five steps on gradients near ε, where the placement shows: ours is NNTrainer's formula
    (ε added to √v, not to the bias-corrected √v̂ as PyTorch does, so ours equals PyTorch's with
    ε·√(1−β2^t) at step t) and measurably not PyTorch's."""
    rng = np.random.default_rng(0)
    hyper = Hyper(learning_rate=1e-3, epsilon=1e-6)
    w0 = np.zeros(64, np.float32)  # the updates themselves, free of float32 rounding of w
    grads = [(rng.standard_normal(64) * 1e-6).astype(np.float32) for _ in range(5)]
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads, start=1):
        apply_gradient("adam", w, g, {"m": m, "v": v}, hyper, step=t)
    nntrainer = _adam_reference(w0, grads, hyper, torch_form=False)
    pytorch = _adam_reference(w0, grads, hyper, torch_form=True)
    np.testing.assert_allclose(w, nntrainer, rtol=1e-5)
    assert np.max(np.abs(pytorch - nntrainer)) > 1e-2 * np.max(np.abs(nntrainer))
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = torch.optim.Adam([param], lr=hyper.learning_rate, betas=(hyper.beta1, hyper.beta2),
                           eps=hyper.epsilon)
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    np.testing.assert_allclose(param.detach().numpy(), pytorch, rtol=1e-6)
