"""Adapters: the core's ports implemented on real infrastructure (Docker, SQL). Only ``gateway.main`` wires them."""
