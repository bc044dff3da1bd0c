"""trainplan: memory planning for neural-network training on small devices.

The installed package is ``trainplan``; its stages are ``trainplan.planner`` (graphs, orders,
lifespans, planners, the TrainingPlan), ``trainplan.simulator`` (device profiles, timelines),
``trainplan.runtime`` (the numpy runtime) and ``trainplan.experiments`` (the command line,
plots, benchmarks). ``import trainplan as tp`` also gives the notebook API of
``trainplan.api`` (``tp.graph``, ``tp.plan``, ``tp.simulate``, ``tp.compare``, ``tp.train``,
...: docs/api.md), loaded on first use so that importing trainplan stays fast.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("trainplan")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"

_API = ("Comparison", "buffers", "c_header", "compare", "devices", "graph", "measure", "models",
        "plan", "planners", "plot_measured", "plot_timeline", "simulate", "trace", "train")


def __getattr__(name: str):
    if name in _API:
        from trainplan import api
        return getattr(api, name)
    raise AttributeError(f"module 'trainplan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
