"""Sessions: no tensor-sized allocation per iteration, resumable checkpoints, swap faults."""

import gc
import os
import tracemalloc

import numpy as np
import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.plan_training import plan_training
from trainplan.planner.zoo import get_model
from trainplan.runtime.checkpoint import load_checkpoint
from trainplan.runtime.data import synthetic
from trainplan.runtime.kernels.base import CHUNK
from trainplan.runtime.session import Session, SessionOptions
from trainplan.runtime.swapio import SwapIOError
from trainplan.runtime.train import train

SCRATCH_LIMIT = 1 << 20  # kernels' bounded scratch: independent of tensor sizes


def traced_peak(model: str, batch: int, threads: int) -> tuple[int, int]:
    graph = build_training_graph(get_model(model, batch=batch))
    batches = list(synthetic(graph, 2 * batch, seed=1).batches(batch, None))
    plan = plan_training(graph, offsets="greedy_size")
    with Session(graph, plan, SessionOptions(threads=threads)) as session:
        session.step(batches[0])  # warm-up: contexts and views are built once
        gc.collect()  # earlier tests' garbage is not this iteration's (finalisers allocate)
        tracemalloc.start()
        session.step(batches[1])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, session.arena_bytes


@pytest.mark.parametrize("threads", [1, 2])
def test_an_iteration_allocates_nothing_tensor_sized(threads):
    """Scratch is bounded slices of at most CHUNK elements in each lane: at batch 1024 the
    arena is 4x that at 256, the scratch the same but for slices not yet full at 256 (less
    than one CHUNK of float32; a tensor-sized temporary would add megabytes)."""
    small, small_arena = traced_peak("lenet5", 256, threads)
    large, arena = traced_peak("lenet5", 1024, threads)
    assert large < SCRATCH_LIMIT < small_arena  # the arena holds MBs; an iteration less
    assert arena > 3 * small_arena
    if threads == 1:  # (two lanes' scratch may or may not be alive at the same moment)
        assert abs(large - small) < 4 * CHUNK  # what it allocates does not grow with the batch


def swap_graph():
    """lenet5 at batch 8 and a plan swapping under 1.2x its minimum budget."""
    graph = build_training_graph(get_model("lenet5", batch=8))
    budget = int(1.2 * plan_training(graph).bounds.min_budget_bytes)
    return graph, plan_training(graph, budget=budget)


def test_resumed_training_gives_the_same_bits(tmp_path):
    graph, plan = swap_graph()
    data = synthetic(graph, 32, seed=2)
    opts = SessionOptions(seed=5)
    with Session(graph, plan, opts) as s:
        straight = train(s, data, batch=8, epochs=2, seed=9, progress=False).weights_sha256
    ckpt = str(tmp_path / "ckpt.npz")
    with Session(graph, plan, opts) as s:
        train(s, data, batch=8, epochs=1, seed=9, checkpoint=ckpt, progress=False)
    with Session(graph, plan, opts) as s:
        resumed = train(s, data, batch=8, epochs=2, seed=9, checkpoint=ckpt, resume=True,
                        progress=False)
    assert resumed.weights_sha256 == straight and resumed.iterations == 8


def test_read_only_swap_directory_is_a_clear_error(tmp_path):
    graph, plan = swap_graph()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(SwapIOError, match="cannot create the swap file"):
            Session(graph, plan, SessionOptions(swap_dir=str(locked)))
    finally:
        locked.chmod(0o700)
    assert os.listdir(locked) == []


def test_unusable_swap_directory_is_a_clear_error(tmp_path):
    graph, plan = swap_graph()
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(SwapIOError, match="cannot create the swap file"):
        Session(graph, plan, SessionOptions(swap_dir=str(not_a_dir)))
    assert os.listdir(tmp_path) == ["file"]


