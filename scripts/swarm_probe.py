"""Run inside a container on the stack's control network (scripts/swarm-check.sh does): for every agent that
Swarm DNS lists (tasks.agent), start a kernel through it, run ``1+1`` over its Curve relay, remove the kernel;
then check that a client with a key the agents do not allow gets no answer from any of them.

With ``--agent-restart`` (needs the node's docker.sock mounted): a kernel on every node is given some memory,
the agent service is force-updated (every agent task replaced, new addresses), and each kernel is then found
through the new agent, on the same relay ports, with its memory.

Keys come from the environment (Z85): JC_AGENT_PUBLIC, JC_GATEWAY_PUBLIC, JC_GATEWAY_SECRET. Prints one line per
check and exits non-zero if one fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
import time

import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient

from gateway.agent.client import AgentClient, CurveAsyncKernelClient, CurveKeys, kernel_client, relay_connection_info
from gateway.agent.keys import Keypair
from gateway.agent.protocol import PROTOCOL_VERSION
from gateway.errors import SandboxUnavailable


async def ready(client: CurveAsyncKernelClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg_id = client.kernel_info()
        try:
            while (await client.get_shell_msg(timeout=0.5))["parent_header"].get("msg_id") != msg_id:
                pass
            while True:
                msg = await client.get_iopub_msg(timeout=0.5)
                if msg["parent_header"].get("msg_id") == msg_id and msg["content"].get("execution_state") == "idle":
                    return
        except Exception:
            continue
    raise TimeoutError("kernel not ready")


def agent_addresses() -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo("tasks.agent", 7700, proto=socket.IPPROTO_TCP)})


async def evaluate(address: str, key: str, ports: dict[str, int], keys: CurveKeys, code: str) -> str:
    client = kernel_client(CurveAsyncKernelClient, relay_connection_info(address, ports, key), keys)
    client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=True)
    try:
        await ready(client, 60)
        msg_id = client.execute(code)
        while True:
            msg = await client.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] in ("execute_result", "error"):
                return str(msg["content"].get("data", {}).get("text/plain") or msg["content"].get("ename"))
    finally:
        client.stop_channels()


async def agent_restart(keys: CurveKeys) -> int:
    import docker

    kernels = []  # (node, kernel_id, key, ports)
    for address in agent_addresses():
        agent = AgentClient(address, 7700, keys, timeout=30)
        try:
            node = (await agent.capacity())["node"]
            kernel_id, key = secrets.randbelow(2**40) + 1, secrets.token_hex(32)
            started = await agent.start(kernel_id, key)
            print(f"{node}: {await evaluate(address, key, started.ports, keys, f'memory = {node!r}; memory')}")
            kernels.append((node, kernel_id, key, started.ports))
        finally:
            agent.close()
    before = set(agent_addresses())
    print(f"force-updating the agent service (agents at {', '.join(sorted(before))})")
    docker.from_env().services.get("jupycell_agent").force_update()
    deadline = time.monotonic() + 180
    by_node: dict[str, str] = {}
    while time.monotonic() < deadline and len(by_node) < len(kernels):
        for address in set(agent_addresses()) - before:
            agent = AgentClient(address, 7700, keys, timeout=3)
            try:
                by_node[(await agent.capacity())["node"]] = address
            except SandboxUnavailable:
                pass
            finally:
                agent.close()
        await asyncio.sleep(1)
    failed = 0
    for node, kernel_id, key, ports in kernels:
        address = by_node.get(node)
        if address is None:
            print(f"{node}: FAILED no new agent")
            failed += 1
            continue
        agent = AgentClient(address, 7700, keys, timeout=30)
        try:
            listed = {k["kernel_id"]: k for k in await agent.list()}
            same_ports = listed.get(kernel_id, {}).get("ports") == ports
            memory = await evaluate(address, key, ports, keys, "memory")
            ok = same_ports and memory == repr(node)
            failed += not ok
            print(f"{node}: new agent {address}, same relay ports: {same_ports}, memory: {memory}")
            await agent.remove(kernel_id)
        finally:
            agent.close()
    return 1 if failed else 0


async def one_plus_one(address: str, keys: CurveKeys) -> str:
    agent = AgentClient(address, 7700, keys, timeout=30)
    try:
        node = (await agent.capacity())["node"]
        kernel_id, key = secrets.randbelow(2**40) + 1, secrets.token_hex(32)
        started = await agent.start(kernel_id, key)
        try:
            client = kernel_client(CurveAsyncKernelClient, agent.connection_info(key, started.ports), keys)
            client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=True)
            try:
                await ready(client, 60)
                await agent.seal(kernel_id)
                msg_id = client.execute("1+1")
                while True:
                    msg = await client.get_iopub_msg(timeout=30)
                    if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_result":
                        result = f"{node}: 1+1 = {msg['content']['data']['text/plain']}"
                        break
            finally:
                client.stop_channels()
            info = agent.connection_info(key, started.ports)
            intruder = CurveKeys(keys.server_public, Keypair(*zmq.curve_keypair()))
            if not await relay_answers(kernel_client(CurveAsyncKernelClient, info, keys)):  # the probe works
                raise RuntimeError(f"the gateways' own key got no answer from the relays of {node}")
            for name, make in (
                ("a key not on the allow-list", lambda: kernel_client(CurveAsyncKernelClient, info, intruder)),
                ("a plaintext client", lambda: plaintext_client(info)),
            ):
                answered = await relay_answers(make())
                print(f"{node}: {name} gets {'AN ANSWER (FAILED)' if answered else 'no answer'} from the relays")
                if answered:
                    raise RuntimeError(f"{name} got an answer from the relays of {node}")
            return result
        finally:
            await agent.remove(kernel_id)
    finally:
        agent.close()


def plaintext_client(info: dict[str, object]) -> AsyncKernelClient:
    """jupyter_client's own client, no Curve: what any container on the network could try."""
    client = AsyncKernelClient()
    client.load_connection_info(info)
    return client


