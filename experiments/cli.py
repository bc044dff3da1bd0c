"""`trainplan`: the command line. Each command module registers its subcommands here.

``main`` is the one error boundary: option values and output paths are checked before any
work (experiments/validate_args.py); a TrainplanError, a failed allocation (MemoryError) or an
operating-system error is printed as one line naming the problem and the fix, exit status 2,
never a traceback. Ctrl-C (SIGINT) and SIGTERM, which schedulers send to stop a job, unwind
the same way: swap files are removed, the last complete checkpoint stays, and the exit status
is 130 or 143.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import contextmanager

from trainplan import __version__
from trainplan.experiments import cmd_graph, cmd_plan, cmd_sim, cmd_sweep, cmd_train
from trainplan.experiments.output import emit_stdout
from trainplan.experiments.validate_args import check_args
from trainplan.planner.errors import TrainplanError
from trainplan.planner.fileio import explain_os_error

COMMAND_MODULES = [cmd_graph, cmd_plan, cmd_sim, cmd_train, cmd_sweep]
MAX_MESSAGE = 2000  # characters of an error message; the rest is cut


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be so the same clean-up runs."""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainplan",
        description="Memory planning for neural-network training on small devices.",
        epilog=cmd_plan.PLANNERS_EPILOG)
    parser.add_argument("--version", action="version", version=f"trainplan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


@contextmanager
def sigterm_as_interrupt():
    """While the block runs, SIGTERM raises Terminated (a KeyboardInterrupt) in the main
    thread; the previous handler is restored after."""
    def handler(signum, frame):
        raise Terminated()
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    with sigterm_as_interrupt():
        try:
            check_args(args)
            result = args.run(args)
            if result is not None:
                return emit_stdout(result, getattr(args, "json", False))
        except BrokenPipeError:  # the reader left (`trainplan compare | head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        except TrainplanError as exc:
            return _fail(args, str(exc))
        except MemoryError as exc:
            return _fail(args, _out_of_memory(exc))
        except OSError as exc:
            return _fail(args, explain_os_error(exc))
        except Terminated:
            print(f"trainplan {args.command}: terminated", file=sys.stderr)
            return 128 + signal.SIGTERM
        except KeyboardInterrupt:
            print(f"trainplan {args.command}: interrupted", file=sys.stderr)
            return 130
    return 0


def _fail(args: argparse.Namespace, message: str) -> int:
    if len(message) > MAX_MESSAGE:
        message = f"{message[:MAX_MESSAGE]}... ({len(message):,} characters)"
    print(f"trainplan {args.command}: error: {message}", file=sys.stderr)
    return 2


def _out_of_memory(exc: MemoryError) -> str:
    """numpy's MemoryError says the size it could not allocate; say it with the fix."""
    size = getattr(exc, "_total_size", None)  # numpy's _ArrayMemoryError
    what = f"allocating {size:,} bytes" if isinstance(size, int) else "allocating memory"
    return (f"out of memory {what}; use a smaller --batch, fewer --samples or --iterations, "
            "or plan under a RAM budget (--budget)")


if __name__ == "__main__":
    sys.exit(main())
