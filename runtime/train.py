"""The training loop: epochs of shuffled batches, loss and accuracy per epoch, a test split,
checkpoints, and the measurements the runtime reports (time, stalls, bytes moved, peak RSS
beside the RSS before the arena, arena, the thread policy: ``SessionOptions.threads`` pins
it). The words follow docs/glossary.md: a figure is per iteration unless its name starts with
``total_``."""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import psutil
from tqdm import tqdm

from trainplan.planner.errors import TrainplanError
from trainplan.planner.fileio import remove_stale_temporaries
from trainplan.runtime.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from trainplan.runtime.data import Dataset
from trainplan.runtime.session import Session


@dataclass
class TrainReport:
    """What a training run measured. ``train_accuracy`` is the last epoch's (the batches since
    the last epoch began), ``epochs`` one record per epoch (mean loss, accuracy over its
    batches); ``iteration_seconds`` the median wall time of an iteration; ``total_*`` figures
    cover the whole run. ``baseline_rss_bytes`` is the process's RSS before the session
    allocated the arena (the interpreter, the libraries, the data, the plan), ``peak_rss_bytes``
    its peak RSS from then on (from its start where the OS cannot restart the count; then no
    baseline is given), ``peak_rss_above_baseline_bytes`` the difference: what training added;
    ``lane_worker_bytes`` what the lane worker process (runtime/kernels/worker.py) held of its
    own at the end, beside this process's RSS."""

    final_loss: float = float("nan")
    train_accuracy: float | None = None
    test_accuracy: float | None = None
    iterations: int = 0
    iteration_seconds: float = 0.0
    total_seconds: float = 0.0
    total_stall_seconds: float = 0.0
    peak_rss_bytes: int = 0
    baseline_rss_bytes: int | None = None
    peak_rss_above_baseline_bytes: int | None = None
    lane_worker_bytes: int = 0
    arena_bytes: int = 0
    total_bytes_written: int = 0
    total_bytes_read: int = 0
    weights_sha256: str = ""
    thread_policy: str = ""
    epochs: list[dict] = field(default_factory=list)
    times: list[float] = field(default_factory=list, repr=False)  # every iteration's seconds

    def record(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "times"}
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}

    def __repr__(self) -> str:
        test = "" if self.test_accuracy is None else f", test accuracy {self.test_accuracy:.3f}"
        acc = "" if self.train_accuracy is None else f", train accuracy {self.train_accuracy:.3f}"
        return (f"TrainReport({self.iterations} iterations in {len(self.epochs)} epochs: loss "
                f"{self.final_loss:.4g}{acc}{test}; {self.iteration_seconds:.3g} s per "
                f"iteration, arena {self.arena_bytes:,} B, peak RSS {self.peak_rss_bytes:,} B)")