async def relay_answers(client: AsyncKernelClient) -> bool:
    """Whether the kernel behind the relays answers this client (a kernel_info request, 3 s)."""
    client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    try:
        client.kernel_info()
        await client.get_shell_msg(timeout=3)
        return True
    except Exception:
        return False
    finally:
        client.stop_channels()


async def plaintext_refused(address: str) -> bool:
    """A control request without Curve gets no answer."""
    context = zmq.asyncio.Context.instance()
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(f"tcp://{address}:7700")
    try:
        await sock.send(json.dumps({"v": PROTOCOL_VERSION, "id": "probe", "op": "ping"}).encode())
        return not await sock.poll(3000)
    finally:
        sock.close()


async def refused(address: str, keys: CurveKeys) -> bool:
    agent = AgentClient(address, 7700, keys, timeout=3)
    try:
        await agent.ping()
        return False
    except SandboxUnavailable:
        return True
    finally:
        agent.close()


async def main() -> int:
    keys = CurveKeys(
        os.environ["JC_AGENT_PUBLIC"].encode(),
        Keypair(os.environ["JC_GATEWAY_PUBLIC"].encode(), os.environ["JC_GATEWAY_SECRET"].encode()),
    )
    if "--agent-restart" in sys.argv:
        return await agent_restart(keys)
    addresses = agent_addresses()
    print(f"agents (tasks.agent): {', '.join(addresses)}")
    failed = 0
    for address in addresses:
        try:
            print(f"{address}: {await one_plus_one(address, keys)}")
        except Exception as error:
            failed += 1
            print(f"{address}: FAILED {type(error).__name__}: {error}")
    public, secret = zmq.curve_keypair()
    intruder = CurveKeys(keys.server_public, Keypair(public, secret))
    for address in addresses:
        ok = await refused(address, intruder)
        failed += not ok
        print(f"{address}: a key not on the allow-list gets {'no answer' if ok else 'AN ANSWER (FAILED)'}")
        ok = await plaintext_refused(address)
        failed += not ok
        print(f"{address}: a plaintext client gets {'no answer' if ok else 'AN ANSWER (FAILED)'}")
    return 1 if failed or not addresses else 0


sys.exit(asyncio.run(main()))
