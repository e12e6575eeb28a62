"""Kernel specs, logos, kernel models and the env policy of the Jupyter API (no Docker)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import pytest

from gateway.adapters.docker import SandboxSpec
from gateway.api.jupyter import specs
from gateway.api.jupyter.models import KernelCreate, check_request, kernel_model, timestamp
from gateway.errors import InvalidKernelRequest, KernelSpecNotFound
from gateway.kernels.kernel import Kernel
from gateway.settings import Settings


def _settings(**values: object) -> Settings:
    return Settings(kernels_dir=Path("/tmp/jc-unit"), **values)


def test_kernelspec_describes_the_sandbox_profile() -> None:
    settings = _settings(runtime="runsc", mem_limit_mb=300, jupyter_allowed_env="B,A")
    body = specs.kernelspecs(settings, asdict(SandboxSpec.from_settings(settings)))
    assert body["default"] == "python3"
    spec = body["kernelspecs"]["python3"]
    assert spec["name"] == "python3"
    assert spec["spec"]["language"] == "python"
    assert spec["spec"]["interrupt_mode"] == "message"
    assert "runsc" in spec["spec"]["display_name"]
    sandbox = spec["spec"]["metadata"]["jupycell"]
    assert sandbox["runtime"] == "runsc" and sandbox["network"] == "none"
    assert sandbox["limits"]["mem_limit_mb"] == 300
    assert sandbox["allowed_env"] == ["A", "B"] and sandbox["stdin"] is False
    # jupyter_server rewrites resource paths by splitting on "/kernelspecs/"
    assert spec["resources"] == {
        "logo-32x32": "/kernelspecs/python3/logo-32x32.png",
        "logo-64x64": "/kernelspecs/python3/logo-64x64.png",
    }


def test_unknown_kernelspec() -> None:
    settings = _settings()
    with pytest.raises(KernelSpecNotFound, match="'nope' not found \\(available: python3\\)"):
        specs.kernelspec("nope", settings, asdict(SandboxSpec.from_settings(settings)))
    assert specs.resource("nope", "logo-32x32.png", settings) is None
    assert specs.resource("python3", "../etc/passwd", settings) is None


@pytest.mark.parametrize("size", specs.LOGO_SIZES)
def test_logos_are_real_pngs(size: int) -> None:
    data = specs.resource("python3", f"logo-{size}x{size}.png", _settings())
    assert data is not None and data.startswith(b"\x89PNG\r\n\x1a\n")
    length, tag = struct.unpack(">I4s", data[8:16])
    assert tag == b"IHDR" and length == 13
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, colour) == (size, size, 8, 6)
    idat = data.index(b"IDAT")
    (idat_length,) = struct.unpack(">I", data[idat - 4 : idat])
    assert len(zlib.decompress(data[idat + 4 : idat + 4 + idat_length])) == size * (1 + 4 * size)
    assert data.endswith(b"IEND\xaeB`\x82")


def test_last_activity_always_has_microseconds_and_z() -> None:
    for seconds in (1700000000.0, 1700000000.123456):
        text = timestamp(seconds)
        assert text.endswith("Z")
        datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")  # the format jupyter_server parses


def test_one_kernelspec_per_allowed_runtime() -> None:
    settings = _settings(runtime="runc", allowed_runtimes="runsc")
    body = specs.kernelspecs(settings, asdict(SandboxSpec.from_settings(settings)))
    assert list(body["kernelspecs"]) == ["python3", "python3-runsc"]
    gvisor = body["kernelspecs"]["python3-runsc"]
    assert gvisor["spec"]["metadata"]["jupycell"]["runtime"] == "runsc"
    assert gvisor["resources"]["logo-64x64"] == "/kernelspecs/python3-runsc/logo-64x64.png"
    assert check_request(KernelCreate(name="python3-runsc"), settings) == ("runsc", {})
    assert check_request(KernelCreate(), settings) == ("runc", {})
    kernel = Kernel(id=1, runtime="runsc")
    assert kernel_model(kernel, 0, settings)["name"] == "python3-runsc"


def test_kernel_model() -> None:
    kernel = Kernel(id=1234567890123, state="busy")
    model = kernel_model(kernel, connections=2, settings=_settings())
    assert model["id"] == kernel.uuid and model["kernel_id"] == 1234567890123
    assert model["name"] == "python3"
    assert model["execution_state"] == "busy"
    assert model["connections"] == 2


def test_env_policy() -> None:
    settings = _settings(jupyter_allowed_env="GREETING")
    request = KernelCreate(env={"GREETING": "hi", "KERNEL_USERNAME": "ann", "KERNEL_WORKING_DIR": "/home/ann"})
    assert check_request(request, settings) == ("runc", {"GREETING": "hi"})
    assert check_request(KernelCreate(), settings) == ("runc", {})
    listed = _settings(jupyter_allowed_env="KERNEL_LANG")
    assert check_request(KernelCreate(env={"KERNEL_LANG": "x"}), listed) == ("runc", {"KERNEL_LANG": "x"})
    with pytest.raises(InvalidKernelRequest, match="not allowed: LD_PRELOAD, PATH \\(allowed: GREETING"):
        check_request(KernelCreate(env={"PATH": "/x", "LD_PRELOAD": "/y", "GREETING": "ok"}), settings)
    with pytest.raises(InvalidKernelRequest, match="allowed: none"):
        check_request(KernelCreate(env={"PATH": "/x"}), _settings())
    with pytest.raises(InvalidKernelRequest, match="NUL"):
        check_request(KernelCreate(env={"GREETING": "a\0b"}), settings)
    with pytest.raises(InvalidKernelRequest, match="Kernel spec 'ir' unknown \\(available: python3\\)"):
        check_request(KernelCreate(name="ir"), settings)


def test_allowed_env_setting_is_validated() -> None:
    assert _settings(jupyter_allowed_env=" A , B_1").jupyter_env_names == {"A", "B_1"}
    with pytest.raises(ValueError, match="jupyter_allowed_env"):
        _settings(jupyter_allowed_env="A,1B")
    with pytest.raises(ValueError, match="jupyter_allowed_env"):
        _settings(jupyter_allowed_env="A=1")