def peak_rss_bytes() -> int:
    """The process's peak resident set size since it started or since ``reset_peak_rss``
    (Linux: VmHWM; elsewhere getrusage's lifetime peak)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Restart the count of the peak RSS from the RSS now (Linux: /proc/self/clear_refs), so
    that a run's peak is its own even when the process ran others before; False where the OS
    does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def rss_bytes() -> int:
    """The process's resident set size now (measure it before a Session allocates its arena
    and pass it to ``train`` as ``baseline_rss_bytes``)."""
    return int(psutil.Process().memory_info().rss)


@dataclass
class _Epoch:
    """Running sums of one epoch."""

    number: int
    loss: float = 0.0
    correct: int = 0
    seen: int = 0
    iterations: int = 0

    def add(self, result) -> None:
        self.loss += result.loss
        self.correct += result.correct
        self.seen += result.samples
        self.iterations += 1

    def record(self) -> dict:
        return {"epoch": self.number, "iterations": self.iterations,
                "loss": round(self.loss / self.iterations, 6) if self.iterations else None,
                "train_accuracy": round(self.correct / self.seen, 6) if self.seen else None}


def train(session: Session, data: Dataset, *, batch: int, epochs: int | None = None,
          iterations: int | None = None, test: Dataset | None = None, seed: int = 0,
          checkpoint: str | None = None, resume: bool = False,
          progress: bool = True, baseline_rss_bytes: int | None = None) -> TrainReport:
    """Train for ``epochs`` (or exactly ``iterations``) and measure it; with ``progress`` a bar
    and a line per epoch on stderr. ``baseline_rss_bytes``: ``rss_bytes()`` taken before the
    session was made, to report the peak RSS above it. Temporary checkpoint files a killed run
    left beside ``checkpoint`` are removed first."""
    _check_counts(data, batch, epochs, iterations)
    if checkpoint:
        remove_stale_temporaries(checkpoint)
    rng = np.random.default_rng(seed)
    done = _resume(session, checkpoint, rng) if resume and checkpoint else 0
    per_epoch = max(1, data.size // batch)
    total = iterations if iterations is not None else (epochs or 1) * per_epoch
    report = TrainReport(arena_bytes=session.arena_bytes, baseline_rss_bytes=baseline_rss_bytes)
    stall0, began_run = _stall(session), time.perf_counter()
    # the bar only on a terminal; the epoch lines whenever progress is asked for
    with tqdm(total=total, initial=done, desc="training", file=sys.stderr,
              disable=None if progress else True) as bar:
        while done < total:
            epoch = _Epoch(done // per_epoch + 1)
            for b in data.batches(batch, rng):
                began = time.perf_counter()
                result = session.step(b)
                report.times.append(time.perf_counter() - began)
                report.final_loss = result.loss
                epoch.add(result)
                done += 1
                bar.update(1)
                if done >= total:
                    break
            if not epoch.iterations:
                raise TrainplanError(f"{data.size} samples make no batch of {batch}; give more "
                                     "samples or a smaller --batch")
            report.epochs.append(epoch.record())
            if progress:
                bar.write(_epoch_line(report.epochs[-1], -(-total // per_epoch)),
                          file=sys.stderr)
            if checkpoint:
                _save(session, checkpoint, rng, done)
    report.iterations = done
    report.total_seconds = time.perf_counter() - began_run
    report.train_accuracy = report.epochs[-1]["train_accuracy"] if report.epochs else None
    report.test_accuracy = evaluate(session, test, batch) if test is not None else None
    return _finish(session, report, stall0)


def _epoch_line(rec: dict, epochs: int) -> str:
    acc = rec["train_accuracy"]
    return (f"epoch {rec['epoch']}/{epochs}: loss {rec['loss']:.4f}"
            + ("" if acc is None else f", train accuracy {acc:.4f}"))


def _check_counts(data: Dataset, batch: int, epochs: int | None,
                  iterations: int | None) -> None:
    """Refuse what would train nothing: no iteration, no epoch, fewer samples than a batch."""
    if iterations is not None and iterations < 1:
        raise TrainplanError(f"iterations {iterations}: train at least one")
    if epochs is not None and epochs < 1:
        raise TrainplanError(f"epochs {epochs}: train at least one")
    if data.size < batch:
        raise TrainplanError(f"the data set has {data.size} samples, fewer than one batch of "
                             f"{batch}; give at least {batch} samples or a smaller batch")


def evaluate(session: Session, data: Dataset, batch: int) -> float | None:
    correct = seen = 0
    for b in data.batches(batch, None):
        result = session.evaluate(b)
        correct, seen = correct + result.correct, seen + result.samples
    return correct / seen if seen else None


def _stall(session: Session) -> float:
    return session.controller.stall_seconds if session.controller is not None else 0.0


def _finish(session: Session, report: TrainReport, stall0: float) -> TrainReport:
    times = report.times
    report.iteration_seconds = float(np.median(times)) if times else 0.0
    report.total_stall_seconds = _stall(session) - stall0
    if session.swapfile is not None:
        session.controller.flush()  # the last writes may still be in flight
        report.total_bytes_written = session.swapfile.bytes_written
        report.total_bytes_read = session.swapfile.bytes_read
    report.peak_rss_bytes = peak_rss_bytes()
    if report.baseline_rss_bytes is not None:
        report.peak_rss_above_baseline_bytes = report.peak_rss_bytes - report.baseline_rss_bytes
    report.weights_sha256 = session.weights_sha256()
    report.thread_policy = session.executor.thread_policy()
    report.lane_worker_bytes = session.executor.lane_worker_bytes()
    return report


def _save(session: Session, path: str, rng: np.random.Generator, done: int) -> None:
    meta = {"iterations": done, "step_count": session.executor.step_count,
            "rng": rng.bit_generator.state,
            "model": session.graph.graph["model"]}
    save_checkpoint(path, session.state(), meta)


def _resume(session: Session, path: str, rng: np.random.Generator) -> int:
    state, meta = load_checkpoint(path)
    if meta.get("model") != session.graph.graph["model"] or set(state) != set(session.persistent):
        raise CheckpointError(f"checkpoint {path} was written for another model or graph")
    for root, values in state.items():
        session.store(root, values)
    rng.bit_generator.state = meta["rng"]
    session.executor.step_count = meta["step_count"]
    return int(meta["iterations"])
