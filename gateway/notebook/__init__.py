"""The notebook model: cells, their order and their outputs. Pure Python, no I/O."""

from gateway.notebook.model import Cell, Notebook

__all__ = ["Cell", "Notebook"]
