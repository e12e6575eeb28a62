"""Latency of Jupyter's protocol on JupyCell: `1+1` over the kernel websocket, directly and through jupyter_server.

Starts its own gateway (real containers) and an unmodified `jupyter server --gateway-url=<gateway>`, then measures
in the same run:

- ``POST /api/kernels`` until the first result of ``1+1`` arrives over a new websocket (cold kernel start);
- ``1+1`` round trips (execute_request sent -> execute_reply and idle status received) over JupyCell's websocket,
  legacy JSON framing and v1 binary framing;
- the same through jupyter_server's websocket (client -> jupyter_server -> JupyCell -> kernel), as JupyterLab does;
- the seed API's ``POST /cell`` run of ``1+1`` on the same kernel, for comparison.

Usage: ``python bench/jupyter_websocket.py [--runs 200]`` (or ``make bench-jupyter``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testing.harness import Api, GatewayProcess, remove_instance_containers  # noqa: E402
from testing.jupyter import JupyterServer, KernelWebsocket, ws_url  # noqa: E402


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"| {name} | {statistics.median(ordered) * 1000:.1f} | {p90 * 1000:.1f} | {len(ordered)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="jc-bench-") as root:
        gateway = GatewayProcess(Path(root) / "k", audit_log="off").start()
        jupyter = JupyterServer(gateway.url).start()
        api = Api(gateway.url)
        try:
            http = httpx.Client(base_url=gateway.url, timeout=180)

            def cold_start() -> None:
                model = http.post("/api/kernels").json()
                with KernelWebsocket(f"{ws_url(gateway.url)}/api/kernels/{model['id']}/channels") as ws:
                    assert ws.execute("1+1").reply["status"] == "ok"
                http.delete(f"/api/kernels/{model['id']}")

            rows = [row("POST /api/kernels -> first `1+1` result (cold container)", timed(cold_start, args.starts))]

            jhttp = httpx.Client(base_url=jupyter.url, headers=jupyter.headers, timeout=180)
            model = jhttp.post("/api/kernels").json()  # started through jupyter_server, so it knows the kernel
            runs = args.runs
            one_plus_one = "1+1"
            channels = f"{ws_url(gateway.url)}/api/kernels/{model['id']}/channels"
            with KernelWebsocket(channels) as ws:
                samples = timed(lambda: ws.execute(one_plus_one), runs)
                rows.append(row("`1+1` over JupyCell's websocket, legacy JSON", samples))
            with KernelWebsocket(channels, v1=True) as ws:
                samples = timed(lambda: ws.execute(one_plus_one), runs)
                rows.append(row("`1+1` over JupyCell's websocket, v1 binary", samples))
            proxied = f"{ws_url(jupyter.url)}/api/kernels/{model['id']}/channels"
            with KernelWebsocket(proxied, headers=jupyter.headers) as ws:
                ws.wait_ready()
                samples = timed(lambda: ws.execute(one_plus_one), runs)
                rows.append(row("`1+1` through jupyter_server's websocket", samples))
            seed_id = http.get(f"/api/kernels/{model['id']}").json()["kernel_id"]
            api.add(seed_id, 1, one_plus_one)
            rows.append(row("`1+1` through the seed API (POST /cell run)", timed(lambda: api.run(seed_id, 1), runs)))
            jhttp.delete(f"/api/kernels/{model['id']}")
        finally:
            api.close()
            jupyter.stop()
            gateway.stop()
            remove_instance_containers(gateway.instance)

    print("| figure | p50 ms | p90 ms | n |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    print("\nReference (design notes, same machine type): Jupyter Kernel Gateway 3.0.1 websocket `1+1` p50 ~45 ms;")
    print("its POST /api/kernels to first result ~0.8 s (local process kernel, no container).")


if __name__ == "__main__":
    main()
