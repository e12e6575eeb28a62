"""Typed settings, read from ``JUPYCELL_*`` environment variables and validated at start-up."""

from __future__ import annotations

import secrets
import socket
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Unix socket paths are limited to 107 bytes; a kernel's sockets are <kernels_dir>/<instance>/<kernel_id>/k-<port>.
_MAX_SOCKET_PATH = 107
_KERNEL_PART = len("/9007199254740991/k-5")


class Settings(BaseSettings):
    """Everything an operator can tune. Defaults are safe for a shared machine."""

    model_config = SettingsConfigDict(env_prefix="JUPYCELL_", extra="ignore")

    # --- where things are -------------------------------------------------------------------------------------
    instance: str = Field(
        "default",
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}$",
        description="Name of this gateway; its containers carry it as a label, so gateways sharing an engine "
        "never touch each other's kernels.",
    )
    kernels_dir: Path = Field(
        Path("/var/lib/jupycell/kernels"),
        description="Host directory holding one socket directory per kernel. When the gateway runs in a "
        "container, mount it at the same path inside and out: the engine resolves it on the host.",
    )
    data_dir: Path = Field(
        Path("/var/lib/jupycell/data"),
        description="Directory of the SQLite database (kernels, cells, runs, HMAC keys): created 0700, file 0600. "
        "Unused when database_url is set.",
    )
    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of a PostgreSQL database (postgresql://user:pass@host/db, driver psycopg 3) "
        "to use instead of the SQLite file in data_dir.",
    )
    on_stop: Literal["shutdown", "keep"] = Field(
        "shutdown",
        description="What a clean stop does with the kernels: 'shutdown' removes their containers (cells and "
        "outputs stay in the database; the kernels come back dead, ready for a restart); 'keep' leaves them "
        "running so the next start re-attaches them with their memory intact (compose uses 'keep').",
    )
    sandbox_image: str = "jupycell-sandbox:latest"
    runtime: str = Field("runc", description="Container runtime for kernels: 'runc', or 'runsc' for gVisor.")
    allowed_runtimes: str = Field(
        "",
        pattern=r"^[a-zA-Z0-9_.,\s-]*$",
        description='Comma-separated runtimes a caller may pick per kernel (POST /start {"runtime": ...}); '
        "empty: only `runtime`.",
    )
    allowed_images: str = Field(  # issue 13: custom images per kernel
        "",
        pattern=r"^[a-zA-Z0-9_.,:/@\s-]*$",
        description='Comma-separated images a caller may pick per kernel (POST /start {"image": ...}, or a Jupyter '
        "kernel spec per image) besides sandbox_image; each must exist when the gateway starts (`make images`, "
        "docs/packages.md).",
    )
    docker_host: str | None = Field(None, description="Docker engine URL; default: the environment's (DOCKER_HOST).")

    # --- where kernels run: this host's engine, or node agents (issue 11, docs/swarm.md) ----------------------
    backend: Literal["local", "agents"] = Field(
        "local",
        description="'local': kernel containers on this host's Docker engine. 'agents': on the nodes of node "
        "agents (python -m gateway.agent), reached over CurveZMQ; needs PostgreSQL (database_url).",
    )
    agents: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_.:,\[\]\s-]*$",
        description="Where the agents are (backend=agents): a DNS name resolved to all its addresses, re-resolved "
        "every agents_refresh_interval (Swarm: tasks.agent), or a comma-separated list of host:port. The port is "
        "the agent's control port (default 7700).",
    )
    gateway_curve_secret_file: Path | None = Field(
        None, description="The gateway's CurveZMQ keypair (a zcert secret file), allowed in by the agents."
    )
    agent_curve_public_file: Path | None = Field(
        None, description="The agents' CurveZMQ public key (a zcert file): the only server key the gateway accepts."
    )
    max_kernels_per_node: int = Field(
        32, ge=1, le=10000, description="Kernels (running or starting) the gateway places on one node at most."
    )
    agents_refresh_interval: float = Field(
        5.0, gt=0, le=300, description="Seconds between look-ups of the agents' addresses and capacity reports."
    )
    agents_lost_after: float = Field(
        30.0,
        gt=0,
        description="Seconds an agent may stay silent (no heartbeat, no answer to a ping) before its node is "
        "declared lost and its kernels dead. Longer than an agent restart takes.",
    )
    agents_request_timeout: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Seconds a control request to an agent may take (a start gets the kernel start timeout).",
    )

    # --- several replicas on one PostgreSQL (issue 11, see docs/replicas.md) ------------------------------------
    replica_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()[:40]}-{secrets.token_hex(4)}",
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$",
        description="Name of this gateway process among the replicas of the instance (PostgreSQL only); default: "
        "the host name and a random suffix, new at every start.",
    )
    replica_url: str = Field(
        "",
        pattern=r"^(https?://[^\s/]+)?$",
        description="Base URL other replicas reach this one at (http://host:port, no path), to forward requests "
        "for the kernels it serves; empty: http://<host name>:8000.",
    )
    lease_seconds: float = Field(
        9.0,
        ge=2,
        le=300,
        description="A replica renews its lease every third of this; a replica silent for this long is taken for "
        "dead and its kernels are adopted by another replica (memory kept).",
    )
    replica_listing_timeout: float = Field(
        3.0,
        gt=0,
        le=60,
        description="Seconds a listing of kernels waits for each other replica's own; a replica that does not answer "
        "in time has its kernels listed as last stored.",
    )

    # --- limits of every kernel container --------------------------------------------------------------------
    mem_limit_mb: int = Field(1024, ge=64, description="Memory limit (RAM + tmpfs), no swap beyond it.")
    cpu_limit: float = Field(1.0, gt=0, le=64, description="CPUs the kernel may use.")
    pids_limit: int = Field(256, ge=16, description="Processes and threads in the container.")
    tmp_size_mb: int = Field(256, ge=1, description="Size of the /tmp scratch tmpfs.")
    work_size_mb: int = Field(512, ge=1, description="Size of the writable working directory /work (tmpfs).")
    shm_size_mb: int = Field(64, ge=1, description="Size of /dev/shm.")
    nofile_limit: int = Field(1024, ge=64, description="Open file descriptors per process.")
    log_max_size_kb: int = Field(1024, ge=16, description="Cap on the container's own log (raw fd 1/2 writes).")
    kernel_uid: int = Field(1000, ge=1, description="Non-root uid the kernel runs as.")

    # --- warm pool ----------------------------------------------------------------------------------------
    pool_size: int = Field(
        2,
        ge=0,
        le=1000,
        description="Kernels kept started and ready for POST /start (each is an idle container); on the agents "
        "backend, on each node. 0 turns the pool off and every start is cold.",
    )
    pool_parallel_starts: int = Field(2, ge=1, le=64, description="How many pool kernels start at once on refill.")

    # --- several replicas on one PostgreSQL (issue 11: shared admission and pool, the leader) ---------------------
    coordination_interval: float = Field(
        1.0,
        gt=0,
        le=60,
        description="With PostgreSQL: seconds between a replica's tries to become the leader (the one replica that "
        "fills the shared warm pool and sweeps orphans; another takes over within this long after it dies), and "
        "between its looks at the shared pool.",
    )

    # --- timing -------------------------------------------------------------------------------------------
    kernel_start_timeout: float = Field(60.0, gt=0, description="Seconds for a new kernel to answer.")
    run_timeout: float = Field(300.0, gt=0, description="Default deadline of one cell run, in seconds.")
    interrupt_grace: float = Field(3.0, gt=0, description="Seconds a kernel gets to stop after an interrupt.")
    reattach_timeout: float = Field(
        20.0, gt=0, description="Seconds a running kernel gets to answer when a restarted gateway re-attaches it."
    )
    output_flush_interval: float = Field(
        0.5, gt=0, description="While a cell runs, its outputs so far are written to the database this often."
    )

    # --- outputs ------------------------------------------------------------------------------------------
    max_output_bytes: int = Field(1_000_000, ge=1024, description="Per-run cap on text kept from outputs.")
    max_outputs: int = Field(1000, ge=1, description="Per-run cap on the number of output items kept.")

    max_image_bytes: int = Field(
        500_000, ge=1024, description="Largest image (as sent, base64) kept in an output; bigger ones become a marker."
    )

    # --- lifecycle ----------------------------------------------------------------------------------------
    idle_timeout: float = Field(0, ge=0, description="Shut down kernels idle this many seconds (0: never).")
    max_lifetime: float = Field(0, ge=0, description="Shut down kernels this many seconds after start (0: never).")
    cull_interval: float = Field(30.0, gt=0, description="Seconds between checks for idle or expired kernels.")
    dead_kernel_ttl: float = Field(
        86400.0,
        ge=0,
        description="Seconds a dead kernel's record (and cells, for export) is kept before it is removed (0: kept "
        "until restarted or shut down). Dead kernels never count against the kernel limits.",
    )

    # --- files --------------------------------------------------------------------------------------------
    max_file_mb: float = Field(64, gt=0, description="Largest file uploaded to or downloaded from a kernel.")

    max_message_mb: int = Field(64, ge=1, description="Largest message accepted from a kernel's sockets.")

    # --- API security (see gateway/security) -----------------------------------------------------------------
    api_keys: SecretStr | None = Field(
        None,
        description="API keys, comma- or newline-separated `id:secret` entries (`id:secret:admin` for an admin "
        "key). With none configured (here or in api_keys_file) the API is open: bind it to localhost only.",
    )
    api_keys_file: Path | None = Field(None, description="A file of API keys, one `id:secret[:admin]` per line.")
    max_request_bytes: int = Field(2 * 2**20, ge=1024, description="Largest HTTP request body accepted (413).")
    max_code_bytes: int = Field(1 * 2**20, ge=16, description="Largest cell code accepted (413).")
    max_cells: int = Field(
        1000,
        ge=1,
        description="Cells one kernel may hold (409 past it): POST /cell add and notebook imports are refused.",
    )
    rate_limit_per_second: float = Field(
        20.0,
        ge=0,
        description="Sustained requests per second per API key (429 past it); 0: no limit. "
        "Not applied when no keys are configured.",
    )
    rate_limit_burst: int = Field(200, ge=1, description="Requests a key may make at once before the rate applies.")
    max_kernels: int = Field(256, ge=1, description="Live kernels of this gateway, all keys together (429).")
    max_kernels_per_key: int = Field(32, ge=1, description="Live kernels per API key (429). Not applied without keys.")
    cors_origins: str = Field("", description="Comma-separated origins allowed by CORS; empty: CORS off.")
    # issue 14: metrics and read-only view links
    metrics_token: SecretStr | None = Field(
        None,
        description="A token that alone opens GET /metrics (`Authorization: Bearer <token>`), for a Prometheus "
        "scraper that should hold no API key. Unset: /metrics is protected like the API (any key; open if none).",
    )
    cgroup_root: Path = Field(
        Path("/sys/fs/cgroup"), description="Where the kernels' cgroups are read (run usage, /kernels/{id}/stats)."
    )
    view_token_max_seconds: int = Field(
        7 * 24 * 3600, ge=60, description="Longest lifetime of a read-only view link (POST /kernels/{id}/view-tokens)."
    )
    audit_log: str = Field(
        "-", description="Where the audit log goes, one JSON line per action: a file path, '-' for stderr, or 'off'."
    )

    # --- Jupyter's remote-kernel protocol (/api/kernels..., see gateway/jupyter) ------------------------------
    jupyter_allowed_env: str = Field(
        "",
        pattern=r"^\s*([A-Za-z_][A-Za-z0-9_]*\s*(,\s*[A-Za-z_][A-Za-z0-9_]*\s*)*)?$",
        description="Comma-separated environment variable names a client may set for a new kernel "
        '(POST /api/kernels {"env": ...}); they are set in the kernel\'s container when it starts. Other names '
        "are refused (400), except KERNEL_* hints (e.g. KERNEL_USERNAME), which are ignored unless listed.",
    )
    jupyter_allow_stdin: bool = Field(
        False,
        description="Relay the stdin channel over the kernel websocket (input() then asks the client). Off: "
        "execute requests are sent with allow_stdin=false and input() fails at once.",
    )

    # --- MCP server at /mcp (issue 12, see docs/mcp.md) --------------------------------------------------------
    mcp_enabled: bool = Field(True, description="Serve the MCP server at /mcp (streamable HTTP).")
    mcp_allowed_hosts: str = Field(
        "127.0.0.1:*,localhost:*,[::1]:*",
        description="Comma-separated Host header values /mcp answers (DNS-rebinding protection; 'name:*' allows any "
        "port); '*' turns the check off (only behind a proxy that checks Host itself).",
    )
    mcp_allowed_origins: str = Field(
        "",
        description="Comma-separated Origin values browsers may call /mcp from; empty: http:// and https:// of each "
        "allowed host. Requests without an Origin header (non-browser clients) are always accepted.",
    )
    mcp_max_text_chars: int = Field(
        20_000, ge=500, description="Text a tool result carries at most (the start and the end are kept)."
    )
    mcp_max_image_side: int = Field(1024, ge=64, description="Images in tool results are downscaled to this size (px).")
    mcp_max_image_bytes: int = Field(400_000, ge=1024, description="Largest image (encoded) in a tool result.")
    mcp_max_images: int = Field(4, ge=0, description="Images per tool result; further ones become a text marker.")
    mcp_images: bool = Field(True, description="Return images as image content; false: a text marker instead.")
    mcp_progress_interval: float = Field(
        5.0, gt=0, description="Seconds between progress notifications while a tool's run goes on."
    )

    @field_validator("kernels_dir", "data_dir")
    @classmethod
    def _absolute(cls, value: Path, info: ValidationInfo) -> Path:
        if not value.is_absolute():
            why = " (the Docker engine resolves it on the host)" if info.field_name == "kernels_dir" else ""
            raise ValueError(f"must be an absolute path{why}")
        return value

    @model_validator(mode="after")
    def _socket_paths_fit(self) -> Settings:
        longest = len(str(self.instance_dir)) + _KERNEL_PART
        if longest > _MAX_SOCKET_PATH:
            raise ValueError(
                f"kernels_dir is too long: socket paths would be {longest} bytes, the limit is {_MAX_SOCKET_PATH}"
            )
        return self

    @model_validator(mode="after")
    def _agents_backend_complete(self) -> Settings:
        if self.backend != "agents":
            return self
        url = self.database_url.get_secret_value() if self.database_url else ""
        if not url.startswith("postgresql"):
            raise ValueError(
                "backend=agents needs PostgreSQL: set JUPYCELL_DATABASE_URL to a postgresql:// URL (the SQLite file "
                "is for the local backend only)"
            )
        missing = [
            name
            for name, value in (
                ("JUPYCELL_AGENTS", self.agents.strip()),
                ("JUPYCELL_GATEWAY_CURVE_SECRET_FILE", self.gateway_curve_secret_file),
                ("JUPYCELL_AGENT_CURVE_PUBLIC_FILE", self.agent_curve_public_file),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"backend=agents needs {', '.join(missing)}")
        return self

    @property
    def runtimes(self) -> tuple[str, ...]:
        """Runtimes a kernel may use; the deployment's default first."""
        extra = [r.strip() for r in self.allowed_runtimes.split(",") if r.strip()]
        return tuple(dict.fromkeys([self.runtime, *extra]))

    @property
    def images(self) -> tuple[str, ...]:
        """Images a kernel may run; the deployment's default (``sandbox_image``) first."""
        extra = [i.strip() for i in self.allowed_images.split(",") if i.strip()]
        return tuple(dict.fromkeys([self.sandbox_image, *extra]))

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def mcp_host_list(self) -> list[str]:
        return [h.strip() for h in self.mcp_allowed_hosts.split(",") if h.strip()]

    @property
    def mcp_origin_list(self) -> list[str]:
        """The allowed origins: as configured, or http(s):// of each allowed host."""
        configured = [o.strip() for o in self.mcp_allowed_origins.split(",") if o.strip()]
        return configured or [f"{scheme}://{host}" for host in self.mcp_host_list for scheme in ("http", "https")]

    @property
    def jupyter_env_names(self) -> frozenset[str]:
        """The environment variable names a Jupyter client may set (``jupyter_allowed_env``)."""
        return frozenset(name.strip() for name in self.jupyter_allowed_env.split(",") if name.strip())

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 2**20)

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 2**20

    @property
    def replicated(self) -> bool:
        """Several replicas may share the database (PostgreSQL); SQLite serves one gateway process."""
        return self.database_url is not None and not self.database_url.get_secret_value().startswith("sqlite")

    @property
    def own_url(self) -> str:
        """Where other replicas reach this one (``replica_url``, or the host name on the image's port)."""
        return self.replica_url or f"http://{socket.gethostname()}:8000"

    @property
    def instance_dir(self) -> Path:
        """This gateway's own part of the kernels directory: one socket directory per kernel below it."""
        return self.kernels_dir / self.instance


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
