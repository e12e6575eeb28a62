"""Placement: which node a new kernel goes to. Pure: node loads in, nodes in order of preference out.

Kernels are spread by free capacity: the node with the most free kernel slots first (its slots are the smaller of
``max_kernels_per_node`` and the agent's own maximum), then the one with the most memory left once its kernels
have their limit, then by name (stable). A node without a free slot is never chosen.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeLoad:
    """One ready node as its agent last reported it, plus the kernels placed on it since."""

    name: str
    kernels: int  # running or starting
    max_kernels: int  # the agent's own maximum
    mem_mb: int  # the node's memory (0: unknown)

    def free_slots(self, per_node: int) -> int:
        return min(per_node, self.max_kernels) - self.kernels

    def free_memory_mb(self, kernel_mem_mb: int) -> int:
        return self.mem_mb - self.kernels * kernel_mem_mb


def preference(loads: list[NodeLoad], *, per_node: int, kernel_mem_mb: int) -> list[str]:
    """The names of the nodes with a free slot, best first."""
    open_nodes = [load for load in loads if load.free_slots(per_node) > 0]
    open_nodes.sort(key=lambda n: (-n.free_slots(per_node), -n.free_memory_mb(kernel_mem_mb), n.name))
    return [load.name for load in open_nodes]
