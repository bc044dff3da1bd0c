"""The numpy runtime side by side with PyTorch (CPU) and beside NNTrainer's own MNIST figures.

    python -m trainplan.experiments.bench_runtime [--models lenet5,resnet18_cifar,transformer]
                                        [--threads 2,1] [--load 0,1]
                                        [--iterations N] [--out results/bench_runtime.json]

Every measurement runs in a fresh worker process (``--worker ours|torch``), one at a time, so
its peak RSS is its own. A worker imports its framework (numpy and trainplan; or torch, with
``torch.set_num_threads(--threads)``; ours first has its plan made in a process of its own, as
a plan is made once, offline), records its RSS baseline, and only then builds the model
(graph, the saved plan and arena; or module and optimizer) and a synthetic batch pair of the
right shapes (random inputs, class labels, token ids for the transformer). It runs ``--warmup`` iterations,
then at least ``--iterations`` timed ones (more until ``--min-seconds`` have passed) and reports
the median seconds per iteration and its peak RSS above the baseline — ours adding what its lane
worker process (runtime/kernels/worker.py) holds of its own. Ours trains in the arena
of each ``--planners`` offset planner (nntrainer_v1, the default, and greedy_size). PyTorch
gets ``torch.set_num_threads(--threads)``; ours its thread policy (runtime/kernels/threads.py):
with as many threads as the machine has cores, the policy's own choice (every core, fewer while
other processes keep some busy), with fewer, pinned to that count; the BLAS and OpenMP pools of
both are that size. ``--load K`` runs every measurement again with K CPU-bound background
processes, each pinned to one of the last K CPUs, started before the worker and stopped after
it, for both frameworks alike. The parent writes the JSON records atomically and prints ours /
PyTorch ratios against the targets (memory ≤ 0.5, time ≤ 1.2), each framework's slowdown
under load (loaded / quiet seconds) and ours / PyTorch's (target ≤ 1.2), and NNTrainer's MNIST
model (its INI, batch 32, adam) beside NNTrainer 0.6's measured figures.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

MODELS = ("lenet5", "resnet18_cifar", "transformer")
MNIST_INI = "mnist.ini"  # NNTrainer's MNIST example, shipped with the package
TARGETS = {"memory_ratio": 0.5, "time_ratio": 1.2, "slowdown_ratio": 1.2}
# NNTrainer 0.6 on its MNIST INI (batch 32, adam), measured on this kind of machine
NNTRAINER_MNIST = {"seconds_per_iteration": 0.016, "peak_rss_bytes": 13_400_000,
                   "peak_rss_above_baseline": 2_400_000}


# --- worker: one measurement in this process ------------------------------------------------

def _status_kib(field: str) -> int | None:
    """A field of /proc/self/status (``VmHWM``, ``RssAnon``...) in KiB, or None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _rss_kinds() -> dict[str, int]:
    """Resident bytes now by kind: anonymous (heap, arrays) and file-backed (library code)."""
    kinds = {"anon": _status_kib("RssAnon"), "file": _status_kib("RssFile")}
    return {k: v * 1024 for k, v in kinds.items() if v is not None}


class PeakMeter:
    """Peak RSS from now on, above the RSS of now.

    Linux lets a process reset its high-water mark (``5`` into /proc/self/clear_refs), so VmHWM
    afterwards is the exact peak since the baseline; ``ru_maxrss`` (the process's peak since it
    started) is reported beside it and used where the reset is not available.
    """

    def __init__(self):
        import psutil

        from trainplan.runtime.layout import release_free_heap

        release_free_heap()  # freed heap in the baseline would be "released" by training
        self.baseline = psutil.Process().memory_info().rss
        self.kinds = _rss_kinds()
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.reset = _status_kib("VmHWM") is not None
        except OSError:
            self.reset = False

    def read(self) -> dict:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
        hwm = _status_kib("VmHWM") if self.reset else None
        peak = hwm * 1024 if hwm is not None else maxrss
        growth = {f"{k}_growth_bytes": v - self.kinds.get(k, 0) for k, v in _rss_kinds().items()}
        return {"rss_baseline_bytes": self.baseline, "peak_rss_bytes": peak,
                "peak_rss_above_baseline": peak - self.baseline,
                "maxrss_above_baseline": maxrss - self.baseline, "hwm_reset": self.reset,
                **growth}


