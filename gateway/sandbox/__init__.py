"""Sandboxes: the containers kernels run in. The gateway talks to them only through this package."""

from gateway.sandbox.docker_sandbox import ContainerExit, DockerSandbox, SandboxSpec

__all__ = ["ContainerExit", "DockerSandbox", "SandboxSpec"]
