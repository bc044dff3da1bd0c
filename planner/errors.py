"""Named errors for bad input, each carrying a message that says how to fix it."""


class TrainplanError(Exception):
    """Base of every error trainplan raises for bad input; the CLI prints it without a traceback."""


class UnknownModel(TrainplanError):
    """A model name that is not in the zoo and not an existing .ini file."""


class UnknownName(TrainplanError):
    """A planner, optimizer, order, layer type or device name that is not registered."""


class InvalidGraph(TrainplanError):
    """A training graph that breaks the schema or has a cycle."""

    def __init__(self, message: str, node: str | None = None):
        super().__init__(message)
        self.node = node


class InvalidShape(TrainplanError):
    """A shape or size that is non-positive or empties a layer."""


class InvalidModelFile(TrainplanError):
    """A malformed NNTrainer INI model file; the message names the section or line."""


class InvalidProblem(TrainplanError):
    """A malformed allocation problem (for example a bad CSV line)."""


class Infeasible(TrainplanError):
    """A capacity or budget below what the problem needs at least."""

    def __init__(self, message: str, needed_bytes: int):
        super().__init__(message)
        self.needed_bytes = needed_bytes


class PlanError(TrainplanError):
    """A plan that breaks its problem's rules; ``violations`` lists every broken rule."""

    def __init__(self, message: str, violations: list[str] | None = None):
        super().__init__(message)
        self.violations = list(violations or [])


class InvalidPlanFile(TrainplanError):
    """A saved plan that cannot be read, or was made for another graph or order."""


class UnreadableFile(TrainplanError):
    """A file that is missing, a directory, empty, binary or not UTF-8 text."""


class UnwritableFile(TrainplanError):
    """An output path that cannot be written: its directory is missing, read-only or a file."""


class NotEnoughMemory(TrainplanError):
    """A request that needs more RAM than the machine has available; the message names both."""

    def __init__(self, message: str, needed_bytes: int, available_bytes: int | None = None):
        super().__init__(message)
        self.needed_bytes = needed_bytes
        self.available_bytes = available_bytes