def timed(step: Callable[[int], None], warmup: int, iterations: int,
          min_seconds: float) -> list[float]:
    """Seconds of each timed call of ``step(i)``: ``warmup`` untimed, then at least
    ``iterations`` timed, more until ``min_seconds`` have passed."""
    for i in range(warmup):
        step(i)
    times: list[float] = []
    while len(times) < iterations or sum(times) < min_seconds:
        began = time.perf_counter()
        step(warmup + len(times))
        times.append(time.perf_counter() - began)
    return times


def _blas_threads() -> list[dict]:
    """numpy's BLAS/OpenMP pools as threadpoolctl sees them (empty when it is missing)."""
    if importlib.util.find_spec("threadpoolctl") is None:
        return []
    from threadpoolctl import threadpool_info

    return [{"api": p["internal_api"], "threads": p["num_threads"]} for p in threadpool_info()]


def _timing(times: list[float]) -> dict:
    return {"seconds_per_iteration": statistics.median(times), "iterations": len(times),
            "min_seconds_per_iteration": min(times)}


def ours_threads(threads: int) -> int | None:
    """Our pinned thread count for a run at ``threads``: None (the policy follows the load)
    when that is every core."""
    return None if threads >= (os.cpu_count() or 1) else threads


def plan_offline(model: str, batch: int, planner: str, seed: int, swap: str | None,
                 remat: str | None) -> tuple[str, dict]:
    """The plan (JSON) of one ours run and the figures it adds to the record; run in a process
    of its own, as a plan is made once, offline (`trainplan plan --out`): what the solver used
    is not training's memory."""
    from trainplan.planner.build import build_training_graph
    from trainplan.planner.plan_training import plan_training
    from trainplan.planner.zoo import get_model

    graph = build_training_graph(get_model(model, batch=batch))
    plan = plan_training(graph, offsets=None if remat else planner, seed=seed)
    extra: dict = {}
    if swap:
        fraction, through = parse_swap(swap)
        budget = int(fraction * plan.bounds.lower_bound_bytes)
        plan = plan_training(graph, offsets=planner, budget=budget, swap="belady", seed=seed)
        extra = {"budget_bytes": budget, "swap_through": through}
    if remat:
        name, fraction = parse_remat(remat)
        kept = plan.bounds.lower_bound_bytes
        aim = None if fraction is None else int(fraction * kept)
        plan = plan_training(graph, remat=name, remat_budget=aim, seed=seed)
        extra = {"remat_budget_bytes": aim, "recomputed_ops": len(plan.recomputes),
                 "lower_bound_without_remat_bytes": kept}
    return plan.to_json(), extra


