"""The fetch helper's container: network for the fetch, every other privilege taken away."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.packages.fetcher import CONTAINER_CA, FetchJob, WheelFetcher


def test_the_helper_container_is_locked_down(tmp_path: Path) -> None:
    fetcher = WheelFetcher(
        instance="inst", uid=1000, runtime="runc", network="bridge", mem_limit_mb=512, timeout=60,
        ca_bundle=tmp_path / "ca.pem",
    )  # fmt: skip
    job = FetchJob("img:tag", ["tabulate"], "https://index.example/simple", 1234, ["evil"], tmp_path / "out")
    kwargs = fetcher.run_kwargs(job, "jupycell-inst-fetch-1")
    assert kwargs["network_mode"] == "bridge" and kwargs["runtime"] == "runc"
    assert kwargs["cap_drop"] == ["ALL"] and kwargs["security_opt"] == ["no-new-privileges"]
    assert kwargs["read_only"] is True and kwargs["user"] == "1000:1000"
    assert kwargs["mem_limit"] == "512m" and kwargs["pids_limit"] == 128 and kwargs["nano_cpus"] == 10**9
    assert kwargs["volumes"] == {
        str(tmp_path / "out"): {"bind": "/out", "mode": "rw"},
        str(tmp_path / "ca.pem"): {"bind": CONTAINER_CA, "mode": "ro"},
    }
    assert kwargs["labels"]["jupycell.instance"] == "inst" and kwargs["labels"]["jupycell.role"] == "package-fetch"
    assert kwargs["entrypoint"][:2] == ["python", "-c"] and "def run(" in kwargs["entrypoint"][2]
    arguments = json.loads(kwargs["command"][0])
    assert arguments["requirements"] == ["tabulate"] and arguments["max_bytes"] == 1234
    assert arguments["deny"] == ["evil"] and arguments["index_url"] == "https://index.example/simple"
    assert kwargs["environment"]["PIP_CONFIG_FILE"] == "/dev/null"
    fetcher.close()
