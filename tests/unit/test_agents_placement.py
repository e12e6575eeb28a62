"""The agents backend's pure parts: placement, agent addresses, its settings checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.adapters.agents.discovery import DEFAULT_CONTROL_PORT, Target, parse_targets
from gateway.adapters.agents.placement import NodeLoad, holding, preference
from gateway.settings import Settings


def test_the_node_with_most_free_slots_comes_first_and_full_nodes_never() -> None:
    loads = [NodeLoad("a", 3, 64, 8192), NodeLoad("b", 1, 64, 8192), NodeLoad("c", 4, 64, 8192)]
    assert preference(loads, per_node=4, kernel_mem_mb=512) == ["b", "a"]


def test_an_agents_own_maximum_counts_too() -> None:
    loads = [NodeLoad("a", 0, 1, 8192), NodeLoad("b", 1, 64, 8192)]
    assert preference(loads, per_node=4, kernel_mem_mb=512) == ["b", "a"]  # a: 1 free slot, b: 3


def test_ties_go_to_more_free_memory_then_by_name() -> None:
    loads = [NodeLoad("b", 1, 64, 4096), NodeLoad("a", 1, 64, 4096), NodeLoad("c", 1, 64, 16384)]
    assert preference(loads, per_node=8, kernel_mem_mb=1024) == ["c", "a", "b"]


def test_no_free_slot_anywhere_gives_no_node() -> None:
    assert preference([NodeLoad("a", 2, 64, 0)], per_node=2, kernel_mem_mb=512) == []


@pytest.mark.parametrize(
    "spec, targets",
    [
        ("tasks.agent", [Target("tasks.agent", DEFAULT_CONTROL_PORT)]),
        ("127.0.0.1:7801, 127.0.0.1:7802", [Target("127.0.0.1", 7801), Target("127.0.0.1", 7802)]),
        ("[::1]:7700", [Target("::1", 7700)]),
    ],
)
def test_agent_addresses(spec: str, targets: list[Target]) -> None:
    assert parse_targets(spec) == targets


@pytest.mark.parametrize("spec", ["", " , ", "host:0", "host:x", ":7700", "host:70000"])
def test_bad_agent_addresses_are_refused_with_the_reason(spec: str) -> None:
    with pytest.raises(ValueError, match="agent address|port"):
        parse_targets(spec)


def test_the_agents_backend_refuses_to_start_without_postgresql() -> None:
    with pytest.raises(ValidationError, match="needs PostgreSQL"):
        Settings(backend="agents", agents="tasks.agent")
    with pytest.raises(ValidationError, match="needs PostgreSQL"):
        Settings(backend="agents", database_url="sqlite:////tmp/x.sqlite3")


def test_the_agents_backend_needs_its_addresses_and_keys() -> None:
    with pytest.raises(ValidationError, match="JUPYCELL_AGENTS, JUPYCELL_GATEWAY_CURVE_SECRET_FILE"):
        Settings(backend="agents", database_url="postgresql+psycopg://u@h/db")
    settings = Settings(
        backend="agents", database_url="postgresql+psycopg://u@h/db", agents="tasks.agent",
        gateway_curve_secret_file="/run/secrets/g", agent_curve_public_file="/run/secrets/a",
    )  # fmt: skip
    assert settings.max_kernels_per_node == 32


def test_a_kernel_of_an_image_of_its_own_goes_only_to_nodes_that_have_it() -> None:
    loads = [
        NodeLoad("a", 0, 64, 8192, frozenset({"sandbox:1"})),
        NodeLoad("b", 3, 64, 8192, frozenset({"sandbox:1", "custom:1"})),
        NodeLoad("c", 4, 64, 8192, frozenset({"custom:1"})),
    ]
    assert preference(loads, per_node=4, kernel_mem_mb=512, image="custom:1") == ["b"]  # c is full
    assert preference(loads, per_node=4, kernel_mem_mb=512) == ["a", "b"]  # the deployment's image: any node
    assert preference(loads, per_node=4, kernel_mem_mb=512, image="heavy:2") == []
    assert [load.name for load in holding(loads, "custom:1")] == ["b", "c"]
    assert holding(loads, None) == loads
