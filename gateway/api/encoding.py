"""Responses encoded once: a route returns ``encoded(model)`` and FastAPI sends the bytes as they are.

A route that returns a pydantic model has it validated again against its ``response_model`` and then serialised;
on the run path that is the largest piece of the gateway's own work per request. The models are built (and so
checked) by the route itself, so ``encoded`` only serialises them, once, in pydantic's Rust core. Routes keep their
``response_model`` for the OpenAPI schema.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


class EncodedJSON(Response):
    media_type = "application/json"


def encoded(model: BaseModel, status_code: int = 200) -> EncodedJSON:
    return EncodedJSON(model.__pydantic_serializer__.to_json(model), status_code=status_code)
