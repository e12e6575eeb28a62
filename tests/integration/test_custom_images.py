"""Custom images per kernel: an allow-list (JUPYCELL_ALLOWED_IMAGES), POST /start {"image"}, a kernel spec per image;
the image is part of the kernel's state (restart, gateway restart) and its packages are resolved for it.

The custom image is the sandbox image plus a marker file, built here (one small layer, no network) and removed after.
"""

from __future__ import annotations

import io
import os
import signal
import uuid
from collections.abc import Iterator

import docker
import pytest

from testing.harness import Api, stdout_of
from tests.conftest import GatewayFactory

IMAGE = os.environ.get("JUPYCELL_SANDBOX_IMAGE", "jupycell-sandbox:latest")
# Which image a container runs does not depend on the container runtime: `make test-runsc` does not repeat this.
pytestmark = pytest.mark.skipif(os.environ.get("JUPYCELL_RUNTIME") == "runsc", reason="runtime-independent")
READ_MARKER = (
    "import os\nprint(open('/opt/jupycell/marker').read().strip() if os.path.exists('/opt/jupycell/marker') else '-')"
)


@pytest.fixture(scope="module")
def custom_image() -> Iterator[str]:
    tag = f"jupycell-sandbox-test:custom-{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {IMAGE}\nUSER 0\nRUN echo custom-image > /opt/jupycell/marker\nUSER 1000:1000\n"
    client = docker.from_env()
    try:
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
        yield tag
    finally:
        try:
            client.images.remove(tag, force=True)
        finally:
            client.close()


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

        result = api.execute(custom, "%pip install tabulate\nimport tabulate\nprint(tabulate.__name__)")
        assert result["status"] == "ok" and stdout_of(result).endswith("tabulate\n"), result

        api.close()
        gateway.stop(signal.SIGTERM)  # containers removed, records kept: the image comes from the database
        # (a restart in the same gateway process takes the same path: Kernel.image, then the same reinstall)
        gateway = gateway_factory.again(gateway)
        api = Api(gateway.url, timeout=300)
        assert api.http.post(f"/kernels/{custom}/restart").status_code == 200
        assert stdout_of(api.execute(custom, READ_MARKER + "\nimport tabulate")) == "custom-image\n"
    finally:
        api.close()
