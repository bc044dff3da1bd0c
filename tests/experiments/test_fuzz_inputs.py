"""The audit made repeatable: hypothesis writes INI model files, CSV problems, device profiles
and option values — sizes up to 2^62, alignments up to 2^20, NaN, infinities, negative
numbers, text where numbers belong, bytes that are not UTF-8 — and the command line answers
each with a result or one named error: exit status 0 or 2, never an exception escaping
``main`` (a traceback), never a message thousands of characters long.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainplan.experiments.cli import MAX_MESSAGE, main
from trainplan.planner.ini import MODEL_KEYS
from trainplan.planner.ini_layers import LAYER_PROPERTY_KEYS, LAYER_TYPES

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
PROFILE = os.path.join(os.path.dirname(__import__("trainplan.simulator.device",
                                                  fromlist=["x"]).__file__), "profiles",
                       "raspberry-pi-4.json")


def answered(argv: list[str], data: bytes | None = None, name: str = "input") -> int:
    """Run the CLI on ``argv`` (``{file}`` replaced by a file holding ``data``); assert it
    answered: exit 0 or 2, no traceback, a short message."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, name)
        if data is not None:
            with open(path, "wb") as fh:
                fh.write(data)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main([a.replace("{file}", path).replace("{dir}", d) for a in argv])
            except SystemExit as exc:  # argparse's refusal of a malformed value
                code = exc.code
    text = err.getvalue()
    assert code in (0, 2), text
    assert "Traceback" not in text
    assert len(text) < MAX_MESSAGE + 2000, text[:300]
    return code


# --- values a hostile user types ------------------------------------------------------------

NUMBER_TEXTS = st.one_of(
    st.integers(-2**64, 2**64).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-1", "nan", "inf", "-inf", "1e400", "", " ", "0x10", "1_000",
                     str(2**62), str(2**62 - 1), str(2**63), "1.5", "-0"]),
    st.text(max_size=12),
)
VALUE_TEXTS = st.one_of(NUMBER_TEXTS, st.sampled_from([
    "relu", "softmax", "same", "valid", "1,1", "3,3", "1:28:28", "1:1:1:1", "2,2,2,2", "true",
    "false", "max", "global_average", "cross", "mse", "adam", "sgd"]))


@st.composite
def ini_texts(draw) -> bytes:
    """An NNTrainer INI file: known and unknown sections, keys and values, noise lines."""
    lines = ["[Model]"]
    for key in draw(st.lists(st.sampled_from(sorted(MODEL_KEYS)), max_size=4)):
        lines.append(f"{key} = {draw(VALUE_TEXTS)}")
    for i in range(draw(st.integers(0, 5))):
        name = draw(st.one_of(st.just(f"layer{i}"), st.text(max_size=8)))
        lines.append(f"[{name}]")
        lines.append(f"Type = {draw(st.sampled_from(sorted(LAYER_TYPES) + ['bogus']))}")
        if i == 0 or draw(st.booleans()):
            lines.append(f"input_shape = {draw(st.sampled_from(['1:28:28', '10', '3:8:8']))}")
        keys = sorted(LAYER_PROPERTY_KEYS) + ["input_layers", "activation", "trainable", "x"]
        for key in draw(st.lists(st.sampled_from(keys), max_size=4)):
            lines.append(f"{key} = {draw(VALUE_TEXTS)}")
    lines += draw(st.lists(st.text(max_size=20), max_size=2))  # noise
    text = "\n".join(lines)
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + text.encode("utf-8", "surrogatepass")


@FUZZ
@given(st.one_of(ini_texts(), st.binary(max_size=200)))
def test_any_ini_file_is_planned_or_refused_by_name(data):
    answered(["plan", "--model", "{file}"], data, "model.ini")


@st.composite
def csv_texts(draw) -> bytes:
    """MiniMalloc CSV rows with sizes up to past 2^62, alignments up to 2^20, any times."""
    header = draw(st.sampled_from(["id,lower,upper,size", "id,lower,upper,size,alignment",
                                   "buffer,start,end,size", "id,size", ""]))
    rows = [header]
    big = st.one_of(st.integers(1, 2**12), st.integers(-2**63, 2**63),
                    st.sampled_from([2**62, 2**62 - 1, 2**61, 10**30]))
    for i in range(draw(st.integers(0, 12))):
        start = draw(st.one_of(st.integers(0, 20), big))
        cells = [f"b{i}" if draw(st.integers(0, 9)) else "dup", str(start),
                 str(start + draw(st.one_of(st.integers(-1, 20), big))),
                 str(draw(big))]
        if "alignment" in header:
            cells.append(str(draw(st.one_of(st.integers(-1, 2**20),
                                            st.sampled_from([2**k for k in range(21)])))))
        if draw(st.integers(0, 19)) == 0:
            cells[draw(st.integers(0, len(cells) - 1))] = draw(st.text(max_size=6))
        rows.append(",".join(cells))
    return "\n".join(rows).encode("utf-8", "surrogatepass")


@FUZZ
@given(st.one_of(csv_texts(), st.binary(max_size=100)),
       st.sampled_from(["greedy_size", "best_fit", "nntrainer_v1", "basic"]))
