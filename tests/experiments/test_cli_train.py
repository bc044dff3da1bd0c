"""`trainplan train` learns for real: lenet5 on the handwritten digits, planned, swapped and
unplanned, to the same bits."""

from __future__ import annotations

import json

import pytest

from trainplan.experiments.cli import main

TEN_EPOCHS = ["train", "--model", "lenet5", "--dataset", "digits", "--epochs", "10",
              "--seed", "0", "--no-progress", "--json"]


def train(capsys, *extra: str) -> dict:
    assert main([*TEN_EPOCHS, *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_lenet5_learns_the_digits_and_swapping_under_half_the_arena_changes_no_bit(
        capsys, tmp_path):
    pytest.importorskip("sklearn", reason="the digits come with scikit-learn: "
                        "pip install '.[data]'")
    plain = train(capsys)
    assert plain["test_accuracy"] >= 0.95 and plain["iterations"] == 440
    budget = plain["arena_bytes"] // 2
    swapped = train(capsys, "--budget", str(budget), "--swap-dir", str(tmp_path))
    assert swapped["arena_bytes"] <= budget and swapped["total_bytes_read"] > 0
    assert swapped["weights_sha256"] == plain["weights_sha256"]
    assert swapped["test_accuracy"] == plain["test_accuracy"]
    reference = train(capsys, "--reference")
    assert reference["weights_sha256"] == plain["weights_sha256"]


@pytest.mark.parametrize("extra,says", [
    ([], "--swap-through needs a plan that swaps"),
    (["--budget", "1TiB"], "--swap-through needs a plan that swaps"),
    (["--budget", "1MiB", "--reference"], "--reference trains without a plan"),
])
def test_swapping_through_without_swapping_is_refused(capsys, extra, says):
    assert main(["train", "--model", "mlp", "--dataset", "synthetic", "--iterations", "1",
                 "--swap-through", *extra]) == 2
    assert says in capsys.readouterr().err
