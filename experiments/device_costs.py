"""A device profile as the swap planners see it: a storage model and compute seconds per EO."""

from __future__ import annotations

import networkx as nx
import numpy as np

from trainplan.planner.order import execution_order
from trainplan.planner.swap.stall_model import StorageModel
from trainplan.simulator.device import DeviceProfile, load_device
from trainplan.simulator.engine import step_seconds
from trainplan.simulator.simulate import graph_steps


def storage_model(device: DeviceProfile) -> StorageModel:
    return StorageModel(device.read_bandwidth, device.write_bandwidth, device.read_latency_s,
                        device.write_latency_s, device.shared_channel)


def eo_seconds(graph: nx.DiGraph, device: DeviceProfile, order: str = "nntrainer") -> list[float]:
    """Roofline compute time of every EO on ``device`` (ops of one EO summed)."""
    eo = execution_order(graph, order)
    steps = graph_steps(graph, eo)
    seconds = np.zeros(eo.n_eo)
    np.add.at(seconds, [s.eo for s in steps], step_seconds(steps, device))
    return seconds.tolist()


def swap_costs(graph: nx.DiGraph, device_name: str, order: str = "nntrainer") -> dict:
    """The options a swap planner takes from a device: ``storage`` and ``step_seconds``."""
    device = load_device(device_name)
    return {"storage": storage_model(device), "step_seconds": eo_seconds(graph, device, order)}
