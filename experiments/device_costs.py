"""A device profile as the swap planners see it: a storage model and compute seconds per EO."""

from __future__ import annotations

import networkx as nx
import numpy as np

from trainplan.planner.order import ExecutionOrder
from trainplan.planner.plan_training import CostModel, SwapCosts
from trainplan.planner.swap.stall_model import StorageModel
from trainplan.simulator.device import DeviceProfile, load_device
from trainplan.simulator.engine import step_seconds
from trainplan.simulator.simulate import graph_steps


def storage_model(device: DeviceProfile) -> StorageModel:
    return StorageModel(device.read_bandwidth, device.write_bandwidth, device.read_latency_s,
                        device.write_latency_s, device.shared_channel)


def eo_seconds(graph: nx.DiGraph, eo: ExecutionOrder, device: DeviceProfile) -> list[float]:
    """Roofline compute time of every EO on ``device`` (ops of one EO summed)."""
    steps = graph_steps(graph, eo)
    seconds = np.zeros(eo.n_eo)
    np.add.at(seconds, [s.eo for s in steps], step_seconds(steps, device))
    return seconds.tolist()


def device_costs(device: DeviceProfile | str) -> CostModel:
    """What ``plan_training(costs=...)`` asks of a device: its storage and its compute seconds
    per EO under the order the planner computed."""
    device = load_device(device)

    def costs(graph: nx.DiGraph, eo: ExecutionOrder) -> SwapCosts:
        return SwapCosts(storage_model(device), tuple(eo_seconds(graph, eo, device)))
    return costs
