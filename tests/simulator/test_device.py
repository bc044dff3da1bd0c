"""Device profiles: every shipped file loads, cites sources and states units; bad files are
named."""

from __future__ import annotations

import copy
import json

import pytest

from trainplan.planner.errors import TrainplanError, UnknownName
from trainplan.simulator.device import (
    OP_CLASSES,
    PROFILE_DIR,
    DeviceProfile,
    device_names,
    device_table,
    load_device,
    profile_from_dict,
)
from trainplan.simulator.errors import InvalidProfile

REQUIRED = {"raspberry-pi-4", "jetson-tx2", "phone-ufs31", "phone-ufs40", "smartwatch",
            "emmc51-tv-board"}


def _doc(name: str = "raspberry-pi-4") -> dict:
    with open(f"{PROFILE_DIR}/{name}.json") as fh:
        return json.load(fh)


def test_the_issue_devices_ship_with_units_and_sources():
    assert REQUIRED <= set(device_names())
    for name in device_names():
        doc, dev = _doc(name), load_device(name)
        assert dev.name == name and doc["sources"]
        for section in ("compute", "storage"):
            for key, value in doc[section].items():
                if isinstance(value, dict) and "value" in value:
                    assert value["unit"] and value.get("source"), (name, key)
        assert set(dev.efficiency) == set(OP_CLASSES)
        assert 0 < dev.available_bytes < dev.ram_bytes


def test_published_figures_are_the_ones_loaded():
    pi, tx2 = load_device("raspberry-pi-4"), load_device("jetson-tx2")
    assert (pi.read_bandwidth, pi.write_bandwidth) == (45.5e6, 24.5e6)
    assert (tx2.read_bandwidth, tx2.write_bandwidth) == (108.5e6, 94.4e6)
    assert load_device("phone-ufs31").read_bandwidth == 2100e6
    assert load_device("phone-ufs40").write_bandwidth == 2800e6
    assert load_device("smartwatch").ram_bytes == 1536 * 2**20
    # SD and eMMC share one channel, UFS reads and writes in parallel
    shared = {n: load_device(n).shared_channel for n in REQUIRED}
    assert shared == {"raspberry-pi-4": True, "jetson-tx2": True, "smartwatch": True,
                      "emmc51-tv-board": True, "phone-ufs31": False, "phone-ufs40": False}


@pytest.mark.parametrize("path", ["storage.write_latency", "ram", "compute.efficiency.conv",
                                  "storage.shared_channel"])
def test_a_missing_field_is_named(path):
    doc = _doc()
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    del node[last]
    with pytest.raises(InvalidProfile, match=f"missing field '{path}'") as info:
        profile_from_dict(doc, "pi.json")
    assert info.value.field == path and isinstance(info.value, TrainplanError)


def test_an_unknown_unit_is_named_with_the_valid_ones():
    doc = _doc()
    doc["storage"]["read_bandwidth"]["unit"] = "MB/sec"
    with pytest.raises(InvalidProfile, match=r"storage.read_bandwidth: unknown unit 'MB/sec'; "
                       r"valid: B/s, kB/s"):
        profile_from_dict(doc, "pi.json")


@pytest.mark.parametrize("path, value, words", [
    (("ram", "value"), "lots", "not a number"),
    (("compute", "efficiency", "gemm"), 0, "must be a number > 0"),
    (("storage", "shared_channel"), "yes", "true or false"),
    (("reserved", "value"), 8192, "reserved must be below ram"),
])
def test_bad_values_are_named(path, value, words):
    doc = copy.deepcopy(_doc())
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(InvalidProfile, match=words):
        profile_from_dict(doc)


def test_quantities_may_be_written_as_strings_in_any_unit():
    doc = _doc()
    doc["ram"] = "4096 MiB"
    doc["storage"]["read_latency"] = "5100 ns"
    dev = profile_from_dict(doc)
    assert dev.ram_bytes == 4 * 2**30 and dev.read_latency_s == pytest.approx(5.1e-6)


def test_unknown_device_lists_valid_names(tmp_path):
    with pytest.raises(UnknownName, match="valid: .*raspberry-pi-4.*smartwatch"):
        load_device("pi5")
    with pytest.raises(UnknownName, match="does not exist"):
        load_device(str(tmp_path / "none.json"))


def test_json_round_trip_and_load_by_path(tmp_path):
    pi = load_device("raspberry-pi-4")
    path = tmp_path / "mine.json"
    path.write_text(pi.to_json())
    again = load_device(str(path))
    assert again == pi
    bare = DeviceProfile.from_json(
        DeviceProfile(**{**pi.__dict__, "document": {}}).to_json())
    for key, value in pi.__dict__.items():
        if key != "document":
            assert getattr(bare, key) == pytest.approx(value), key
    with pytest.raises(InvalidProfile, match="not valid JSON"):
        DeviceProfile.from_json("{", "broken.json")


def test_device_table_has_one_row_per_profile():
    rows = device_table()
    assert [r["device"] for r in rows] == device_names()
    assert {r["channel"] for r in rows} == {"shared", "separate"}
