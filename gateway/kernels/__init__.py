"""Kernels: talking to an ipykernel over ZMQ, and the registry of the gateway's live kernels."""