def measure_ours(model: str, *, batch: int, planner: str, warmup: int, iterations: int,
                 min_seconds: float, seed: int = 0, swap: str | None = None,
                 remat: str | None = None, threads: int | None = None) -> dict:
    """Train ``model`` with the numpy runtime in the arena ``planner`` lays out; measure it.
    ``swap`` ("FRACTION" or "FRACTION:through"): swap with belady under that fraction of the
    graph's lower bound, the swap file through the page cache or through to storage.
    ``remat`` ("NAME" or "NAME:FRACTION"): recompute with that remat planner (aiming at that
    fraction of the lower bound), nothing on storage. ``threads``: pin the thread policy (None:
    it follows the load). The plan is made in another process (``plan_offline``); the
    baseline is taken before the graph is built, so the graph and the arena count."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import numpy as np

    from trainplan.planner.build import build_training_graph
    from trainplan.planner.training_plan import TrainingPlan
    from trainplan.planner.zoo import get_model
    from trainplan.runtime.data import synthetic
    from trainplan.runtime.session import Session, SessionOptions

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        text, swapping = pool.submit(plan_offline, model, batch, planner, seed, swap,
                                     remat).result()
    gc.collect()
    meter = PeakMeter()
    graph = build_training_graph(get_model(model, batch=batch))
    plan = TrainingPlan.from_json(text)
    del text
    options = SessionOptions(seed=seed, threads=threads,
                             swap_through=bool(swapping.get("swap_through")))
    batches = list(synthetic(graph, 2 * batch, seed).batches(batch, None))
    losses: list[float] = []
    with Session(graph, plan, options) as session:
        times = timed(lambda i: losses.append(session.step(batches[i % 2]).loss),
                      warmup, iterations, min_seconds)
        memory = meter.read()
        memory["lane_worker_bytes"] = session.executor.lane_worker_bytes()
        arena, record = session.arena_bytes, plan.record()
        policy = session.executor.thread_policy()
        if session.swapfile is not None:
            runs = warmup + len(times)
            swapping.update(bytes_written_per_iteration=session.swapfile.bytes_written // runs,
                            bytes_read_per_iteration=session.swapfile.bytes_read // runs)
    return {"framework": "ours", "model": graph.graph["model"], "planner": planner,
            "batch": batch, "arena_bytes": arena,
            "lower_bound_bytes": record["lower_bound_bytes"], **memory, **_timing(times),
            "final_loss": losses[-1], "finite": bool(np.isfinite(losses).all()),
            "numpy": np.__version__, "thread_pools": _blas_threads(), "thread_policy": policy,
            **swapping}


def _torch_batches(spec, batch: int, seed: int) -> list[tuple]:
    """Two (input, class id) batches: random inputs, or token ids below the vocabulary."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(2):
        shape = (batch, *spec.input_shape)
        x = (rng.integers(0, spec.vocab, size=shape) if spec.vocab
             else rng.standard_normal(shape, dtype=np.float32))
        y = rng.integers(0, spec.classes, size=batch)
        out.append((torch.from_numpy(x), torch.from_numpy(y)))
    return out


