"""Custom images per kernel: an allow-list (JUPYCELL_ALLOWED_IMAGES), POST /start {"image"}, a kernel spec per image;
the image is part of the kernel's state (restart, gateway restart) and its packages are resolved for it.

The custom image is the sandbox image plus a marker file, built here (one small layer, no network) and removed after.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from testing.harness import TEST_BACKEND, Api, stdout_of
from testing.images import READ_MARKER, marked_image
from tests.conftest import GatewayFactory

IMAGE = os.environ.get("JUPYCELL_SANDBOX_IMAGE", "jupycell-sandbox:latest")
# Which image a container runs does not depend on the container runtime: `make test-runsc` does not repeat this.
pytestmark = pytest.mark.skipif(os.environ.get("JUPYCELL_RUNTIME") == "runsc", reason="runtime-independent")


def packages_on_demand(api: Api, kernel_id: int) -> bool:
    """Whether the gateway has packages on demand: always on the local backend; under ``TEST_BACKEND=agents``
    only once the agents backend has them (until then the gateway says they are not available)."""
    if TEST_BACKEND != "agents":
        return True
    probe = api.http.post(f"/kernels/{kernel_id}/packages", json={"packages": ["tabulate"]})
    if probe.status_code == 403 and "not available in this gateway" in probe.json()["detail"]:
        return False
    assert probe.status_code == 200, probe.text
    return True


@pytest.fixture(scope="module")
def custom_image() -> Iterator[str]:
    with marked_image(IMAGE) as tag:
        yield tag


def test_kernels_run_the_allowed_image_they_ask_for_and_keep_it(
    gateway_factory: GatewayFactory, custom_image: str
) -> None:
    gateway = gateway_factory("ci", sandbox_image=IMAGE, allowed_images=custom_image, mem_limit_mb=512)
    api = Api(gateway.url, timeout=300)
    try:
        refused = api.http.post("/start", json={"image": "alpine:latest"})
        assert refused.status_code == 422
        assert "JUPYCELL_ALLOWED_IMAGES" in refused.json()["detail"] and "alpine:latest" in refused.json()["detail"]

        specs = api.http.get("/api/kernelspecs").json()["kernelspecs"]
        (name,) = [n for n, s in specs.items() if s["spec"]["metadata"]["jupycell"]["image"] == custom_image]
        assert name.startswith("python3-image-jupycell-sandbox-test-custom-")
        assert specs["python3"]["spec"]["metadata"]["jupycell"]["image"] == IMAGE
        model = api.http.post("/api/kernels", json={"name": name}).json()  # a kernel spec per image
        assert model["name"] == name
        assert stdout_of(api.execute(model["kernel_id"], READ_MARKER)) == "custom-image\n"
        api.http.delete(f"/api/kernels/{model['id']}")

        custom = api.http.post("/start", json={"image": custom_image}).json()["kernel_id"]
        plain = api.start()
        assert stdout_of(api.execute(custom, READ_MARKER)) == "custom-image\n"
        assert stdout_of(api.execute(plain, READ_MARKER)) == "-\n"
        assert api.http.get(f"/kernels/{custom}").json()["image"] == custom_image
        assert api.http.get(f"/kernels/{plain}").json()["image"] == IMAGE

        packages = packages_on_demand(api, custom)
        if packages:
            result = api.execute(custom, "%pip install tabulate\nimport tabulate\nprint(tabulate.__name__)")
            assert result["status"] == "ok" and stdout_of(result).endswith("tabulate\n"), result

        api.close()
        gateway.stop(signal.SIGTERM)  # containers removed, records kept: the image comes from the database
        # (a restart in the same gateway process takes the same path: Kernel.image, then the same reinstall)
        gateway = gateway_factory.again(gateway)
        api = Api(gateway.url, timeout=300)
        assert api.http.post(f"/kernels/{custom}/restart").status_code == 200
        after_restart = READ_MARKER + ("\nimport tabulate" if packages else "")
        assert stdout_of(api.execute(custom, after_restart)) == "custom-image\n"
    finally:
        api.close()
