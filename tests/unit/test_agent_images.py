"""The agent's own image allow-list (a gateway's request never widens it) and its report of the images its engine
has; the start requests that name an image."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.agent.images import ImageMissing, ImageRefused, NodeImages
from gateway.agent.keys import create_keys
from gateway.agent.protocol import BadRequest, StartRequest, parse_request
from gateway.agent.server import Agent, AgentError
from gateway.agent.settings import AgentSettings
from gateway.errors import SandboxUnavailable
from gateway.settings import Settings

ALLOWED = ("sandbox:1", "custom:1", "heavy:2")


class Engine:
    """A fake engine's ``has_image``: counts its calls; ``down`` makes it fail as an engine that does not answer."""

    def __init__(self, images: set[str]) -> None:
        self.images = images
        self.calls = 0
        self.down = False

    async def has(self, image: str) -> bool:
        self.calls += 1
        if self.down:
            raise SandboxUnavailable("Docker engine error: gone")
        return image in self.images


def test_only_images_on_the_agents_own_list_are_started() -> None:
    images = NodeImages("node-a", ALLOWED, Engine(set()).has)
    assert images.choose(None) is None and images.choose("sandbox:1") is None  # the deployment's own
    assert images.choose("custom:1") == "custom:1"
    for asked in ("alpine:latest", "custom:2", "Custom:1", "custom:1 "):
        with pytest.raises(ImageRefused, match="not allowed on node node-a") as refused:
            images.choose(asked)
        assert "JUPYCELL_ALLOWED_IMAGES" in str(refused.value) and "custom:1, heavy:2" in str(refused.value)
    with pytest.raises(ImageRefused, match="pool kernel"):
        images.choose("custom:1", pool=True)
    assert images.choose(None, pool=True) is None
    with pytest.raises(ImageRefused, match="allows 'sandbox:1' and, in its JUPYCELL_ALLOWED_IMAGES, none"):
        NodeImages("node-a", ALLOWED[:1], Engine(set()).has).choose("custom:1")


def test_the_report_lists_the_allowed_images_the_engine_has_checked_again_once_stale() -> None:
    engine = Engine({"sandbox:1", "heavy:2", "other:9"})
    images = NodeImages("node-a", ALLOWED, engine.has, fresh_for=3600)

    async def scenario() -> None:
        assert await images.present() == ["sandbox:1", "heavy:2"]  # allow-list order; other:9 is not allowed
        engine.images.add("custom:1")
        assert await images.present() == ["sandbox:1", "heavy:2"]  # fresh: not asked again
        assert engine.calls == 3
        images._fresh_for = 0
        assert await images.present() == ["sandbox:1", "custom:1", "heavy:2"]
        engine.down = True
        assert await images.present() == ["sandbox:1", "custom:1", "heavy:2"]  # the last answer, not an error

    asyncio.run(scenario())


def test_a_start_request_may_name_an_image_of_reference_syntax_only() -> None:
    def start(**body: object) -> bytes:
        return json.dumps({"v": 1, "id": "r1", "op": "start", "kernel_id": 3, "key": "ab" * 32, **body}).encode()

    request = parse_request(start(image="registry.local:5000/team/stack:1.2@sha256:" + "a" * 64))
    assert isinstance(request, StartRequest) and request.image and request.image.startswith("registry.local")
    assert parse_request(start()).image is None  # type: ignore[union-attr]
    for bad in ("", "-x", "a b", "x;rm -rf /", "x" * 257, "--privileged", 3):
        with pytest.raises(BadRequest, match="image"):
            parse_request(start(image=bad))


def test_the_agent_refuses_an_image_off_its_list_whatever_the_gateway_allows(tmp_path: Path) -> None:
    paths = create_keys(tmp_path)
    agent_settings = AgentSettings(
        node_name="node-a", curve_secret_file=paths["agent_secret"], allowed_clients=paths["gateway_public"],
        state_dir=tmp_path / "s",
    )  # fmt: skip
    agent = Agent(agent_settings, Settings(sandbox_image="sandbox:1", allowed_images="custom:1,heavy:2"))
    engine = Engine({"sandbox:1", "custom:1"})
    agent.images = NodeImages("node-a", ("sandbox:1", "custom:1", "heavy:2"), engine.has)
    request = StartRequest(v=1, id="r", op="start", kernel_id=3, key="ab" * 32, image="custom:1")

    async def scenario() -> None:
        assert await agent._image(request) == "custom:1"
        assert await agent._image(request.model_copy(update={"image": "sandbox:1"})) is None
        with pytest.raises(AgentError, match="'alpine:3' is not allowed on node node-a") as refused:
            await agent._image(request.model_copy(update={"image": "alpine:3"}))
        assert refused.value.type == "bad_request"
        with pytest.raises(AgentError, match="'heavy:2' is allowed on node node-a but not in its engine") as missing:
            await agent._image(request.model_copy(update={"image": "heavy:2"}))  # never pulled
        assert missing.value.type == "start_failed"

    try:
        asyncio.run(scenario())
    finally:
        agent.sandbox.close()


def test_an_image_is_required_in_the_engine_at_the_moment_of_the_start() -> None:
    engine = Engine({"sandbox:1"})
    images = NodeImages("node-a", ALLOWED, engine.has, fresh_for=3600)

    async def scenario() -> None:
        await images.present()
        with pytest.raises(ImageMissing, match="load it there"):
            await images.require("custom:1")
        engine.images.add("custom:1")
        await images.require("custom:1")  # asked afresh, not from the cached report

    asyncio.run(scenario())