@pytest.mark.parametrize("fault", ["full_disk", "short_read"])
def test_swap_faults_keep_the_checkpoint_and_leave_no_files(tmp_path, monkeypatch, fault):
    graph, plan = swap_graph()
    data = synthetic(graph, 16, seed=2)
    ckpt = str(tmp_path / "ckpt.npz")
    with Session(graph, plan) as s:
        swap_dir = s.swapfile.directory
        train(s, data, batch=8, epochs=1, checkpoint=ckpt, progress=False)
        saved, _ = load_checkpoint(ckpt)
        if fault == "full_disk":
            def pwrite(fd, data, offset):
                raise OSError(28, "No space left on device")
            monkeypatch.setattr(os, "pwrite", pwrite)
        else:
            real = os.preadv
            monkeypatch.setattr(os, "preadv", lambda fd, bufs, off: real(fd, bufs, off) // 2)
        with pytest.raises(Exception, match="No space left|short read"):
            train(s, data, batch=8, epochs=1, checkpoint=ckpt, progress=False)
    monkeypatch.undo()
    after, _ = load_checkpoint(ckpt)
    assert all(np.array_equal(saved[k], after[k]) for k in saved)
    assert not os.path.exists(swap_dir)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".ckpt-")]


def test_swapping_through_to_storage_flushes_and_drops_every_transfer(tmp_path, monkeypatch):
    """``swap_through``: each write is flushed and each transferred range dropped from the page
    cache; the bits are those of swapping through the cache."""
    graph, plan = swap_graph()
    data = list(synthetic(graph, 16, seed=2).batches(8, None))
    synced, dropped = [], []
    real_sync, real_advise = os.fdatasync, os.posix_fadvise
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real_sync(fd)))
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, off, n, how: (
        dropped.append((off, n, how)), real_advise(fd, off, n, how)))
    shas = {}
    for through in (False, True):
        opts = SessionOptions(seed=5, swap_through=through, swap_dir=str(tmp_path))
        with Session(graph, plan, opts) as s:
            for b in data:
                s.step(b)
            shas[through] = s.weights_sha256()
            moved = s.swapfile.bytes_written, s.swapfile.bytes_read
        assert not os.listdir(tmp_path)  # the swap file is gone either way
        if not through:
            assert synced == dropped == []  # through the page cache: no flush, no drop
    assert shas[True] == shas[False]
    assert moved[0] > 0 and moved[1] > 0
    drops = [(off, n) for off, n, how in dropped if how == os.POSIX_FADV_DONTNEED]
    assert len(synced) > 0 and sum(n for _, n in drops) >= moved[0] + moved[1]
    assert all(off % 4096 == 0 == n % 4096 for off, n in drops)  # whole pages
    # read-ahead off once, at open: no neighbour's pages come back with a read
    assert [d for d in dropped if d[2] != os.POSIX_FADV_DONTNEED] == [
        (0, 0, os.POSIX_FADV_RANDOM)]


def test_the_runtime_refuses_a_plan_it_cannot_run(tmp_path):
    from dataclasses import replace

    from trainplan.runtime.session import RefusedPlan

    graph, plan = swap_graph()
    other = build_training_graph(get_model("lenet5", batch=4))
    with pytest.raises(RefusedPlan, match="another graph"):
        Session(other, plan)
    with pytest.raises(RefusedPlan, match="needs multiples of 64"):
        Session(graph, plan_training(graph, alignment=16))
    b = plan.buffers[0]
    shifted = replace(b, pieces=(replace(b.pieces[0], offset=b.pieces[0].offset + 8),)
                      + b.pieces[1:])
    bad = replace(plan, buffers=(shifted,) + plan.buffers[1:])
    with pytest.raises(RefusedPlan, match="does not validate"):
        Session(graph, bad, SessionOptions(swap_dir=str(tmp_path)))
    assert os.listdir(tmp_path) == []  # refused before a swap file exists


SET_UP_GROWTH = """
import gc, psutil
from trainplan.planner.build import build_training_graph
from trainplan.planner.plan_training import plan_training
from trainplan.planner.zoo import get_model
from trainplan.runtime.session import Session
graph = build_training_graph(get_model("resnet18_cifar", batch=2))
plan = plan_training(graph, offsets="greedy_size")
gc.collect()
before = psutil.Process().memory_info().rss
with Session(graph, plan):
    grown = psutil.Process().memory_info().rss - before
print(grown, sum(b.nbytes for b in plan.buffers if b.persistent))
"""


def test_setting_up_a_session_keeps_no_freed_heap_in_rss():
    """Drawing resnet18_cifar's initial weights frees ~28 MB of float64 temporaries that the C
    heap would keep in RSS for the whole run: set-up grows a fresh process's RSS by the
    persistent buffers' bytes (the arena pages it writes) and a few MB, not by them too."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", SET_UP_GROWTH], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    grown, persistent = map(int, out.split())
    assert grown < persistent + (8 << 20), (grown, persistent)