def measure_torch(model: str, *, batch: int, threads: int, warmup: int, iterations: int,
                  min_seconds: float, seed: int = 0) -> dict:
    """Train the PyTorch twin of ``model`` (trainplan.experiments.torch_models), adam lr 1e-3."""
    import torch

    from trainplan.experiments.torch_models import TORCH_MODELS, adam, parameter_count

    torch.set_num_threads(threads)
    meter = PeakMeter()
    torch.manual_seed(seed)
    spec = TORCH_MODELS[model]()
    module, loss_fn = spec.module.train(), torch.nn.CrossEntropyLoss()
    optimizer = adam(module)
    batches = _torch_batches(spec, batch, seed)
    losses: list[float] = []

    def step(i: int) -> None:
        x, y = batches[i % 2]
        optimizer.zero_grad()
        loss = loss_fn(module(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    times = timed(step, warmup, iterations, min_seconds)
    return {"framework": "torch", "model": model, "planner": None, "batch": batch,
            "parameters": parameter_count(module), **meter.read(), **_timing(times),
            "final_loss": losses[-1], "finite": all(map(math.isfinite, losses)),
            "torch": torch.__version__, "thread_pools": [
                {"api": "torch intra-op", "threads": torch.get_num_threads()},
                {"api": "torch inter-op", "threads": torch.get_num_interop_threads()}]}


def worker(args: argparse.Namespace) -> dict:
    """The ``--worker`` entry point: one measurement, printed as one JSON line."""
    common = {"batch": args.batch, "warmup": args.warmup, "iterations": args.iterations,
              "min_seconds": args.min_seconds}
    if args.worker == "ours":
        record = measure_ours(args.models, planner=args.planners, swap=args.swap,
                              remat=args.remat,
                              threads=ours_threads(int(args.threads)), **common)
    else:
        record = measure_torch(args.models, threads=int(args.threads), **common)
    print(json.dumps(record))
    return record


# --- parent: every worker in turn, then the tables -----------------------------------------

@dataclass(frozen=True)
class Job:
    """One measurement for one worker process."""

    framework: str  # "ours" or "torch"
    model: str  # a zoo name or an INI path
    planner: str | None = None
    threads: int = 1
    swap: str | None = None  # "FRACTION[:through]" of the lower bound, swapping with belady
    remat: str | None = None  # "NAME[:FRACTION]": recomputing, nothing on storage
    load: int = 0  # CPU-bound background processes while it runs


SWAP_PLANNER = "greedy_size"
REMAT_PLANNER = "best"  # plan_training's offsets for pieces


def jobs(models: list[str], planners: list[str], threads: list[int], *, torch: bool,
         mnist: bool, swaps: list[str] = (), remats: list[str] = (),
         loads: list[int] = (0,)) -> list[Job]:
    """Per thread count and model, ours under every planner (and swapping under every
    ``swaps`` budget, and recomputing under every ``remats`` planner) then PyTorch, at every ``loads`` level in turn, side by side in time;
    NNTrainer's MNIST INI (ours only, quiet) after the models."""
    out = []
    for n in threads:
        for model in models:
            for k in loads:
                out += [Job("ours", model, p, n, load=k) for p in planners]
                out += [Job("ours", model, SWAP_PLANNER, n, s, load=k) for s in swaps]
                out += [Job("ours", model, REMAT_PLANNER, n, remat=r, load=k) for r in remats]
                out += [Job("torch", model, None, n, load=k)] if torch else []
        out += [Job("ours", MNIST_INI, p, n) for p in planners] if mnist else []
    return out


BUSY = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"


def start_load(count: int) -> list[subprocess.Popen]:
    """``count`` CPU-bound processes, each pinned to one of the last ``count`` CPUs."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    procs = [subprocess.Popen([sys.executable, "-c", BUSY, str(cpu)])
             for cpu in cpus[-count:]] if count else []
    if procs:
        time.sleep(0.5)  # running before the worker starts
    return procs


def stop_load(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
        p.wait()


def _busy_seconds() -> float:
    """CPU seconds all processes have kept the machine's cores busy (steal included)."""
    import psutil

    t = psutil.cpu_times()
    return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq",
                                            "steal"))


def _own_seconds() -> float:
    """CPU seconds of this process and its finished children (the workers)."""
    mine, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return mine.ru_utime + mine.ru_stime + kids.ru_utime + kids.ru_stime


class Contention:
    """How many cores other processes kept busy from now until ``cores()`` is read."""

    def __init__(self):
        self.t0, self.busy0, self.own0 = time.monotonic(), _busy_seconds(), _own_seconds()

    def cores(self) -> float:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        others = (_busy_seconds() - self.busy0) - (_own_seconds() - self.own0)
        return max(0.0, others / elapsed)


def wait_quiet(max_seconds: float, threshold: float = 0.25, window: float = 2.0) -> float:
    """Wait, up to ``max_seconds``, until other processes keep fewer than ``threshold`` cores
    busy over ``window`` seconds (a shared machine's load slows both frameworks, unevenly);
    returns the seconds waited."""
    began = time.monotonic()
    while time.monotonic() - began < max_seconds:
        probe = Contention()
        time.sleep(window)
        if probe.cores() < threshold:
            break
    return round(time.monotonic() - began, 1)


