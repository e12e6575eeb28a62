"""The documentation stays true of the code: every setting, every route and every link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.main import create_app
from gateway.packages.settings import PackageSettings
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Variables of the project's scripts and tests, not settings of the gateway.
SCRIPT_VARIABLES = {
    "JUPYCELL_BASE_IMAGE",
    "JUPYCELL_EXTRA_CA",
    "JUPYCELL_TEST_POSTGRES_URL",
    "JUPYCELL_GATEWAY_IMAGE",  # scripts/build-images.sh, make swarm-up
    "JUPYCELL_SWARM_PORT",  # make swarm-up
    "JUPYCELL_TEST_BACKEND",  # testing/harness.py: run the suites with JUPYCELL_BACKEND=agents
    "JUPYCELL_KERNEL_LAUNCHER",  # sandbox image: `stock` starts plain ipykernel (the benchmark's baseline)
    "JUPYCELL_BUILD",  # scripts/build-images.sh: which images (docs/packages.md, custom images)
    "JUPYCELL_REQUIREMENTS_APP",  # scripts/build-images.sh: the requirements file of a (custom) sandbox image
}


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_every_setting_is_in_the_configuration_reference() -> None:
    reference = text(ROOT / "docs" / "configuration.md")
    names = [f"JUPYCELL_{name.upper()}" for name in [*Settings.model_fields, *PackageSettings.model_fields]]
    assert [name for name in names if f"`{name}`" not in reference] == []


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_every_setting_named_exists(path: Path) -> None:
    settings = {f"JUPYCELL_{name.upper()}" for name in [*Settings.model_fields, *PackageSettings.model_fields]}
    named = set(re.findall(r"JUPYCELL_[A-Z_]+[A-Z]", text(path)))
    assert named - settings - SCRIPT_VARIABLES == set()


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_relative_links_lead_to_files(path: Path) -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text(path)):
        if "://" not in target:
            assert (path.parent / target).exists(), f"{path.name} links to {target}, which does not exist"


def test_every_route_is_documented() -> None:
    documented = text(ROOT / "docs" / "api.md") + text(ROOT / "docs" / "jupyter-clients.md")
    documented = re.sub(r"\{[^}]*\}", "{}", documented)
    paths = [*create_app(Settings()).openapi()["paths"], "/api/kernels/{kernel_id}/channels"]  # + the websocket
    assert len(paths) > 20
    for path in paths:
        shape = re.sub(r"\{[^}]*\}", "{}", path)
        assert f"`{shape}" in documented or f" {shape}`" in documented, f"{path} is not in docs/api.md"
