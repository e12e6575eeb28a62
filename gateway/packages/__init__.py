"""Packages on demand: wheels fetched outside the sandbox, installed offline inside it (docs/packages.md)."""
