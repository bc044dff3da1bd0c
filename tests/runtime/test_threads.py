"""The thread policy: small ops on one thread, pinned counts, fewer threads under load, what
the measured timeline reports; and lanes that run on helper threads and hand errors back."""

import numpy as np
import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.plan_training import plan_training
from trainplan.planner.zoo import get_model
from trainplan.runtime.kernels import threads as threads_module
from trainplan.runtime.kernels.parallel import over_lanes, run_lanes, split
from trainplan.runtime.kernels.threads import BLAS, ThreadPolicy
from trainplan.runtime.measure import measure
from trainplan.runtime.session import SessionOptions

LARGE = {"flops": 1e9, "nbytes": 1e7}  # tens of milliseconds
SMALL = {"flops": 1e3, "nbytes": 1e3}  # microseconds


def test_small_ops_run_on_one_thread_and_large_ones_on_the_pinned_count():
    policy = ThreadPolicy(pinned=2, cores=4)
    assert policy.threads_for(**SMALL) == 1
    assert policy.threads_for(**LARGE) == 2
    with pytest.raises(ValueError, match="at least 1"):
        ThreadPolicy(pinned=0)


class FakeClock:
    """Busy CPU seconds of the whole machine and of this process, advanced by hand."""

    def __init__(self, monkeypatch):
        self.now, self.busy, self.own = 100.0, 0.0, 0.0
        monkeypatch.setattr(threads_module, "_busy_seconds", lambda: self.busy)
        monkeypatch.setattr(threads_module.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(threads_module.time, "process_time", lambda: self.own)

    def advance(self, seconds: float, ours: float, others: float) -> None:
        self.now += seconds
        self.own += ours * seconds
        self.busy += (ours + others) * seconds


def test_the_policy_gives_up_a_core_while_another_process_keeps_it_busy(monkeypatch):
    clock = FakeClock(monkeypatch)
    policy = ThreadPolicy(cores=2, sample_seconds=0.2)
    assert policy.threads_for(**LARGE) == 2  # first sample: nothing known yet
    clock.advance(0.5, ours=2.0, others=0.0)
    assert policy.threads_for(**LARGE) == 2 and policy.others == 0.0
    clock.advance(0.5, ours=1.0, others=1.0)  # a CPU-bound neighbour
    assert policy.threads_for(**LARGE) == 1 and policy.others == pytest.approx(1.0)
    clock.advance(0.1, ours=1.0, others=0.0)  # within the sampling window: no new sample
    assert policy.threads_for(**LARGE) == 1
    clock.advance(0.5, ours=1.0, others=0.0)  # the neighbour has gone
    assert policy.threads_for(**LARGE) == 2
    assert policy.threads_for(**SMALL) == 1
    assert "fewer while other processes" in policy.describe()


def test_a_pinned_policy_ignores_the_load(monkeypatch):
    clock = FakeClock(monkeypatch)
    policy = ThreadPolicy(pinned=2, cores=2)
    clock.advance(1.0, ours=1.0, others=1.0)
    assert policy.threads_for(**LARGE) == 2 and policy.describe().startswith("pinned to 2")


def test_blas_threads_are_set_through_threadpoolctl():
    from threadpoolctl import threadpool_info

    before = BLAS.sync()
    ours = {lib.filepath for lib in BLAS._controllers()}  # the BLAS loaded with numpy
    assert ours
    try:
        for n in (1, 2):
            BLAS.set(n)
            assert {p["num_threads"] for p in threadpool_info() if p["filepath"] in ours} == {n}
    finally:
        BLAS.set(before)


def test_lanes_cover_the_range_and_run_on_helper_threads():
    import threading

    seen = {}
    run_lanes(lambda lane: seen.__setitem__(lane, threading.current_thread().name), threads=2)
    assert set(seen) == {0, 1} and seen[0] != seen[1]
    assert [(s.start, s.stop) for s in split(7)] == [(0, 4), (4, 7)]
    out = np.zeros(9)
    over_lanes(9, 2, lambda s: out.__setitem__(s, s.start))
    assert out.tolist() == [0] * 5 + [5] * 4


def test_an_error_in_a_helper_lane_reaches_the_caller():
    def work(lane):
        if lane == 1:
            raise KeyError("lane one")

    with pytest.raises(KeyError, match="lane one"):
        run_lanes(work, threads=2)
    run_lanes(lambda lane: None, threads=2)  # the helpers are still there afterwards


@pytest.mark.parametrize("threads", [1, 2])
def test_the_measured_timeline_reports_each_eos_threads(threads):
    graph = build_training_graph(get_model("lenet5", batch=32))
    m = measure(graph, plan_training(graph, offsets="greedy_size"), warmup=1, iterations=2,
                threads=threads)
    counts = set(m.events["threads"])
    assert counts == ({1} if threads == 1 else {1, 2})  # lenet5's small ops stay on one
    assert m.summary.blas_threads == threads
    assert m.summary.thread_policy.startswith(f"pinned to {threads}")


def test_trainplan_train_pins_the_threads_and_refuses_fewer_than_one(capsys):
    import json

    from trainplan.experiments.cli import main

    args = ["train", "--model", "mlp", "--dataset", "synthetic", "--iterations", "2",
            "--no-progress", "--json"]
    assert main([*args, "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["thread_policy"].startswith("pinned to 1")
    assert main([*args, "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("name, kw", [
    ("lenet5", {"batch": 16}),
    ("resnet18_cifar", {"batch": 4}),
    ("transformer", {"batch": 4, "input_shape": (16,)}),
])
def test_one_thread_two_threads_and_the_policy_train_the_same_bits(name, kw):
    """Lanes are fixed per op (one for an op too small for threads), so pinning one or two
    threads, or letting the load decide, changes no bit."""
    from trainplan.runtime.data import synthetic
    from trainplan.runtime.session import Session

    graph = build_training_graph(get_model(name, **kw))
    data = synthetic(graph, 2 * kw["batch"], seed=5)
    shas = set()
    plan = plan_training(graph, offsets="greedy_size")
    for threads in (1, 2, None):
        with Session(graph, plan, SessionOptions(threads=threads)) as s:
            for b in data.batches(kw["batch"], None):
                s.step(b)
            shas.add(s.weights_sha256())
            threads_used = set(s.executor.threads_at) - {0}
            assert threads_used <= ({1} if threads == 1 else {1, 2})
    assert len(shas) == 1


def test_an_op_keeps_one_thread_when_more_did_not_speed_it_up():
    """Ops alternate between one thread and more over their first runs; an op whose best run
    on more threads is not below GAIN x its best on one stays on one, the others get all."""
    from trainplan.runtime.kernels.threads import GAIN, TRIALS, OpThreads

    tuner = OpThreads()
    runs = {"gil_bound": {1: 1.0, 2: 0.97}, "parallel": {1: 1.0, 2: 0.55}}
    seen = {op: [] for op in runs}
    for _ in range(2 * TRIALS):
        for op, seconds in runs.items():
            n = tuner.threads(op, available=2)
            seen[op].append(n)
            tuner.record(op, n, seconds[n])
    assert seen["gil_bound"] == [1, 2] * TRIALS  # alternated while deciding
    assert not tuner.deciding
    assert tuner.threads("gil_bound", 2) == 1 and tuner.threads("parallel", 2) == 2
    assert tuner.threads("parallel", 1) == 1  # a busy machine still decides first
    assert 0.97 > GAIN * 1.0 > 0.55


def test_a_run_whose_ops_choose_their_threads_trains_the_same_bits():
    """The choice is which thread runs an op's lanes, never their cut: two threads, with every
    op timed and decided along the way, give one thread's bits."""
    from trainplan.runtime.data import synthetic
    from trainplan.runtime.kernels.threads import TRIALS
    from trainplan.runtime.session import Session

    graph = build_training_graph(get_model("lenet5", batch=16))
    plan = plan_training(graph, offsets="greedy_size")
    batch = synthetic(graph, 16, seed=3).arrays
    shas = []
    for threads in (1, 2):
        with Session(graph, plan, SessionOptions(threads=threads)) as s:
            for _ in range(2 * TRIALS + 1):
                s.step(batch)
            shas.append(s.weights_sha256())
            assert not s.executor.op_threads.deciding
            if threads == 2:
                assert s.executor.op_threads.single  # the ops large enough for lanes
    assert shas[0] == shas[1]


def test_only_ops_under_a_millisecond_are_timed_to_choose_their_threads():
    """Small ops run on one thread anyway, and long ones take their threads untimed."""
    policy = ThreadPolicy(pinned=2, cores=2)
    assert not policy.tuned(**SMALL) and not policy.tuned(**LARGE)
    assert policy.tuned(flops=2e7, nbytes=1e5)  # about 0.4 ms
