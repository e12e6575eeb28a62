"""/docs and /redoc render in a browser that can reach nothing but the gateway (their scripts are served by it)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from testing.harness import GatewayProcess
from tests.live.conftest import save_screenshot


def block_outside(page: Any, gateway: GatewayProcess) -> list[str]:
    """Abort every request that is not for the gateway; return the list they are recorded in."""
    outside: list[str] = []
    gateway_host = urlparse(gateway.url).netloc

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if urlparse(url).netloc == gateway_host or url.startswith(("data:", "blob:")):
            request_route.continue_()
        else:
            outside.append(url)
            request_route.abort()

    page.route("**/*", route)
    return outside


def test_swagger_ui_renders_its_operations_offline(gateway: GatewayProcess, page: Any) -> None:
    outside = block_outside(page, gateway)
    page.goto(f"{gateway.url}/docs")
    page.locator(".opblock").nth(20).wait_for()
    assert page.get_by_text("/kernels/{kernel_id}/view", exact=True).count() >= 1
    assert outside == []
    save_screenshot(page, "docs.png")


def test_redoc_renders_offline(gateway: GatewayProcess, page: Any) -> None:
    outside = block_outside(page, gateway)
    page.goto(f"{gateway.url}/redoc")
    page.locator("[data-section-id^='tag/']").first.wait_for()
    page.get_by_text("JupyCell", exact=False).first.wait_for()
    assert outside == []
