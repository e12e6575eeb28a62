"""The ``agents`` sandbox backend: kernel containers on the nodes of node agents, over CurveZMQ."""

from gateway.adapters.agents.backend import AgentsBackend

__all__ = ["AgentsBackend"]
