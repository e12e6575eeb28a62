"""The MCP server at ``/mcp`` (issue 12): tools for language models over the same kernels as the HTTP API."""

from gateway.mcp.mount import mount_mcp

__all__ = ["mount_mcp"]
