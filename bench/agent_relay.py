"""``1+1`` through the node agent's CurveZMQ relay against the same kernel over its ipc sockets directly, in the
same run and interleaved; the agent's start time, its resident memory and threads with N kernels open.

Starts its own agent process on the local engine. Usage: ``python bench/agent_relay.py [runs=200] [kernels=10]``
(or ``make bench-agent``).
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_client import BlockingKernelClient  # noqa: E402

from gateway.adapters.docker.sockets import host_view, new_connection_info  # noqa: E402
from testing.harness import remove_instance_containers  # noqa: E402
from tests.support_agent import AgentKeys, AgentProcess, relayed_kernel, run, wait_ready  # noqa: E402


def round_trips(clients: dict[str, BlockingKernelClient], runs: int) -> dict[str, list[float]]:
    """``runs`` timed ``1+1`` per client, interleaved (one each in turn), so a load that comes and goes on a
    shared machine weighs on every client alike; 5 untimed rounds first."""
    times: dict[str, list[float]] = {name: [] for name in clients}
    for i in range(runs + 5):
        for name, client in clients.items():
            t0 = time.perf_counter()
            client.execute_interactive("1+1", timeout=30, output_hook=lambda m: None)
            if i >= 5:
                times[name].append((time.perf_counter() - t0) * 1000)
    return times


def status_of(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, v in (line.split(":", 1) for line in lines if ":" in line)}


def main(runs: int, kernels: int) -> None:
    with tempfile.TemporaryDirectory(prefix="jcb-") as root:
        agent = AgentProcess(Path(root), AgentKeys(Path(root) / "keys")).start()
        try:
            key = secrets.token_hex(32)
            t0 = time.perf_counter()
            started = run(lambda c: c.start(1, key), agent)
            relayed = relayed_kernel(agent, key, started.ports)
            assert wait_ready(relayed, 60)
            start_s = time.perf_counter() - t0
            direct = BlockingKernelClient()
            direct.load_connection_info(
                host_view({**new_connection_info(), "key": key}, agent.kernels_dir / agent.instance / "1")
            )
            direct.start_channels(hb=False)
            assert wait_ready(direct, 30)
            figures = round_trips({"direct ipc": direct, "agent relay": relayed}, runs)
            for kernel_id in range(2, kernels + 1):
                run(lambda c, k=kernel_id: c.start(k, secrets.token_hex(32)), agent)
            assert agent.process is not None
            proc = status_of(agent.process.pid)
            print(f"start through the agent until ready: {start_s * 1000:.0f} ms")
            print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
            print(f"{'1+1 round trip':<20} {'p50 ms':>8} {'p95 ms':>8}   ({runs} runs each, interleaved)")
            for name, times in figures.items():
                p95 = sorted(times)[int(len(times) * 0.95)]
                print(f"{name:<20} {statistics.median(times):8.2f} {p95:8.2f}")
            relay_p50 = statistics.median(figures["agent relay"])
            direct_p50 = statistics.median(figures["direct ipc"])
            print(f"relay minus direct, p50: {relay_p50 - direct_p50:+.2f} ms (target: within +1.5 ms)")
            print(f"agent with {kernels} kernels: RSS {proc['VmRSS']}, threads {proc['Threads']}")
            relayed.stop_channels()
            direct.stop_channels()
        finally:
            agent.stop()
            remove_instance_containers(agent.instance)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, int(sys.argv[2]) if len(sys.argv) > 2 else 10)
