"""The lane worker: a helper process running lanes of lane programs over the shared arena gives
one thread's bits, reports a failing lane, refuses what it cannot run, stops with its session,
outlives no parent, ignores Ctrl-C, and its CPU is not taken for another process's load."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest

from tests.runtime.test_gradcheck import CASES
from tests.runtime.test_kernels import MEDIUM, _assert_same_bits, _placed, _results, _run
from trainplan.planner.build import build_training_graph
from trainplan.planner.plan_training import plan_training
from trainplan.planner.zoo import get_model
from trainplan.runtime.data import synthetic
from trainplan.runtime.kernels import KernelError
from trainplan.runtime.kernels.program import LaneProgram, ScratchPool, call, lane_program
from trainplan.runtime.kernels.standalone import standalone_ctx
from trainplan.runtime.kernels.threads import ThreadPolicy
from trainplan.runtime.kernels.worker import LaneWorker, available
from trainplan.runtime.layout import SharedArena
from trainplan.runtime.session import Session, SessionOptions

pytestmark = [pytest.mark.usefixtures("one_blas_thread"),
              pytest.mark.skipif(not available(), reason="no lane worker on this platform")]

CONVOLUTIONS = [
    ("conv_wide", "conv2d", [(4, 6, 12, 12)], {"filters": 16, "kernel_size": 5}),
    ("conv_same_flipped", "conv2d", [(4, 8, 8, 8)], {"filters": 4, "kernel_size": 3,
                                                      "padding": 1}),
    ("conv_one_channel", "conv2d", [(4, 1, 14, 14)], {"filters": 6, "kernel_size": 5}),
    ("pool_tiled", "pooling2d", [(4, 6, 12, 12)], {"pooling": "max", "pool_size": 2,
                                                    "stride": 2}),
    ("relu", "activation", [(64, 101)], {"activation": "relu"}),
]
# kernels that build lane programs: the worker must have run some of their lanes
PROGRAMS = {"conv2d", "pooling2d"}


@pytest.fixture(scope="module")
def worker():
    shared = SharedArena(16 << 20)
    lane_worker = LaneWorker(shared.fd, shared.array)
    assert lane_worker.alive
    yield shared, lane_worker
    lane_worker.close()
    shared.close()


CASE_LIST = CASES + MEDIUM + CONVOLUTIONS


@pytest.mark.parametrize("case", CASE_LIST, ids=[c[0] for c in CASE_LIST])
def test_the_lane_worker_gives_one_threads_bits(case, worker):
    shared, lane_worker = worker
    _, layer_type, shapes, props = case
    base = standalone_ctx(layer_type, shapes, props, seed=4)
    one = _placed(base, 0)
    one.threads = 1
    loss = _run(one, layer_type)
    two = _placed(base, 0, shared.array)
    two.threads, two.worker = 2, lane_worker
    before = lane_worker.requests
    assert _run(two, layer_type) == loss
    _assert_same_bits(_results(one), _results(two), layer_type)
    uses_programs = layer_type in PROGRAMS and "global" not in str(props.get("pooling"))
    if uses_programs or props.get("activation") == "relu":
        assert lane_worker.requests > before  # its lanes ran in the worker


def test_lenet5_trains_to_the_same_bits_with_the_worker_as_on_one_thread():
    graph = build_training_graph(get_model("lenet5", batch=8))
    plan = plan_training(graph, offsets="greedy_size")
    batch = synthetic(graph, 8, seed=1).arrays
    runs = []
    for threads in (1, 2):
        with Session(graph, plan, SessionOptions(threads=threads)) as session:
            losses = [session.step(batch).loss for _ in range(4)]
            weights = {b: session.load(b).tobytes() for b in session.persistent}
            worker = session.executor.worker
            used = worker.requests if worker is not None else 0
            process = worker.proc if worker is not None else None
        runs.append((losses, weights, used, process))
    (losses1, weights1, used1, _), (losses2, weights2, used2, process) = runs
    assert losses1 == losses2 and weights1 == weights2
    assert used1 == 0 and used2 > 0
    assert process.poll() is not None  # stopped with its session


def test_a_failing_lane_is_reported_and_the_worker_carries_on(worker):
    shared, lane_worker = worker
    a = shared.array[:64].view(np.float32)
    good = LaneProgram(((call(np.multiply, a[:8], 2.0, out=a[:8]),),
                        (call(np.multiply, a[8:], 3.0, out=a[8:]),)))
    bad = LaneProgram(((call(np.copyto, a[:8], 1.0),),
                       (call(np.matmul, a[:4].reshape(2, 2), a[:6].reshape(3, 2),
                             out=a[8:12].reshape(2, 2)),)))
    with pytest.raises(KernelError, match="lane worker failed.*matmul"):
        lane_worker.run(bad)
    a[:] = 1.0
    assert lane_worker.run(good)
    assert a[:8].tolist() == [2.0] * 8 and a[8:].tolist() == [3.0] * 8


def test_what_the_worker_cannot_run_runs_on_threads(worker):
    shared, lane_worker = worker
    private = np.ones(16, np.float32)
    outside = LaneProgram(((call(np.add, private[:8], 1.0, out=private[:8]),),
                           (call(np.add, private[8:], 1.0, out=private[8:]),)))
    assert not lane_worker.run(outside)
    python_call = LaneProgram(((call(np.copyto, shared.array[:4], 0),),
                               (call(print, "no"),)))
    assert not lane_worker.run(python_call)
    ctx = standalone_ctx("activation", [(8, 4)], {"activation": "relu"})
    ctx.threads, ctx.worker = 2, lane_worker
    ctx.run(LaneProgram(((call(np.add, private[:8], 1.0, out=private[:8]),),
                         (call(np.add, private[8:], 1.0, out=private[8:]),))))
    assert private.tolist() == [2.0] * 16  # ran on the lane threads instead


def test_lane_temporaries_are_each_processes_own_and_programs_follow_their_arrays(worker):
    shared, lane_worker = worker
    x = shared.array[4096:4096 + 64].view(np.float32)
    y = shared.array[8192:8192 + 64].view(np.float32)
    x[:] = np.arange(16) - 8
    pool = ScratchPool(64)
    temps = [pool.get(k, (8,), bool) for k in range(2)]
    assert temps[0].key != temps[1].key and pool.get(0, (4,), bool).key == temps[0].key
    assert pool.get(0, (65,), bool).key != temps[0].key  # beyond the pool's size: its own
    program = LaneProgram(tuple(
        (call(np.greater, x[k * 8:(k + 1) * 8], 0, out=temps[k]),
         call(np.multiply, x[k * 8:(k + 1) * 8], temps[k], out=y[k * 8:(k + 1) * 8]))
        for k in range(2)))
    assert lane_worker.run(program)
    assert y.tolist() == np.maximum(np.arange(16) - 8, 0).tolist()
    ctx = standalone_ctx("activation", [(8, 4)], {"activation": "relu"})
    first = lane_program(ctx, "k", lambda: [[], []])
    assert lane_program(ctx, "k", lambda: [[], []]) is first
    ctx.inputs[0] = ctx.inputs[0].copy()  # replaced arrays: the program is built again
    assert lane_program(ctx, "k", lambda: [[], []]) is not first


CHILD = textwrap.dedent("""
    import sys, time
    from trainplan.planner.build import build_training_graph
    from trainplan.planner.plan_training import plan_training
    from trainplan.planner.zoo import get_model
    from trainplan.runtime.data import synthetic
    from trainplan.runtime.session import Session, SessionOptions
    graph = build_training_graph(get_model("lenet5", batch=8))
    session = Session(graph, plan_training(graph, offsets="greedy_size"),
                      SessionOptions(threads=2))
    batch = synthetic(graph, 8, seed=0).arrays
    for _ in range(4):
        session.step(batch)
    print(session.executor.worker.pid(), flush=True)
    time.sleep(60)
