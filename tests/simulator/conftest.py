"""Fixtures for simulator tests: devices with round numbers, so expected times are exact."""

from __future__ import annotations

import pytest

from trainplan.simulator.device import DeviceProfile


def make_device(*, shared: bool = True, gflops: float = 1.0, mem_gbs: float = 1.0,
                read_mbs: float = 100.0, write_mbs: float = 50.0, read_lat: float = 0.0,
                write_lat: float = 0.0, ram: int = 2**30, reserved: int = 0) -> DeviceProfile:
    """A device in round numbers: 1 GFLOP/s, 1 GB/s memory, 100 MB/s read, 50 MB/s write."""
    return DeviceProfile(
        name="test-device", ram_bytes=ram, reserved_bytes=reserved, gemm_flops=gflops * 1e9,
        efficiency={"gemm": 1.0, "conv": 0.5, "elementwise": 0.25, "optimizer": 0.25},
        memory_bandwidth=mem_gbs * 1e9, read_bandwidth=read_mbs * 1e6,
        write_bandwidth=write_mbs * 1e6, read_latency_s=read_lat, write_latency_s=write_lat,
        shared_channel=shared)


@pytest.fixture
def device() -> DeviceProfile:
    return make_device()
