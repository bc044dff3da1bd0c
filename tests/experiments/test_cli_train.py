"""`trainplan train` learns for real: lenet5 on the handwritten digits, planned, swapped and
unplanned, to the same bits. The ten-epoch run is slow (a benchmark keeps its claim:
``python -m trainplan.experiments.bench_learning``); CI runs two epochs."""

from __future__ import annotations

import json

import pytest

from trainplan.experiments.cli import main

DIGITS = ["train", "--model", "lenet5", "--dataset", "digits", "--seed", "0", "--no-progress",
          "--json"]


def train(capsys, epochs: int, *extra: str) -> dict:
    assert main([*DIGITS, "--epochs", str(epochs), *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_lenet5_learns_the_digits_and_swapping_under_half_the_arena_changes_no_bit(
        capsys, tmp_path):
    pytest.importorskip("sklearn", reason="the digits come with scikit-learn: "
                        "pip install '.[data]'")
    plain = train(capsys, 10)
    assert plain["test_accuracy"] >= 0.95 and plain["iterations"] == 440
    budget = plain["arena_bytes"] // 2
    swapped = train(capsys, 10, "--budget", str(budget), "--swap-dir", str(tmp_path))
    assert swapped["arena_bytes"] <= budget and swapped["total_bytes_read"] > 0
    assert swapped["weights_sha256"] == plain["weights_sha256"]
    assert swapped["test_accuracy"] == plain["test_accuracy"]
    reference = train(capsys, 10, "--reference")
    assert reference["weights_sha256"] == plain["weights_sha256"]


def test_two_epochs_learn_with_one_record_each_and_swapping_changes_no_bit(capsys, tmp_path):
    pytest.importorskip("sklearn", reason="the digits come with scikit-learn: "
                        "pip install '.[data]'")
    plain = train(capsys, 2)
    epochs = plain["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2] and plain["iterations"] == 88
    assert epochs[1]["loss"] < epochs[0]["loss"] and epochs[1]["train_accuracy"] > 0.5
    # the run's train accuracy is the last epoch's, not the mean over all of them
    assert plain["train_accuracy"] == epochs[1]["train_accuracy"]
    assert plain["test_accuracy"] >= 0.8
    if plain["baseline_rss_bytes"] is not None:  # the OS let the peak's count restart
        assert plain["peak_rss_above_baseline_bytes"] == (plain["peak_rss_bytes"]
                                                          - plain["baseline_rss_bytes"]) > 0
    swapped = train(capsys, 2, "--budget", str(plain["arena_bytes"] // 2),
                    "--swap-dir", str(tmp_path))
    assert swapped["arena_bytes"] <= plain["arena_bytes"] // 2 and swapped["total_bytes_read"] > 0
    assert swapped["weights_sha256"] == plain["weights_sha256"]
    assert swapped["epochs"] == plain["epochs"]
    reference = train(capsys, 2, "--reference")
    assert reference["weights_sha256"] == plain["weights_sha256"]


def test_epoch_lines_go_to_stderr_and_the_table_to_stdout(capsys):
    assert main(["train", "--model", "mlp", "--samples", "64", "--batch", "16", "--epochs",
                 "2"]) == 0
    out = capsys.readouterr()
    assert "epoch 1/2: loss" in out.err and "epoch 2/2: loss" in out.err
    assert "epochs:" in out.out and "train_accuracy" in out.out and "epoch 1" not in out.out


@pytest.mark.parametrize("extra,says", [
    ([], "--swap-through needs a plan that swaps"),
    (["--budget", "1TiB"], "--swap-through needs a plan that swaps"),
    (["--budget", "1MiB", "--reference"], "--reference trains without a plan"),
])
def test_swapping_through_without_swapping_is_refused(capsys, extra, says):
    assert main(["train", "--model", "mlp", "--dataset", "synthetic", "--iterations", "1",
                 "--swap-through", *extra]) == 2
    assert says in capsys.readouterr().err
