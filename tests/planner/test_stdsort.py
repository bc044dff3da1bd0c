"""The libstdc++ std::sort replay, checked against the real thing when g++ is installed."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainplan.planner.offsets import _stdsort
from trainplan.planner.offsets._stdsort import std_sort_order

CPP = r"""
#include <algorithm>
#include <cstdio>
#include <vector>
struct R { long start, end; int idx; };
int main() {
  int n;
  while (scanf("%d", &n) == 1) {
    std::vector<R> v(n);
    for (int i = 0; i < n; i++) { scanf("%ld %ld", &v[i].start, &v[i].end); v[i].idx = i; }
    std::sort(v.begin(), v.end(), [](auto const &a, auto const &b) -> int {
      if (a.start == b.start) return a.end < b.end;
      return a.start < b.start;
    });
    for (auto &r : v) printf("%d ", r.idx);
    printf("\n");
  }
}
"""


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), max_size=80))
def test_result_is_a_sorted_permutation(keys):
    order = std_sort_order(keys)
    assert sorted(order) == list(range(len(keys)))
    assert [keys[i] for i in order] == sorted(keys)


@given(st.lists(st.integers(0, 3), max_size=16))
def test_up_to_16_elements_it_is_an_insertion_sort_hence_stable(keys):
    assert std_sort_order(keys) == sorted(range(len(keys)), key=keys.__getitem__)


def _killer_keys(n: int) -> list[int]:
    """McIlroy's adversary against this very introsort, coarsened to have ties: deep enough
    recursion to reach the heapsort fallback."""
    gas = n * 10
    val, solid, cand = [gas] * n, [0], [0]

    class Key:
        def __init__(self, i):
            self.i = i

        def __lt__(self, other):
            x, y = self.i, other.i
            if val[x] == gas and val[y] == gas:
                frozen = x if x == cand[0] else y
                val[frozen], solid[0] = solid[0], solid[0] + 1
            if val[x] == gas:
                cand[0] = x
            elif val[y] == gas:
                cand[0] = y
            return val[x] < val[y]

    keys = [Key(i) for i in range(n)]
    items = list(range(n))
    _stdsort._introsort_loop(items, keys, 0, n, 2 * (n.bit_length() - 1))
    return [(v if v != gas else solid[0]) // 3 for v in val]


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to compile the oracle")
def test_matches_gnu_libstdcxx(tmp_path):
    src, exe = tmp_path / "sort.cpp", tmp_path / "sort"
    src.write_text(CPP)
    subprocess.run(["g++", "-O1", "-std=c++17", str(src), "-o", str(exe)], check=True)
    rng = random.Random(7)
    cases = [
        [(rng.randrange(r), rng.randrange(r)) for _ in range(n)]
        for n in (0, 1, 2, 15, 16, 17, 33, 100, 1000)
        for r in (1, 2, 5, 50)
    ]
    cases.append([(k, 0) for k in _killer_keys(2000)])  # exercises the heapsort fallback
    stdin = "".join(f"{len(c)} " + " ".join(f"{a} {b}" for a, b in c) + "\n" for c in cases)
    out = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True)
    expected = [[int(x) for x in line.split()] for line in out.stdout.splitlines()]
    assert [std_sort_order(c) for c in cases] == expected


def test_heapsort_fallback_is_reached_by_the_killer_input(monkeypatch):
    keys = [(k, 0) for k in _killer_keys(2000)]
    calls = []
    real = _stdsort._heap_sort
    monkeypatch.setattr(_stdsort, "_heap_sort", lambda *a: (calls.append(1), real(*a)))
    order = std_sort_order(keys)
    assert calls and [keys[i] for i in order] == sorted(keys)
