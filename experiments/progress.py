"""A progress bar for work that can take seconds without reporting steps (a solver searching
under a time limit): a timer thread moves the elapsed time on a bar on stderr.

Bars go to stderr, never into the output, and show only when stderr is a terminal (tqdm's
``disable=None``), so ``--json`` output and pipes stay clean (docs/glossary.md, "progress").
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

from tqdm import tqdm

TICK_SECONDS = 0.25


@contextlib.contextmanager
def ticking(bar: tqdm) -> Iterator[tqdm]:
    """Refresh ``bar`` every TICK_SECONDS while the body runs (its elapsed time moves)."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(TICK_SECONDS):
            bar.refresh()

    thread = threading.Thread(target=tick, name="progress", daemon=True)
    thread.start()
    try:
        yield bar
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def solving(what: str, time_limit: float | None = None, *,
            enabled: bool = True) -> Iterator[None]:
    """A bar saying ``what`` is being solved, its elapsed seconds and the time limit, while the
    body runs (nothing when not ``enabled`` or stderr is not a terminal)."""
    limit = f" (time limit {time_limit:g} s a problem)" if time_limit else ""
    with tqdm(desc=f"solving {what}{limit}", file=sys.stderr, disable=None if enabled else True,
              leave=False, bar_format="{desc}: {elapsed}") as bar, ticking(bar):
        yield


def planning(args) -> contextlib.AbstractContextManager:
    """``solving`` for the planning the command-line ``args`` ask for: shown only when a
    searching planner runs (exact, cpsat, --swap optimal)."""
    from trainplan.experiments.cli_rules import SEARCHING_SWAP, searches

    what = args.swap if args.swap == SEARCHING_SWAP else args.planner
    return solving(str(what), args.time_limit, enabled=searches(args))
