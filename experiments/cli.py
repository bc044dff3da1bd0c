"""`trainplan`: the command line. Each command module registers its subcommands here."""

from __future__ import annotations

import argparse
import sys

from trainplan import __version__
from trainplan.experiments import cmd_graph, cmd_plan, cmd_sim, cmd_sweep, cmd_train
from trainplan.experiments.output import emit_stdout
from trainplan.planner.errors import TrainplanError

COMMAND_MODULES = [cmd_graph, cmd_plan, cmd_sim, cmd_train, cmd_sweep]


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


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        result = args.run(args)
    except TrainplanError as exc:
        print(f"trainplan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"trainplan {args.command}: interrupted", file=sys.stderr)
        return 130
    if result is not None:
        return emit_stdout(result, getattr(args, "json", False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
