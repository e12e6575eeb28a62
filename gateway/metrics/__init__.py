"""Prometheus metrics of the gateway (``GET /metrics``): what they are, and the HTTP middleware that counts requests."""

from gateway.metrics.registry import GatewayMetrics

__all__ = ["GatewayMetrics"]
