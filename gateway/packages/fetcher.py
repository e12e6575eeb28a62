"""The fetch helper: one throwaway container per fetch, the only one with network, that downloads wheels.

It runs the kernel's own image (so wheels fit the kernel's exact Python and platform) with ``helper_script`` as
its program and nothing else: no capabilities, ``no-new-privileges``, non-root, read-only root, a small tmpfs,
memory/CPU/pids limits, and a deadline after which it is killed. It writes into one fresh directory of the cache
(``/out``); the CA bundle is mounted read-only. Every docker-py call runs in this module's own threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, ImageNotFound, NotFound
from docker.types import LogConfig, Ulimit
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout

from gateway.packages.errors import PackageFetchFailed

log = logging.getLogger(__name__)

HELPER_SOURCE = (Path(__file__).resolve().parent / "helper_script.py").read_text()
CONTAINER_OUT = "/out"
CONTAINER_CA = "/etc/jupycell/ca.pem"
LABEL_ROLE = "jupycell.role"
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


@dataclass(frozen=True)
class FetchJob:
    """What one helper run fetches, and how."""

    image: str
    requirements: list[str]
    index_url: str
    max_bytes: int
    deny: list[str]
    out: Path  # host directory mounted at /out


class WheelFetcher:
    """Runs fetch helper containers on the engine the kernels use."""

    def __init__(
        self,
        *,
        instance: str,
        uid: int,
        runtime: str,
        network: str,
        mem_limit_mb: int,
        timeout: float,
        ca_bundle: Path | None,
        docker_host: str | None = None,
    ) -> None:
        self.instance, self.uid, self.runtime, self.network = instance, uid, runtime, network
        self.mem_limit_mb, self.timeout, self.ca_bundle = mem_limit_mb, timeout, ca_bundle
        self._docker_host = docker_host
        self._client: docker.DockerClient | None = None
        self._threads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="package-fetch")

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            if self._docker_host:
                self._client = docker.DockerClient(base_url=self._docker_host, timeout=self.timeout + 30)
            else:
                self._client = docker.from_env(timeout=self.timeout + 30)
        return self._client

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    async def image_id(self, image: str) -> str:
        """The image's id: resolutions are cached per image (its Python and preinstalled packages)."""
        try:
            return str(await self._call(lambda: self.client.images.get(image).id))
        except (ImageNotFound, NotFound):
            raise PackageFetchFailed(f"The kernel image {image!r} was not found on the engine.") from None
        except DockerException as error:
            raise PackageFetchFailed(f"The Docker engine did not answer: {error}") from None

    async def container_image(self, name: str) -> str:
        """The id of the image container ``name`` runs (a kernel's, on an agent's node: wheels must fit it)."""
        try:
            return str(await self._call(lambda: self.client.containers.get(name).attrs["Image"]))
        except NotFound:
            raise PackageFetchFailed(f"The kernel's container {name!r} was not found on the engine.") from None
        except (DockerException, KeyError, TypeError) as error:
            raise PackageFetchFailed(f"The Docker engine did not answer: {error}") from None

    async def run(self, job: FetchJob) -> None:
        """Run the helper to its end (or its deadline); its result is in ``job.out/result.json``."""
        await self._call(self._run_blocking, job)

    def run_kwargs(self, job: FetchJob, name: str) -> dict[str, Any]:
        """docker-py ``containers.run`` arguments: network for the fetch, everything else taken away."""
        arguments = {
            "requirements": job.requirements,
            "index_url": job.index_url,
            "max_bytes": job.max_bytes,
            "deny": job.deny,
            "timeout": 20,
        }
        volumes = {str(job.out): {"bind": CONTAINER_OUT, "mode": "rw"}}
        if self.ca_bundle is not None:
            volumes[str(self.ca_bundle)] = {"bind": CONTAINER_CA, "mode": "ro"}
        environment = {
            "HOME": "/tmp",
            "PIP_CONFIG_FILE": os.devnull,
            "PYTHONDONTWRITEBYTECODE": "1",
            "JUPYCELL_PIP_HINT": "0",
        }
        environment |= {name: os.environ[name] for name in _PROXY_VARIABLES if name in os.environ}
        return dict(
            image=job.image,
            entrypoint=["python", "-c", HELPER_SOURCE],
            command=[json.dumps(arguments)],
            name=name,
            labels={
                "jupycell.managed": "true",
                "jupycell.instance": self.instance,
                LABEL_ROLE: "package-fetch",
            },
            runtime=self.runtime,
            network_mode=self.network,
            user=f"{self.uid}:{self.uid}",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=256m"},
            mem_limit=f"{self.mem_limit_mb}m",
            memswap_limit=f"{self.mem_limit_mb}m",
            nano_cpus=int(1e9),
            pids_limit=128,
            ulimits=[Ulimit(name="nofile", soft=1024, hard=1024)],
            init=True,
            ipc_mode="private",
            log_config=LogConfig(type="json-file", config={"max-size": "256k", "max-file": "1"}),
            environment=environment,
            volumes=volumes,
            detach=True,
        )

    def _run_blocking(self, job: FetchJob) -> None:
        name = f"jupycell-{self.instance}-fetch-{secrets.token_hex(6)}"
        try:
            container = self.client.containers.run(**self.run_kwargs(job, name))
        except DockerException as error:
            raise PackageFetchFailed(f"The package fetch helper could not start: {error}") from None
        try:
            try:
                status = container.wait(timeout=self.timeout)
            except (ReadTimeout, RequestsConnectionError):
                raise PackageFetchFailed(
                    f"Fetching took longer than {self.timeout:g} s (JUPYCELL_PACKAGE_FETCH_TIMEOUT) and was stopped."
                ) from None
            except DockerException as error:
                raise PackageFetchFailed(f"The Docker engine failed during the fetch: {error}") from None
            if status.get("StatusCode") != 0 and not (job.out / "result.json").exists():
                try:
                    logs = container.logs(tail=20).decode(errors="replace")
                except DockerException:
                    logs = ""
                oom = status.get("StatusCode") == 137
                why = "ran out of memory (JUPYCELL_PACKAGE_FETCH_MEM_MB)" if oom else f"failed: {logs[-1500:]}"
                raise PackageFetchFailed(f"The package fetch helper {why}")
        finally:
            try:
                container.remove(force=True)
            except (NotFound, DockerException) as error:
                log.debug("fetch helper %s: removal: %s", name, error)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()
