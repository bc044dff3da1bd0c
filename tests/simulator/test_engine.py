"""The event engine against hand-computed times: ops, transfers, stalls, channels, reuse."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.simulator.conftest import make_device
from trainplan.simulator.engine import Step, Transfer, run_engine
from trainplan.simulator.errors import InvalidSchedule


def test_one_op_takes_the_slower_of_flops_and_bytes(device):
    run = run_engine([Step(0, flops=2e9), Step(1, flops=1e6, bytes_touched=3 * 10**9),
                      Step(2, op_class="conv", flops=1e9)], [], device)
    # 2 GFLOP at 1 GFLOP/s; 3 GB at 1 GB/s beats 1 MFLOP; conv at efficiency 0.5
    assert run.end.tolist() == pytest.approx([2.0, 5.0, 7.0], abs=1e-12)
    assert run.stall.tolist() == [0.0, 0.0, 0.0]


def test_one_transfer_takes_latency_plus_bytes_over_bandwidth():
    dev = make_device(read_lat=0.01, write_lat=0.02)
    run = run_engine([Step(0), Step(1)],
                     [Transfer("a", "read", 100 * 10**6, 0, 1),
                      Transfer("b", "write", 50 * 10**6, 1)], dev)
    read, write = run.transfers
    assert (read["start_s"], read["end_s"]) == pytest.approx((0.0, 1.01))
    assert (write["start_s"], write["end_s"]) == pytest.approx((1.01, 2.03))


def test_a_late_prefetch_stalls_the_op_by_exactly_what_is_missing(device):
    # op 0 computes for 1 s; the read needed at EO 1 starts with EO 0 and takes 1.5 s
    run = run_engine([Step(0, flops=1e9), Step(1, flops=1e9, reads=("w",))],
                     [Transfer("w", "read", 150 * 10**6, 0, 1)], device)
    assert run.stall.tolist() == pytest.approx([0.0, 0.5])
    assert run.end.tolist() == pytest.approx([1.0, 2.5])


def test_an_early_prefetch_is_hidden(device):
    steps = [Step(e, flops=1e9) for e in range(3)] + [Step(3, reads=("w",))]
    run = run_engine(steps, [Transfer("w", "read", 150 * 10**6, 0, 3)], device)
    assert run.stall.sum() == 0.0


def _channel_case(shared: bool):
    """A 1 s write after EO 0, a 1 s read issued at EO 1 for EO 2, 1 s ops."""
    dev = make_device(shared=shared, read_mbs=100, write_mbs=100)
    steps = [Step(0, flops=1e9), Step(1, flops=1e9), Step(2, flops=1e9, reads=("y",))]
    transfers = [Transfer("x", "write", 100 * 10**6, 0), Transfer("y", "read", 100 * 10**6, 1, 2)]
    return run_engine(steps, transfers, dev)


def test_shared_and_separate_channels_differ_by_exactly_the_queued_write():
    shared, separate = _channel_case(True), _channel_case(False)
    # separate: the read runs 1..2 s beside the write; shared: it queues behind it, 2..3 s
    assert [r["channel"] for r in shared.transfers] == ["storage", "storage"]
    assert [r["channel"] for r in separate.transfers] == ["write", "read"]
    assert separate.stall[2] == pytest.approx(0.0)
    assert shared.stall[2] == pytest.approx(1.0)
    assert shared.end[-1] - separate.end[-1] == pytest.approx(1.0)


def test_bytes_freed_by_an_eviction_are_reused_only_after_the_write(device):
    # the write after EO 0 takes 2 s (100 MB at 50 MB/s); EO 1 reuses its bytes
    steps = [Step(0, flops=1e9), Step(1, flops=1e9)]
    run = run_engine(steps, [Transfer("x", "write", 100 * 10**6, 0, deadline_eo=1)], device)
    assert run.stall.tolist() == pytest.approx([0.0, 2.0])
    free = run_engine(steps, [Transfer("x", "write", 100 * 10**6, 0)], device)
    assert free.stall.tolist() == [0.0, 0.0]


def test_a_read_waits_for_the_write_of_the_same_tensor():
    dev = make_device(shared=False)
    steps = [Step(0), Step(1), Step(2, reads=("x",))]
    run = run_engine(steps, [Transfer("x", "write", 50 * 10**6, 0),
                             Transfer("x", "read", 100 * 10**6, 1, 2)], dev)
    write, read = run.transfers
    assert read["start_s"] == pytest.approx(write["end_s"]) == pytest.approx(1.0)


def test_a_clean_tensor_is_not_written_again_and_state_carries_over(device):
    # w is written once; the second iteration's eviction finds a valid copy in storage,
    # unless a step changed w in between (then it is written again)
    steps = [Step(0, reads=("w",)), Step(1), Step(2, reads=("w",))]
    transfers = [Transfer("w", "write", 10**6, 0), Transfer("w", "read", 10**6, 1, 2)]
    run = run_engine(steps, transfers, device, iterations=2)
    writes = [r for r in run.transfers if r["kind"] == "write"]
    assert [w["skipped"] for w in writes] == [False, True]
    changed = [Step(0, writes=("w",)), Step(1), Step(2, reads=("w",))]
    run = run_engine(changed, transfers, device, iterations=2)
    assert [r["skipped"] for r in run.transfers if r["kind"] == "write"] == [False, False]


def test_a_prefetch_issued_in_the_previous_iteration(device):
    steps = [Step(0, reads=("w",)), Step(1, flops=2e9)]
    run = run_engine(steps, [Transfer("w", "read", 100 * 10**6, -1, 0)], device, iterations=2)
    # iteration 0 reads at time 0 (1 s stall); iteration 1's read overlaps EO 1's 2 s op
    assert run.stall.tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("transfer, words", [
    (Transfer("a", "copy", 1, 0, 1), "kind must be read or write"),
    (Transfer("a", "read", 1, 1, 0), "a read needs"),
    (Transfer("a", "read", 1, 0), "a read needs"),
    (Transfer("a", "write", 1, 1, 1), "a write needs"),
    (Transfer("a", "write", -1, 0), "nbytes"),
])
def test_bad_transfers_are_named(device, transfer, words):
    with pytest.raises(InvalidSchedule, match=words):
        run_engine([Step(0), Step(1)], [transfer], device)


def test_unknown_op_class_lists_the_device_classes(device):
    with pytest.raises(InvalidSchedule, match="valid: gemm, conv"):
        run_engine([Step(0, op_class="fft")], [], device)


@st.composite
def schedules(draw):
    n = draw(st.integers(1, 12))
    steps = [Step(e, flops=draw(st.floats(0, 2e9)), reads=(f"t{e}",)) for e in range(n)]
    transfers = []
    for _ in range(draw(st.integers(0, 10))):
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a, n - 1))
        size = draw(st.integers(0, 2 * 10**8))
        if draw(st.booleans()):
            transfers.append(Transfer(f"t{b}", "read", size, a, b))
        else:
            transfers.append(Transfer(f"t{a}", "write", size, a, b + 1 if b + 1 > a else None))
    return steps, transfers, draw(st.booleans()), draw(st.integers(1, 3))


@settings(max_examples=60, deadline=None)
@given(schedules())
def test_streams_never_overlap_and_ops_wait_for_their_data(case):
    steps, transfers, shared, iterations = case
    run = run_engine(steps, transfers, make_device(shared=shared), iterations=iterations)
    assert (run.stall >= 0).all() and (run.end >= run.start).all()
    assert (run.start[1:] >= run.end[:-1] - 1e-12).all()
    by_channel: dict[str, list] = {}
    for r in run.transfers:
        assert r["start_s"] >= r["ready_s"] - 1e-12 and r["end_s"] >= r["start_s"]
        if not r["skipped"]:
            by_channel.setdefault(r["channel"], []).append((r["start_s"], r["end_s"]))
    for spans in by_channel.values():
        spans.sort()
        assert all(b[0] >= a[1] - 1e-9 for a, b in itertools.pairwise(spans))
    n = len(steps)
    for r in run.transfers:
        if r["kind"] == "read":  # the step at its deadline starts after it is in
            k = r["iteration"] * n + r["deadline_eo"]
            assert run.start[k] >= r["end_s"] - 1e-9