def test_any_csv_problem_is_planned_or_refused_by_name(data, planner):
    answered(["alloc", "{file}", "--planner", planner], data, "problem.csv")


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


@st.composite
def device_documents(draw) -> bytes:
    """The Raspberry Pi 4 profile with a few fields replaced by any JSON value or deleted."""
    with open(PROFILE) as fh:
        doc = json.load(fh)
    paths = list(_paths(doc))
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        node = doc
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or path[-1] not in node:
            continue
        if draw(st.integers(0, 4)) == 0:
            del node[path[-1]]
        else:
            node[path[-1]] = draw(JSON_VALUES)
    return json.dumps(doc).encode()


@FUZZ
@given(st.one_of(device_documents(), st.binary(max_size=60)))
def test_any_device_profile_is_simulated_or_refused_by_name(data):
    answered(["simulate", "--model", "mlp", "--batch", "2", "--device", "{file}"], data,
             "device.json")


SIZES = st.one_of(st.integers(1, 2**62 + 8).map(str), st.sampled_from(
    ["64MiB", "1.5GB", "1e400", "-1", "0", "nan", "inf", "4EiB", "4 TiB", "1_000"]),
    st.text(max_size=8))
ALIGNMENTS = st.one_of(st.sampled_from([str(2**k) for k in range(21)]),
                       st.integers(-2, 2**21).map(str), NUMBER_TEXTS)


@FUZZ
@given(st.lists(st.sampled_from([
    ("--budget", SIZES), ("--alignment", ALIGNMENTS), ("--batch", NUMBER_TEXTS),
    ("--time-limit", NUMBER_TEXTS), ("--lookahead", NUMBER_TEXTS), ("--seed", NUMBER_TEXTS),
    ("--input-shape", VALUE_TEXTS), ("--classes", NUMBER_TEXTS)]), min_size=1, max_size=3,
    unique_by=lambda o: o[0]), st.data())
def test_any_planning_option_value_is_planned_or_refused_by_name(options, data):
    argv = ["plan", "--model", "mlp", "--planner", "greedy_size"]
    for option, values in options:
        argv.append(f"{option}={data.draw(values)}")
    answered(argv)


def _not_a_count(text: str) -> bool:
    try:
        return int(text) < 1
    except ValueError:
        return True


BAD_COUNTS = st.one_of(st.integers(-2**63, 0).map(str), st.sampled_from(
    ["nan", "inf", "-inf", "1e400", "", "x", "0.5"]), st.text(max_size=6).filter(_not_a_count))


@FUZZ
@given(st.sampled_from(["--iterations", "--epochs", "--samples", "--learning-rate", "--seed",
                        "--batch"]), BAD_COUNTS)
def test_a_bad_training_count_or_rate_is_refused_by_name(option, value):
    """Only values that cannot be meant (valid ones could train for hours)."""
    if option == "--seed" and value.strip() == "0":
        return  # seed 0 is a seed
    if option == "--learning-rate" and value.strip() not in ("", "x"):
        try:
            if 0 < float(value) < float("inf"):
                return  # a positive rate is a valid one
        except ValueError:
            pass
    assert answered(["train", "--model", "mlp", "--batch", "2", "--no-progress",
                     f"{option}={value}"] if option != "--batch" else
                    ["train", "--model", "mlp", "--no-progress", f"--batch={value}"]) == 2


@pytest.mark.parametrize("size", [2**62 - 2**20, 2**61, 2**40])
@pytest.mark.parametrize("alignment", [1, 2**10, 2**20])
def test_sizes_up_to_2_62_and_alignments_up_to_2_20_are_planned(size, alignment):
    """The largest sizes the CSV reader accepts plan without overflow."""
    csv = f"id,lower,upper,size,alignment\na,0,2,{size // 2},{alignment}\n" \
          f"b,1,3,{size // 4},{alignment}\nc,2,4,{size // 4 - 2**21},{alignment}\n"
    for planner in ("greedy_size", "best_fit", "nntrainer_v1", "basic"):
        assert answered(["alloc", "{file}", "--planner", planner], csv.encode(), "p.csv") == 0


@pytest.fixture(scope="module")
def saved_plan(tmp_path_factory) -> dict:
    """A small swapping plan as its JSON document."""
    path = str(tmp_path_factory.mktemp("plan") / "plan.json")
    assert main(["plan", "--model", "mlp", "--batch", "2", "--budget", "3.4MB", "--out",
                 path, "--json"]) == 0
    with open(path) as fh:
        return json.load(fh)


def _leaves(node, prefix=()):
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        yield prefix
        return
    for key, value in items:
        yield from _leaves(value, (*prefix, key))


@FUZZ
@given(st.data())
def test_any_tampered_plan_file_is_run_or_refused_by_name(saved_plan, data):
    doc = json.loads(json.dumps(saved_plan))
    leaves = [p for p in _leaves(doc) if p and p[0] not in ("graph",)]
    for path in data.draw(st.lists(st.sampled_from(leaves), min_size=1, max_size=3)):
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = data.draw(st.one_of(st.integers(-2**64, 2**64), JSON_VALUES))
    answered(["simulate", "--plan", "{file}", "--device", "raspberry-pi-4"],
             json.dumps(doc).encode(), "plan.json")
