"""Stopping `trainplan train` from outside: SIGTERM (how schedulers stop jobs) is handled like
Ctrl-C — the swap directory is removed, the last complete checkpoint stays, the exit status is
143 — and resuming gives the bits of an uninterrupted run; what SIGKILL leaves behind (a swap
directory, a temporary checkpoint) is removed by the next run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from trainplan.experiments.cli import main

EPOCHS = 20
ARGS = ["train", "--model", "lenet5", "--dataset", "synthetic", "--samples", "32", "--batch",
        "8", "--budget", "1200KiB", "--seed", "3", "--no-progress", "--json"]


def start(tmp_path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trainplan", *ARGS, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)


def stop_after_first_checkpoint(process: subprocess.Popen, checkpoint, sig: int) -> str:
    """Send ``sig`` as soon as the first checkpoint is on disk (EPOCHS - 1 epochs to go)."""
    deadline = time.monotonic() + 300
    while not checkpoint.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.005)
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    return err


def leftovers(*directories) -> list[str]:
    return sorted(name for d in directories for name in os.listdir(d)
                  if name.startswith(("trainplan-swap-", ".tmp-")))


def trained(capsys, *extra: str) -> dict:
    assert main([*ARGS, *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_sigterm_mid_training_leaves_nothing_and_resume_gives_the_same_bits(tmp_path, capsys):
    swap, ckpt = tmp_path / "swap", tmp_path / "run.npz"
    swap.mkdir()
    common = ("--epochs", str(EPOCHS), "--swap-dir", str(swap), "--checkpoint", str(ckpt))
    process = start(tmp_path, *common)
    err = stop_after_first_checkpoint(process, ckpt, signal.SIGTERM)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err and "Traceback" not in err
    assert leftovers(swap, tmp_path) == []
    resumed = trained(capsys, *common, "--resume")
    assert 0 < resumed["iterations"] == EPOCHS * 4
    straight = trained(capsys, "--epochs", str(EPOCHS), "--swap-dir", str(swap))
    assert resumed["weights_sha256"] == straight["weights_sha256"]
    assert leftovers(swap, tmp_path) == []


def test_what_sigkill_leaves_is_removed_by_the_next_run(tmp_path, capsys):
    swap, ckpt = tmp_path / "swap", tmp_path / "run.npz"
    swap.mkdir()
    common = ("--epochs", str(EPOCHS), "--swap-dir", str(swap), "--checkpoint", str(ckpt))
    process = start(tmp_path, *common)
    stop_after_first_checkpoint(process, ckpt, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    left = leftovers(swap)
    assert len(left) == 1 and left[0].startswith("trainplan-swap-")
    # a temporary checkpoint of the killed process, as a kill during a write leaves one
    (tmp_path / f".tmp-{process.pid}-run.npz.abc123").write_bytes(b"half a checkpoint")
    trained(capsys, "--iterations", "1", *common[2:])
    assert leftovers(swap, tmp_path) == []


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_checkpoints_are_written_with_the_process_umask(tmp_path, capsys, mask, mode):
    previous = os.umask(mask)
    try:
        assert main(["train", "--model", "mlp", "--batch", "4", "--iterations", "1",
                     "--no-progress", "--checkpoint", str(tmp_path / "c.npz")]) == 0
    finally:
        os.umask(previous)
    assert os.stat(tmp_path / "c.npz").st_mode & 0o777 == mode
