import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.adapters.docker import SandboxSpec
from gateway.adapters.docker.sockets import host_view, new_connection_info, prepare_socket_dir
from gateway.kernels.registry import new_kernel_id
from gateway.settings import Settings


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYCELL_MEM_LIMIT_MB", "256")
    monkeypatch.setenv("JUPYCELL_RUNTIME", "runsc")
    settings = Settings()
    assert settings.mem_limit_mb == 256 and settings.runtime == "runsc"


@pytest.mark.parametrize(
    "field, value",
    [
        ("mem_limit_mb", 8),
        ("cpu_limit", 0),
        ("kernels_dir", "relative/dir"),
        ("kernels_dir", "/" + "x" * 100),
        ("instance", "bad name!"),
    ],
)
def test_settings_reject_unsafe_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})


def test_connection_info_is_fresh_and_ipc() -> None:
    first, second = new_connection_info(), new_connection_info()
    assert first["transport"] == "ipc" and first["signature_scheme"] == "hmac-sha256"
    assert len(first["key"]) == 64 and first["key"] != second["key"]
    assert host_view(first, Path("/srv/k/1"))["ip"] == "/srv/k/1/k"


def test_socket_dir_keeps_the_key_private(tmp_path: Path) -> None:
    info = new_connection_info()
    socket_dir = tmp_path / "kernels" / "123"
    prepare_socket_dir(socket_dir, info, kernel_uid=1000)
    assert json.loads((socket_dir / "kernel.json").read_text()) == info
    assert (socket_dir.parent.stat().st_mode & 0o777) == 0o700
    if os.geteuid() == 0:
        assert (socket_dir / "kernel.json").stat().st_uid == 1000
        assert ((socket_dir / "kernel.json").stat().st_mode & 0o077) == 0


def test_kernel_ids_are_random_json_safe_integers() -> None:
    ids = {new_kernel_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(10**9 <= i < 2**53 for i in ids)


def test_sandbox_spec_hardening() -> None:
    kwargs = SandboxSpec.from_settings(Settings(mem_limit_mb=300, cpu_limit=2, pids_limit=64)).run_kwargs()
    assert kwargs["network_mode"] == "none" and kwargs["read_only"] is True and kwargs["init"] is True
    assert kwargs["cap_drop"] == ["ALL"] and kwargs["security_opt"] == ["no-new-privileges"]
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == "300m"
    assert kwargs["nano_cpus"] == 2 * 10**9 and kwargs["pids_limit"] == 64
    assert kwargs["user"] == "1000:1000"
    assert kwargs["environment"]["OPENBLAS_NUM_THREADS"] == "2"
