"""`calibrate` measures this host into a loadable profile and leaves no file behind."""

from __future__ import annotations

import os

import pytest

from trainplan.simulator import calibrate as cal
from trainplan.simulator.device import load_device


def _quick(directory, **kw):
    return cal.calibrate(str(directory), storage_bytes=8 * 2**20, gemm_n=128,
                         memory_bytes=8 * 2**20, probe_seconds=0.02, probes=4, progress=False,
                         **kw)


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
    assert "page cache" in notes and "not measured" in notes


def test_the_temporary_file_is_removed_on_error(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk vanished")
    monkeypatch.setattr(cal, "_storage_read", broken)
    with pytest.raises(OSError, match="disk vanished"):
        _quick(tmp_path)
    assert os.listdir(tmp_path) == []


def test_filesystem_of_the_root_is_known():
    assert cal.filesystem_of("/") != "" or not os.path.exists("/proc/mounts")