""")


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


def test_the_worker_ignores_ctrl_c_and_does_not_outlive_a_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        os.kill(pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        time.sleep(0.3)
        assert psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        parent.kill()  # no clean-up runs in the parent
        parent.wait()
        assert _gone(pid, within=10.0)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_the_workers_cpu_is_not_counted_as_another_processs_load():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        ours = ThreadPolicy(cores=2, sample_seconds=0.0, helpers=[spinner.pid])
        theirs = ThreadPolicy(cores=2, sample_seconds=0.0)
        ours.available(), theirs.available()
        time.sleep(0.5)
        ours.available(), theirs.available()
        assert theirs.others - ours.others > 0.5
    finally:
        spinner.kill()
        spinner.wait()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_runs_its_lanes_without_its_parents_worker():
    from trainplan.runtime.kernels import parallel

    graph = build_training_graph(get_model("lenet5", batch=8))
    plan = plan_training(graph, offsets="greedy_size")
    batch = synthetic(graph, 8, seed=0).arrays
    with Session(graph, plan, SessionOptions(threads=2)) as session:
        for _ in range(4):
            session.step(batch)
        assert session.executor.lane_worker() is not None
        served = session.executor.worker.requests
        pid = os.fork()
        if pid == 0:  # the child: lanes on threads, the parent's worker untouched
            ok = (session.executor.lane_worker() is None and not parallel._before_threads
                  and np.isfinite(session.step(batch).loss))
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert session.executor.worker.requests == served
        assert session.executor.lane_worker() is not None  # still the parent's, alive


def test_train_reports_the_worker_and_goes_without_one_when_told(capsys):
    import json

    from trainplan.experiments.cli import main

    args = ["train", "--model", "lenet5", "--dataset", "synthetic", "--iterations", "8",
            "--threads", "2", "--no-progress", "--json"]
    assert main(args) == 0
    with_worker = json.loads(capsys.readouterr().out)
    assert main([*args, "--no-lane-worker"]) == 0
    without = json.loads(capsys.readouterr().out)
    assert with_worker["lane_worker_bytes"] > 1_000_000  # its interpreter and numpy
    assert "lane worker" in with_worker["thread_policy"]
    assert without["lane_worker_bytes"] == 0 and "lane worker" not in without["thread_policy"]
    assert with_worker["weights_sha256"] == without["weights_sha256"]


def test_a_session_told_not_to_has_no_worker_and_a_private_arena():
    graph = build_training_graph(get_model("lenet5", batch=8))
    plan = plan_training(graph, offsets="greedy_size")
    batch = synthetic(graph, 8, seed=0).arrays
    with Session(graph, plan, SessionOptions(threads=2, lane_worker=False)) as session:
        session.step(batch)
        assert session.layout.shared is None and session.executor.lane_worker() is None


def test_a_system_without_memfd_trains_on_threads(monkeypatch):
    def refused(*args, **kwargs):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "memfd_create", refused)
    graph = build_training_graph(get_model("lenet5", batch=8))
    plan = plan_training(graph, offsets="greedy_size")
    with Session(graph, plan, SessionOptions(threads=2)) as session:
        loss = session.step(synthetic(graph, 8, seed=0).arrays).loss
        assert session.layout.shared is None and session.executor.lane_worker() is None
    assert np.isfinite(loss)


def test_a_program_larger_than_a_pipe_holds_reaches_the_worker(worker):
    shared, lane_worker = worker
    a = shared.array[12288:12288 + 4096].view(np.float32)
    a[:] = 0.0
    lane_worker.run(LaneProgram(((), (call(np.add, a[:1], 1.0, out=a[:1]),))))  # it polls now
    many = tuple(call(np.add, a[k:k + 1], 1.0, out=a[k:k + 1]) for k in range(512, 1024)
                 for _ in range(4))  # 2,048 calls, ~100 KB: more than a pipe holds at once
    assert lane_worker.run(LaneProgram(((), many)))
    assert a[512:].tolist() == [4.0] * 512 and a[0] == 1.0
