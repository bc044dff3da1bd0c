"""Which command-line options go together: an option that would do nothing in a combination is
refused with the reason, before any work starts; the options left out get their documented
defaults here.

Each command lists its rules; ``check(args, rules, defaults)`` raises ``UnusedOption`` for the
first rule that holds and then fills in the defaults (options whose presence a rule tests
default to None in the parser, so "given" and "left out" stay apart).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from trainplan.experiments.graph_options import parse_bytes
from trainplan.planner.errors import InvalidShape, TrainplanError
from trainplan.planner.offsets import PLANNERS
from trainplan.planner.strategies import STRATEGIES

SEARCHING_SWAP = "optimal"  # the swap planner that searches (CP-SAT)


class UnusedOption(TrainplanError):
    """An option that does nothing in the combination given; the message says why."""


@dataclass(frozen=True)
class Rule:
    """Refuse when ``when(args)`` holds, saying ``why`` (a text, or a function of the args)."""

    when: Callable[[argparse.Namespace], bool]
    why: str | Callable[[argparse.Namespace], str]

    def message(self, args: argparse.Namespace) -> str:
        return self.why(args) if callable(self.why) else self.why


def check(args: argparse.Namespace, rules: Iterable[Rule],
          defaults: Mapping[str, object] | None = None) -> argparse.Namespace:
    """Raise UnusedOption for the first rule that holds; then give every option in
    ``defaults`` that was left out (None) its default. Returns ``args``."""
    for rule in rules:
        if rule.when(args):
            raise UnusedOption(rule.message(args))
    for key, value in (defaults or {}).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def given(args: argparse.Namespace, name: str) -> bool:
    """Whether an option was given (its value is not the parser's None or False)."""
    value = getattr(args, name, None)
    return value is not None and value is not False


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def searching_offsets(names: Iterable[str | None]) -> list[str]:
    """The offset planners among ``names`` that search (take a time limit and a seed)."""
    return [n for n in names if n in PLANNERS and PLANNERS[n].searches]


def searches(args: argparse.Namespace) -> bool:
    """Whether the planning the options ask for runs a searching planner."""
    return bool(searching_offsets([getattr(args, "planner", None)])) or \
        getattr(args, "swap", None) in (SEARCHING_SWAP, *STRATEGIES) or \
        getattr(args, "remat", None) == "optimal"


SEARCHING_OFFSETS = ", ".join(searching_offsets(PLANNERS))
SEARCH_NAMES = (f"{SEARCHING_OFFSETS}, --swap {SEARCHING_SWAP} or a joint strategy, "
                "--remat optimal")


def byte_size(text: str) -> int:
    """argparse type: a byte count with units (64MiB, 1.5GB, 1000000)."""
    try:
        return parse_bytes(text)
    except InvalidShape as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def search_rules(*, seeds_runtime: bool = False) -> list[Rule]:
    """--time-limit (and --seed, unless it also seeds the runtime) only reach a planner that
    searches; with --plan nothing is planned."""
    rules = [Rule(lambda a: given(a, "time_limit") and not searches(a),
                  "--time-limit bounds a searching planner (" + SEARCH_NAMES + "); the "
                  "planners asked for finish without searching")]
    if not seeds_runtime:
        rules += [
            Rule(lambda a: given(a, "seed") and given(a, "plan"),
                 "--seed seeds a searching planner; with --plan nothing is planned"),
            Rule(lambda a: given(a, "seed") and not searches(a),
                 "--seed seeds a searching planner (" + SEARCH_NAMES + "); the planners "
                 "asked for do not search"),
        ]
    return rules


def only_with(option: str, condition: Callable[[argparse.Namespace], bool], needs: str,
              reason: str) -> Rule:
    """Refuse ``option`` unless ``condition``: "--option goes with NEEDS: REASON"."""
    return Rule(lambda a: given(a, option) and not condition(a),
                f"{flag(option)} goes with {needs}: {reason}")

