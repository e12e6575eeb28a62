"""Placement: which node a new kernel goes to. Pure: node loads in, nodes in order of preference out.

Kernels are spread by free capacity: the node with the most free kernel slots first (its slots are the smaller of
``max_kernels_per_node`` and the agent's own maximum), then the one with the most memory left once its kernels
have their limit, then by name (stable). A node without a free slot is never chosen, nor, for a kernel of an image
of its own, a node whose agent does not report that image (allowed there and present in its engine).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class NodeLoad:
    """One ready node as its agent last reported it, plus the kernels placed on it since."""

    name: str
    kernels: int  # running or starting
    max_kernels: int  # the agent's own maximum
    mem_mb: int  # the node's memory (0: unknown)
    images: frozenset[str] = field(default_factory=frozenset)  # allowed images its engine has, as last reported

    def free_slots(self, per_node: int) -> int:
        return min(per_node, self.max_kernels) - self.kernels

    def free_memory_mb(self, kernel_mem_mb: int) -> int:
        return self.mem_mb - self.kernels * kernel_mem_mb


def holding(loads: list[NodeLoad], image: str | None) -> list[NodeLoad]:
    """The nodes that can run a kernel of ``image`` (None: the deployment's image, which every node has)."""
    return [load for load in loads if image is None or image in load.images]


def preference(loads: list[NodeLoad], *, per_node: int, kernel_mem_mb: int, image: str | None = None) -> list[str]:
    """The names of the nodes with a free slot (and ``image``, if given), best first."""
    open_nodes = [load for load in holding(loads, image) if load.free_slots(per_node) > 0]
    open_nodes.sort(key=lambda n: (-n.free_slots(per_node), -n.free_memory_mb(kernel_mem_mb), n.name))
    return [load.name for load in open_nodes]
