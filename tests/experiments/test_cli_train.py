"""`trainplan train` learns for real: lenet5 on the handwritten digits, planned, swapped and
unplanned, to the same bits."""

from __future__ import annotations

import json

import pytest

from experiments.cli import main

pytest.importorskip("sklearn", reason="the digits come with scikit-learn: pip install '.[data]'")

TEN_EPOCHS = ["train", "--model", "lenet5", "--dataset", "digits", "--epochs", "10",
              "--seed", "0", "--no-progress", "--json"]


def train(capsys, *extra: str) -> dict:
    assert main([*TEN_EPOCHS, *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_lenet5_learns_the_digits_and_swapping_under_half_the_arena_changes_no_bit(
        capsys, tmp_path):
    plain = train(capsys)
    assert plain["test_accuracy"] >= 0.95 and plain["iterations"] == 440
    budget = plain["arena_bytes"] // 2
    swapped = train(capsys, "--budget", str(budget), "--swap-dir", str(tmp_path))
    assert swapped["arena_bytes"] <= budget and swapped["bytes_read"] > 0
    assert swapped["weights_sha256"] == plain["weights_sha256"]
    assert swapped["test_accuracy"] == plain["test_accuracy"]
    reference = train(capsys, "--reference")
    assert reference["weights_sha256"] == plain["weights_sha256"]
