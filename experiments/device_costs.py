"""A device profile as the swap planners see it: a storage model and compute seconds per EO."""

from __future__ import annotations

import networkx as nx
import numpy as np

from trainplan.planner.order import ExecutionOrder
from trainplan.planner.plan_training import CostModel, Score, SwapCosts
from trainplan.planner.swap.stall_model import StorageModel
from trainplan.planner.training_plan import TrainingPlan
from trainplan.simulator.device import DeviceProfile, load_device
from trainplan.simulator.engine import step_seconds
from trainplan.simulator.simulate import graph_steps


def storage_model(device: DeviceProfile) -> StorageModel:
    return StorageModel(device.read_bandwidth, device.write_bandwidth, device.read_latency_s,
                        device.write_latency_s, device.shared_channel)


def op_seconds(graph: nx.DiGraph, eo: ExecutionOrder, device: DeviceProfile
               ) -> tuple[list[float], dict[str, float]]:
    """Roofline compute time of every EO on ``device`` (ops of one EO summed) and of every
    op."""
    steps = graph_steps(graph, eo)
    each = step_seconds(steps, device)
    seconds = np.zeros(eo.n_eo)
    np.add.at(seconds, [s.eo for s in steps], each)
    return seconds.tolist(), {s.name: float(t) for s, t in zip(steps, each, strict=True)}


def device_costs(device: DeviceProfile | str) -> CostModel:
    """What ``plan_training(costs=...)`` asks of a device: its storage and its compute seconds
    per EO and per op under the order the planner computed."""
    device = load_device(device)

    def costs(graph: nx.DiGraph, eo: ExecutionOrder) -> SwapCosts:
        per_eo, per_op = op_seconds(graph, eo, device)
        return SwapCosts(storage_model(device), tuple(per_eo), per_op)
    return costs


def device_score(device: DeviceProfile | str) -> Score:
    """A plan's simulated seconds per iteration on ``device`` (stalls and recomputation
    included): what joint strategies minimise."""
    from trainplan.simulator.simulate import simulate

    device = load_device(device)

    def score(graph: nx.DiGraph, plan: TrainingPlan) -> float:
        return simulate(graph, plan, device).summary.iteration_seconds
    return score
