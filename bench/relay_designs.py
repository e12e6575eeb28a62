"""The agent's relay design: ``1+1`` to one local ipykernel (no container, no Docker) directly over ipc, through
the former relay (``bench/relay_python_poller.py``: one Python poller thread for every kernel) and through
``gateway.agent.relay.Relays`` (libzmq's C proxy, a thread per channel), interleaved in one run, both relays with
CurveZMQ and ZAP.

Usage: ``python bench/relay_designs.py [runs=200]``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import zmq
from jupyter_client import BlockingKernelClient
from zmq.auth.thread import ThreadAuthenticator

from bench.agent_relay import round_trips  # noqa: E402
from bench.relay_python_poller import Relays as PollerRelays  # noqa: E402
from gateway.agent.client import CurveBlockingKernelClient, CurveKeys, kernel_client, relay_connection_info
from gateway.agent.keys import Keypair
from gateway.agent.relay import Relays
from tests.support_agent import wait_ready  # noqa: E402

work = tempfile.mkdtemp(prefix="rx-")
key = secrets.token_hex(32)
info = {
    "shell_port": 1,
    "iopub_port": 2,
    "stdin_port": 3,
    "control_port": 4,
    "hb_port": 5,
    "transport": "ipc",
    "ip": f"{work}/k",
    "key": key,
    "signature_scheme": "hmac-sha256",
    "kernel_name": "python3",
}
json.dump(info, open(f"{work}/kernel.json", "w"))
kernel = subprocess.Popen(
    [sys.executable, "-m", "ipykernel_launcher", "-f", f"{work}/kernel.json", "--HistoryManager.enabled=False"],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
apub, asec = zmq.curve_keypair()
gpub, gsec = zmq.curve_keypair()
ctx = zmq.Context.instance()
auth = ThreadAuthenticator(ctx)
auth.start()


class P:
    def callback(self, d, k):
        return k == gpub


auth.configure_curve_callback(domain="jupycell", credentials_provider=P())
py_relays = PollerRelays(
    ctx, Keypair(apub, asec), bind_host="127.0.0.1", port_range=(30000, 39999), max_message_bytes=64 * 2**20
)
py_ports = py_relays.open(1, f"{work}/k")
c_relays = Relays(  # the agent's: a C proxy thread per channel
    ctx, Keypair(apub, asec), bind_host="127.0.0.1", port_range=(40000, 49999), max_message_bytes=64 * 2**20
)
c_ports = c_relays.open(1, f"{work}/k")
keys = CurveKeys(apub, Keypair(gpub, gsec))
direct = BlockingKernelClient()
direct.load_connection_info(info)
direct.start_channels(hb=False)
py = kernel_client(CurveBlockingKernelClient, relay_connection_info("127.0.0.1", py_ports, key), keys)
py.start_channels(hb=False)
cp = kernel_client(CurveBlockingKernelClient, relay_connection_info("127.0.0.1", c_ports, key), keys)
cp.start_channels(hb=False)
for c in (direct, py, cp):
    assert wait_ready(c, 60)
runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
times = round_trips({"direct ipc": direct, "python poller relay": py, "agent relay (C proxies)": cp}, runs)
print(f"load {os.getloadavg()[0]:.1f}")
for name, t in times.items():
    print(f"{name:<22} p50 {statistics.median(t):6.2f} ms  p95 {sorted(t)[int(len(t) * 0.95)]:6.2f} ms")
kernel.kill()
shutil.rmtree(work, ignore_errors=True)
os._exit(0)  # daemon proxy threads hold their sockets: no clean context teardown
