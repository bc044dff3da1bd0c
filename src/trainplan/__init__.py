"""trainplan: memory planning for neural-network training on small devices.

The installed package is ``trainplan``; its stages are ``trainplan.planner`` (graphs, orders,
lifespans, planners, the TrainingPlan), ``trainplan.simulator`` (device profiles, timelines),
``trainplan.runtime`` (the numpy runtime) and ``trainplan.experiments`` (the command line,
plots, benchmarks).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("trainplan")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
