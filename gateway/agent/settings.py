"""The agent's own settings (``JUPYCELL_AGENT_*``). Kernel limits, image, runtimes and the kernels directory are
the gateway's ``JUPYCELL_*`` settings, read by the same ``gateway.settings.Settings`` so a kernel on a node is
made exactly as a local one."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JUPYCELL_AGENT_", extra="ignore")

    node_name: str = Field(default_factory=socket.gethostname, max_length=128, description="Name in replies.")
    bind_host: str = Field("0.0.0.0", description="Address the control, events and relay sockets listen on.")
    control_port: int = Field(7700, ge=1, le=65535, description="Control API (ROUTER, CurveZMQ).")
    events_port: int = Field(7701, ge=1, le=65535, description="Deaths and heartbeats (PUB, CurveZMQ).")
    relay_ports: str = Field(
        "20000-29999",
        pattern=r"^\d{1,5}-\d{1,5}$",
        description="Range the per-kernel relay ports are chosen from (5 per kernel).",
    )
    curve_secret_file: Path = Field(description="The agent's keypair: a zcert secret file.")
    allowed_clients: Path = Field(
        description="Gateway public keys allowed in: a zcert file or a directory of *.key files."
    )
    state_dir: Path = Field(
        Path("/var/lib/jupycell/agent"),
        description="Where each kernel's relay ports are kept, so a restarted agent opens the same ones.",
    )
    max_kernels: int = Field(64, ge=1, le=10000, description="Kernels (running or starting) on this node.")
    heartbeat_interval: float = Field(2.0, gt=0, le=60, description="Seconds between heartbeats on the events port.")
    max_concurrent_requests: int = Field(
        16, ge=1, le=256,
        description="Control requests handled at once, of each kind: short ones, and long ones (starts, fetches).",
    )  # fmt: skip

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @property
    def relay_port_range(self) -> tuple[int, int]:
        low, high = (int(p) for p in self.relay_ports.split("-"))
        if not 1024 <= low < high <= 65535 or high - low < 10:
            raise ValueError(f"relay_ports {self.relay_ports!r}: need 1024 <= low < high <= 65535, 10+ ports")
        return low, high
