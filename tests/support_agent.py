"""Test helpers for the node agent (they live in ``testing.agents``, which the harness uses too)."""

from testing.agents import AgentKeys, AgentProcess, evaluate, relayed_kernel, run, wait_ready

__all__ = ["AgentKeys", "AgentProcess", "evaluate", "relayed_kernel", "run", "wait_ready"]