def run_job(job: Job, args: argparse.Namespace) -> dict:
    """``job`` in a fresh interpreter; its record (with the cores other processes used
    meanwhile), or one that carries the error."""
    cmd = [sys.executable, "-m", "trainplan.experiments.bench_runtime", "--worker", job.framework,
           "--models", job.model, "--batch", str(args.batch), "--threads", str(job.threads),
           "--warmup", str(args.warmup), "--iterations", str(args.iterations),
           "--min-seconds", str(args.min_seconds), "--planners", job.planner or "-"]
    cmd += ["--swap", job.swap] if job.swap else []
    cmd += ["--remat", job.remat] if job.remat else []
    # the same pool size for numpy's BLAS and torch's OpenMP
    env = dict(os.environ, **{v: str(job.threads) for v in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    waited = wait_quiet(args.wait_quiet)
    background = start_load(job.load)
    load, contention, began = os.getloadavg()[0], Contention(), time.perf_counter()
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True,
                              env=env, timeout=args.timeout)
        record = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 \
            else {"error": done.stderr.strip().splitlines()[-1:]}
    except subprocess.TimeoutExpired:
        record = {"error": f"timed out after {args.timeout} s"}
    finally:
        stop_load(background)
    return {**asdict(job), **record, "model": _label(job.model), "load_average": load,
            "other_cores": round(contention.cores(), 2), "waited_seconds": waited,
            "wall_seconds": round(time.perf_counter() - began, 1)}


def best_rounds(records: list[dict]) -> list[dict]:
    """Per (framework, model, planner, threads, swap, load) the round with the fastest
    median: other processes only ever slow a run down."""
    best: dict[tuple, dict] = {}
    for r in records:
        key = (r["framework"], r["model"], r["planner"], r["threads"], r.get("swap"),
               r.get("remat"), r.get("load", 0))
        if "error" not in r and (key not in best or r["seconds_per_iteration"]
                                 < best[key]["seconds_per_iteration"]):
            best[key] = r
    return list(best.values())


def _label(model: str) -> str:
    return "mnist" if model == MNIST_INI else model


def parse_swap(spec: str) -> tuple[float, bool]:
    """A ``--swap`` budget, "FRACTION" or "FRACTION:through", as (fraction, through)."""
    fraction, _, mode = spec.partition(":")
    try:
        value = float(fraction)
    except ValueError:
        value = 0.0
    if not value > 0 or mode not in ("", "through"):
        raise ValueError(f"--swap {spec!r}: give FRACTION[:through], a fraction of the lower "
                         "bound above 0, e.g. 0.6 or 0.6:through")
    return value, mode == "through"


def parse_remat(spec: str) -> tuple[str, float | None]:
    """A ``--remat`` run, "NAME" or "NAME:FRACTION", as (remat planner, fraction of the lower
    bound its recomputation aims at, or None)."""
    from trainplan.planner.remat import REMAT_PLANNERS

    name, _, fraction = spec.partition(":")
    try:
        value = float(fraction) if fraction else None
    except ValueError:
        value = 0.0
    if name not in REMAT_PLANNERS or name == "none" or (value is not None and not value > 0):
        raise ValueError(f"--remat {spec!r}: give NAME[:FRACTION], NAME one of "
                         f"{', '.join(n for n in REMAT_PLANNERS if n != 'none')}, FRACTION of "
                         "the lower bound above 0, e.g. sqrt or greedy:0.5")
    return name, value


def _run_label(r: dict) -> str:
    """How ours ran: the offset planner, and the swap budget and file mode when swapping, or
    the recomputation."""
    if r.get("remat"):
        name, fraction = parse_remat(r["remat"])
        aim = "" if fraction is None else f", aiming at {fraction:g}x the lower bound"
        return f"{r['planner']} + remat {name}{aim}, no storage"
    if not r.get("swap"):
        return r["planner"]
    fraction, through = parse_swap(r["swap"])
    return (f"{r['planner']} + belady, budget {fraction:g}x lower bound, "
            f"{'through to disk' if through else 'page cache'}")


def ratios(records: list[dict]) -> list[dict]:
    """One row per (model, threads, our planner) of the quiet runs beside PyTorch's run: ours /
    PyTorch."""
    torch_runs = {(r["model"], r["threads"]): r for r in records
                  if r["framework"] == "torch" and "error" not in r and not r.get("load")}
    rows = []
    for r in records:
        t = torch_runs.get((r["model"], r["threads"]))
        if r["framework"] != "ours" or t is None or "error" in r or r.get("load"):
            continue
        ours = r["peak_rss_above_baseline"] + r.get("lane_worker_bytes", 0)
        memory = ours / t["peak_rss_above_baseline"]
        speed = r["seconds_per_iteration"] / t["seconds_per_iteration"]
        rows.append({"model": r["model"], "threads": r["threads"], "planner": _run_label(r),
                     "arena MB": r["arena_bytes"] / 1e6,
                     "ours peak MB": ours / 1e6,
                     "of which lane worker MB": r.get("lane_worker_bytes", 0) / 1e6,
                     "torch peak MB": t["peak_rss_above_baseline"] / 1e6,
                     "memory ratio": memory,
                     "ours s/it": r["seconds_per_iteration"],
                     "torch s/it": t["seconds_per_iteration"], "time ratio": speed,
                     "memory ok": memory <= TARGETS["memory_ratio"],
                     "time ok": speed <= TARGETS["time_ratio"],
                     "others' cores": max(r.get("other_cores", 0), t.get("other_cores", 0))})
    return rows


def slowdowns(records: list[dict]) -> list[dict]:
    """Per (model, threads, our planner) and load level: each framework's seconds under load
    over its quiet seconds, and ours / PyTorch's (the target: at most 1.2)."""
    runs = {(r["framework"], r["model"], r["planner"], r["threads"], r.get("swap"),
             r.get("remat"), r.get("load", 0)): r for r in records if "error" not in r}
    rows = []
    for (fw, model, planner, n, swap, remat, k), r in runs.items():
        quiet = runs.get((fw, model, planner, n, swap, remat, 0))
        tq, tl = runs.get(("torch", model, None, n, None, None, 0)), runs.get(
            ("torch", model, None, n, None, None, k))
        if fw != "ours" or not k or quiet is None or tq is None or tl is None:
            continue
        ours = r["seconds_per_iteration"] / quiet["seconds_per_iteration"]
        theirs = tl["seconds_per_iteration"] / tq["seconds_per_iteration"]
        rows.append({"model": model, "threads": n, "planner": _run_label(r), "load": k,
                     "ours quiet s/it": quiet["seconds_per_iteration"],
                     "ours loaded s/it": r["seconds_per_iteration"], "ours slowdown": ours,
                     "torch quiet s/it": tq["seconds_per_iteration"],
                     "torch loaded s/it": tl["seconds_per_iteration"], "torch slowdown": theirs,
                     "slowdown ratio": ours / theirs,
                     "slowdown ok": ours / theirs <= TARGETS["slowdown_ratio"],
                     "loaded time ratio": r["seconds_per_iteration"] / tl["seconds_per_iteration"],
                     "others' cores": max(r.get("other_cores", 0), tl.get("other_cores", 0))})
    return rows


def nntrainer_pool_bytes() -> int:
    """NNTrainer's weight pool plus tensor pool as ``trainplan plan --model mnist.ini
    --nntrainer-compat --planner nntrainer_v1 --alignment 1`` prints them."""
    from trainplan.planner.build import build_training_graph
    from trainplan.planner.plan_training import plan_training
    from trainplan.planner.zoo import get_model

    graph = build_training_graph(get_model(MNIST_INI), compat=True)
    record = plan_training(graph, offsets="nntrainer_v1", alignment=1).record()
    return record["weight_pool_bytes"] + record["tensor_pool_bytes"]


def mnist_rows(records: list[dict], pool_bytes: int) -> list[dict]:
    """NNTrainer 0.6's figures, then ours on the same INI under each planner."""
    rows = [{"run": "NNTrainer 0.6 (measured)", "arena / pools MB": pool_bytes / 1e6,
             "peak above baseline MB": NNTRAINER_MNIST["peak_rss_above_baseline"] / 1e6,
             "whole process MB": NNTRAINER_MNIST["peak_rss_bytes"] / 1e6,
             "s/it": NNTRAINER_MNIST["seconds_per_iteration"]}]
    for r in records:
        if r["model"] == "mnist" and "error" not in r:
            rows.append({"run": f"ours ({r['planner']}, {r['threads']} threads)",
                         "arena / pools MB": r["arena_bytes"] / 1e6,
                         "peak above baseline MB": r["peak_rss_above_baseline"] / 1e6,
                         "whole process MB": r["peak_rss_bytes"] / 1e6,
                         "s/it": r["seconds_per_iteration"]})
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo models")
    p.add_argument("--iterations", type=int, default=5, help="timed iterations, at least")
    p.add_argument("--min-seconds", type=float, default=3.0,
                   help="time at least this long per measurement (more iterations)")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", default=str(os.cpu_count() or 1),
                   help="threads for torch and numpy's BLAS, comma-separated counts to run "
                   "each (default: all cores)")
    p.add_argument("--planners", default="nntrainer_v1,greedy_size",
                   help="offset planners of our arena, comma-separated")
    p.add_argument("--swap", default=None, help="also run ours swapping (belady) under "
                   "these budgets, comma-separated FRACTION[:through] of the graph's lower "
                   "bound (':through': the swap file keeps nothing in the page cache), e.g. "
                   "0.6,0.6:through")
    p.add_argument("--remat", default=None, help="also run ours recomputing (nothing on "
                   "storage) with these remat planners, comma-separated NAME[:FRACTION] (the "
                   "fraction of the lower bound recomputation aims at), e.g. sqrt,greedy:0.5")
    p.add_argument("--load", default="0", help="comma-separated counts of CPU-bound background "
                   "processes (each pinned to one CPU) to measure under, e.g. 0,1 (default 0)")
    p.add_argument("--no-torch", action="store_true", help="ours only")
    p.add_argument("--no-mnist", action="store_true", help="skip NNTrainer's MNIST model")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every measurement this many times; the fastest round counts")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each worker wait up to this long for other processes to "
                   "leave the cores idle")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per worker")
    p.add_argument("--out", default="results/bench_runtime.json", help="JSON output")
    p.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for spec in args.swap.split(",") if args.swap else []:
        try:
            parse_swap(spec)
        except ValueError as exc:
            p.error(str(exc))
    for spec in args.remat.split(",") if args.remat else []:
        try:
            parse_remat(spec)
        except ValueError as exc:
            p.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    import pandas as pd
    from tqdm import tqdm

    from trainplan.planner.fileio import atomic_write_text

    has_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    if not args.no_torch and not has_torch:
        print("torch is not installed (pip install 'trainplan[torch]'): ours only")
    threads = [int(n) for n in args.threads.split(",")]
    loads = [int(k) for k in args.load.split(",")]
    todo = jobs(args.models.split(","), args.planners.split(","), threads, torch=has_torch,
                mnist=not args.no_mnist, swaps=args.swap.split(",") if args.swap else [],
                remats=args.remat.split(",") if args.remat else [], loads=loads)
    rounds = [(k, j) for k in range(args.rounds) for j in todo]
    records = [{**run_job(j, args), "round": k}
               for k, j in tqdm(rounds, desc="workers", unit="run")]
    best = best_rounds(records)
    result = {"cpu_count": os.cpu_count(), "threads": threads, "loads": loads,
              "rounds": args.rounds, "targets": TARGETS, "records": records,
              "ratios": ratios(best), "slowdowns": slowdowns(best)}
    if not args.no_mnist:
        result["mnist"] = mnist_rows(best, nntrainer_pool_bytes())
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    for key in ("ratios", "slowdowns", "mnist"):
        if result.get(key):
            print(pd.DataFrame(result[key]).to_string(index=False, float_format="{:.4g}".format))
    failed = {(r["framework"], r["model"], _run_label(r), str(r["error"])): r["error"]
              for r in records if "error" in r}
    for (framework, model, label, _), error in failed.items():
        print(f"{framework} {model} {label or ''} failed: {error}")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
