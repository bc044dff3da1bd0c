"""`calibrate` measures this host into a loadable profile and leaves no file behind."""

from __future__ import annotations

import os
import threading
import time

import pytest

from trainplan.simulator import calibrate as cal
from trainplan.simulator import calibrate_storage as cal_storage
from trainplan.simulator.device import load_device


def _quick(directory, **kw):
    return cal.calibrate(str(directory), storage_bytes=2**20, gemm_n=128,
                         memory_bytes=8 * 2**20, probe_seconds=0.02, probes=2,
                         interference_pairs=1, progress=False, **kw)


def test_calibrated_profile_loads_like_a_shipped_one(tmp_path):
    profile = _quick(tmp_path, name="ci-host")
    assert os.listdir(tmp_path) == []
    path = tmp_path / "host.json"
    path.write_text(profile.to_json())
    again = load_device(str(path))
    assert again == profile and again.name == "ci-host"
    for value in (again.gemm_flops, again.memory_bandwidth, again.read_bandwidth,
                  again.write_bandwidth):
        assert value > 0
    assert again.read_latency_s >= 0 and again.write_latency_s >= 0
    assert 0 < again.efficiency["elementwise"] <= 1
    notes = " ".join(again.document["notes"])
    assert "swaps through" in notes and "not measured" in notes
    assert again.transfer_cpu_bandwidth > 0 and again.transfer_cpu_latency_s >= 0
    assert 0 < again.transfer_pickup_s < 0.1  # the swap thread took its requests up


def test_the_temporary_file_is_removed_on_error(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk vanished")
    monkeypatch.setattr(cal_storage, "swap_request", broken)
    with pytest.raises(OSError, match="disk vanished"):
        _quick(tmp_path)
    assert os.listdir(tmp_path) == []


def test_filesystem_of_the_root_is_known():
    assert cal.filesystem_of("/") != "" or not os.path.exists("/proc/mounts")


def test_storage_is_timed_with_the_swap_files_own_requests(tmp_path, monkeypatch):
    """The calibration's requests and the runtime's swap file (through to storage) make the
    same system calls with the same flags, in the same order, over the same page spans."""
    import numpy as np

    from trainplan.runtime.swapio import SwapFile

    calls: list[tuple] = []

    def spy(name):
        real = getattr(os, name)

        def call(fd, *args):
            out = real(fd, *args)
            calls.append((name, *(a for a in args if isinstance(a, int))))
            return out
        return call
    with SwapFile(0, str(tmp_path), through=True) as f:
        for name in ("pwrite", "preadv", "fdatasync", "posix_fadvise"):
            monkeypatch.setattr(os, name, spy(name))
        data = np.arange(5000, dtype=np.uint8)
        f.write(data, 8192, "w").wait()
        f.read(np.empty_like(data), 8192, "r").wait()
        runtime, calls[:] = list(calls), []
        cal_storage.swap_request(f.fd, "write", memoryview(data), 8192)
        cal_storage.swap_request(f.fd, "read", memoryview(np.empty_like(data)), 8192)
    assert calls == runtime
    assert [c[0] for c in calls] == ["pwrite", "fdatasync", "posix_fadvise", "preadv",
                                     "posix_fadvise"]
    assert ("posix_fadvise", 8192, 8192, os.POSIX_FADV_DONTNEED) in calls  # whole pages


def test_swap_storage_fits_a_line_through_its_requests(tmp_path):
    r = cal_storage.measure_swap_storage(str(tmp_path), [4096, 65536, 2**20], rounds=2)
    assert os.listdir(tmp_path) == []
    assert {"write 4096", "read 65536", "read 1048576"} <= set(r["requests"])
    r |= cal_storage.measure_transfer_interference(str(tmp_path), pairs=1, reps=5)
    assert os.listdir(tmp_path) == []
    for key in (*cal_storage.STORAGE_KEYS, *cal_storage.INTERFERENCE_KEYS):
        assert r[key] >= 0 and (key.endswith("latency") or r[key] > 0)
    both = cal_storage.mean_storage(r, {**r, "read_latency": 3 * r["read_latency"],
                                        "read_bandwidth": r["read_bandwidth"] / 3})
    assert both["read_latency"] == pytest.approx(2 * r["read_latency"])
    assert both["read_bandwidth"] == pytest.approx(r["read_bandwidth"] / 2)


def test_a_flat_line_keeps_a_finite_bandwidth():
    latency, bandwidth = cal_storage.fit_line([100, 10_000, 1_000_000], [3e-3, 3e-3, 3e-3])
    assert latency == pytest.approx(3e-3, rel=0.02) and 0 < bandwidth < float("inf")
    assert 1_000_000 / bandwidth == pytest.approx(3e-5, rel=0.01)  # 1% of the largest


def test_with_storage_replaces_only_the_storage_figures(tmp_path):
    from trainplan.simulator.device import load_device

    pi = load_device("raspberry-pi-4")
    timed = {"read_latency": 1e-4, "read_bandwidth": 1e9, "write_latency": 2e-3,
             "write_bandwidth": 5e8, "cpu_latency": 5e-5, "cpu_bandwidth": 3e9,
             "pickup": 2e-5}
    host = cal.with_storage(pi, timed)
    assert host.transfer_pickup_s == pytest.approx(2e-5) and pi.transfer_pickup_s == 0.0
    both = cal_storage.mean_storage(timed, {**timed, "pickup": 4e-5, "read_bandwidth": 3e9})
    assert both["pickup"] == pytest.approx(3e-5)  # seconds averaged, bandwidths harmonically
    assert both["read_bandwidth"] == pytest.approx(1.5e9)
    assert (host.read_latency_s, host.write_bandwidth) == pytest.approx((1e-4, 5e8))
    assert host.transfer_cpu_seconds(3e9) == pytest.approx(1 + 5e-5)
    assert host.gemm_flops == pi.gemm_flops and host.efficiency == pi.efficiency
    assert pi.transfer_cpu_seconds(1e9) == 0.0


def test_swap_storage_is_timed_over_a_window(tmp_path):
    began = time.perf_counter()
    r = cal_storage.measure_swap_storage(str(tmp_path), [4096, 65536], rounds=1,
                                         min_seconds=0.2, beside=None)
    assert time.perf_counter() - began >= 0.2 and r["rounds"] > 1
    assert cal_storage.measure_swap_storage(str(tmp_path), [4096], rounds=2,
                                            beside=None)["rounds"] == 2
    assert os.listdir(tmp_path) == []


def test_swap_storage_is_timed_beside_a_computing_thread(tmp_path):
    seen = []

    def beside(stop):
        while not stop.is_set():
            seen.append(threading.get_ident())
            time.sleep(1e-4)

    r = cal_storage.measure_swap_storage(str(tmp_path), [4096, 65536], rounds=2, beside=beside)
    assert seen and threading.get_ident() not in seen  # on a thread of its own
    assert "computing beside (beside)" in r["method"] and "mean per size" in r["method"]
    count = len(seen)
    time.sleep(0.01)
    assert len(seen) == count  # stopped with the measurement
    alone = cal_storage.measure_swap_storage(str(tmp_path), [4096], rounds=1, beside=None)
    assert "beside" not in alone["method"] and os.listdir(tmp_path) == []


def test_the_computing_probe_stops_when_asked():
    stop = threading.Event()
    thread = threading.Thread(target=cal_storage.computing_probe, args=(stop,))
    thread.start()
    time.sleep(0.05)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
