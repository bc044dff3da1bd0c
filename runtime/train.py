"""The training loop: epochs of shuffled batches, loss and accuracy, a test split, checkpoints,
and the measurements the runtime reports (time, stalls, bytes moved, peak RSS, arena)."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from trainplan.planner.errors import TrainplanError
from trainplan.planner.fileio import remove_stale_temporaries
from trainplan.runtime.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from trainplan.runtime.data import Dataset
from trainplan.runtime.session import Session


@dataclass
class TrainReport:
    final_loss: float = float("nan")
    train_accuracy: float | None = None
    test_accuracy: float | None = None
    iterations: int = 0
    seconds_per_iteration: float = 0.0
    stall_seconds: float = 0.0
    peak_rss_bytes: int = 0
    arena_bytes: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    weights_sha256: str = ""
    iteration_seconds: list[float] = field(default_factory=list)

    def record(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "iteration_seconds"}
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def train(session: Session, data: Dataset, *, batch: int, epochs: int | None = None,
          iterations: int | None = None, test: Dataset | None = None, seed: int = 0,
          checkpoint: str | None = None, resume: bool = False,
          progress: bool = True) -> TrainReport:
    """Train for ``epochs`` (or exactly ``iterations``) and measure it; temporary checkpoint
    files a killed run left beside ``checkpoint`` are removed first."""
    _check_counts(data, batch, epochs, iterations)
    if checkpoint:
        remove_stale_temporaries(checkpoint)
    rng = np.random.default_rng(seed)
    done = _resume(session, checkpoint, rng) if resume and checkpoint else 0
    total = iterations if iterations is not None else (epochs or 1) * (data.size // batch)
    report = TrainReport(arena_bytes=session.arena_bytes)
    correct = seen = 0
    stall0 = _stall(session)
    with tqdm(total=total, initial=done, desc="training", disable=not progress) as bar:
        while done < total:
            for b in data.batches(batch, rng):
                began = time.perf_counter()
                result = session.step(b)
                report.iteration_seconds.append(time.perf_counter() - began)
                report.final_loss = result.loss
                correct, seen = correct + result.correct, seen + result.samples
                done += 1
                bar.update(1)
                if done >= total:
                    break
            if checkpoint:
                _save(session, checkpoint, rng, done)
    report.iterations = done
    report.train_accuracy = correct / seen if seen else None
    report.test_accuracy = evaluate(session, test, batch) if test is not None else None
    return _finish(session, report, stall0)


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
    times = report.iteration_seconds
    report.seconds_per_iteration = float(np.median(times)) if times else 0.0
    report.stall_seconds = _stall(session) - stall0
    if session.swapfile is not None:
        report.bytes_written = session.swapfile.bytes_written
        report.bytes_read = session.swapfile.bytes_read
    report.peak_rss_bytes = peak_rss_bytes()
    report.weights_sha256 = session.weights_sha256()
    return report


def _save(session: Session, path: str, rng: np.random.Generator, done: int) -> None:
    meta = {"iterations": done, "step_count": session.executor.step_count,
            "rng": rng.bit_generator.state, "dropout_rng": session.executor.rng.bit_generator.state,
            "model": session.graph.graph["model"]}
    save_checkpoint(path, session.state(), meta)


def _resume(session: Session, path: str, rng: np.random.Generator) -> int:
    state, meta = load_checkpoint(path)
    if meta.get("model") != session.graph.graph["model"] or set(state) != set(session.persistent):
        raise CheckpointError(f"checkpoint {path} was written for another model or graph")
    for root, values in state.items():
        session.store(root, values)
    rng.bit_generator.state = meta["rng"]
    session.executor.rng.bit_generator.state = meta["dropout_rng"]
    session.executor.step_count = meta["step_count"]
    return int(meta["iterations"])
