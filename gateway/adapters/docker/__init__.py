"""The ``local`` sandbox backend: kernel containers on this host's Docker engine."""

from gateway.adapters.docker.sandbox import DockerSandbox, SandboxSpec

__all__ = ["DockerSandbox", "SandboxSpec"]
