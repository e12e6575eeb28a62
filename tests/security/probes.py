"""Probes a kernel runs to look for a way out, and what a sandboxed kernel must answer. Shared by the escape tests
(tests/security) and the Swarm tests (tests/swarm), which run them against a kernel on another node."""

from __future__ import annotations

import json
from typing import Any

#: How a connection attempt from a kernel must end: at once, never by waiting for a timeout.
FAILED_AT_ONCE = {
    "Network is unreachable",
    "No route to host",
    "Connection refused",
    "Cannot assign requested address",
    "Address family not supported by protocol",
}


def network_probe(targets: dict[str, tuple[str, int]]) -> str:
    """Kernel code printing, as JSON, how resolving a public name (``dns``) and connecting to each target ended."""
    return f"""
import socket, json
results = {{}}
try:
    socket.getaddrinfo("example.com", 443)
    results["dns"] = "resolved"
except OSError as e:
    results["dns"] = type(e).__name__
for name, address in {json.dumps(targets)}.items():
    address = tuple(address)
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(address)
        results[name] = "connected"
    except socket.timeout:
        results[name] = "timeout"
    except OSError as e:
        results[name] = e.strerror
    finally:
        s.close()
print(json.dumps(results))
"""


def assert_network_fails_fast(results: dict[str, str]) -> None:
    assert results.pop("dns") == "gaierror", results
    for name, outcome in results.items():
        assert outcome in FAILED_AT_ONCE, (name, outcome)


PRIVILEGE_PROBE = """
import ctypes, ctypes.util, json, os, socket, subprocess
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
def call(fn, *args):
    ctypes.set_errno(0)
    rc = fn(*args)
    return "ok" if rc == 0 else os.strerror(ctypes.get_errno())
r = {}
try:
    os.setuid(0); r["setuid"] = "ok"
except OSError as e:
    r["setuid"] = e.strerror
r["setuid_binaries"] = subprocess.run(
    "find / -xdev -perm /6000 -type f 2>/dev/null", shell=True, capture_output=True, text=True).stdout.split()
os.makedirs("/tmp/m", exist_ok=True)
r["mount"] = call(libc.mount, b"none", b"/tmp/m", b"tmpfs", 0, None)
r["unshare_user"] = call(libc.unshare, 0x10000000)
r["unshare_mount"] = call(libc.unshare, 0x00020000)
r["ptrace_init"] = call(libc.ptrace, 16, 1, None, None)  # PTRACE_ATTACH pid 1
for name, args in [("raw", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)),
                   ("packet", (17, socket.SOCK_RAW, 0))]:
    try:
        socket.socket(*args).close(); r[name] = "ok"
    except OSError as e:
        r[name] = e.strerror
status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
for field in ["CapEff", "CapPrm", "NoNewPrivs"]:
    r[field] = status.get(field, "absent").strip()
r["uid"] = os.getuid()
r["sudo"] = subprocess.run("sudo -n true", shell=True, capture_output=True).returncode
r["docker_sock"] = [p for p in ["/var/run/docker.sock", "/run/docker.sock"] if os.path.exists(p)]
print(json.dumps(r))
"""


def assert_no_privileges(r: dict[str, Any], gvisor: bool) -> None:
    """What ``PRIVILEGE_PROBE`` must print in a sandboxed kernel (under runc, or gVisor's own kernel)."""
    assert r["uid"] == 1000 and r["setuid"] == "Operation not permitted"
    assert r["setuid_binaries"] == [] and r["docker_sock"] == []
    assert r["CapEff"] == r["CapPrm"] == "0000000000000000"
    assert r["NoNewPrivs"] == ("absent" if gvisor else "1")  # gVisor's /proc does not show the flag
    assert r["mount"] == "Operation not permitted"
    # The kernel may trace processes of its own uid inside its own container (docker-init, run as the same uid
    # with no capabilities): that gives it nothing it does not have. Nothing else is visible to trace.
    assert r["ptrace_init"] in ("ok", "Operation not permitted")
    assert r["raw"] == "Operation not permitted" and r["packet"] in (
        "Operation not permitted",
        "Address family not supported by protocol",
    )
    assert r["sudo"] != 0
    if gvisor:
        # gVisor implements namespaces inside its own kernel: a new mount namespace there touches nothing of the
        # host (and mount itself still fails); a user namespace is refused (EINVAL).
        assert r["unshare_mount"] in ("ok", "Operation not permitted"), r
        assert r["unshare_user"] in ("ok", "Invalid argument", "Operation not permitted"), r
    else:
        assert r["unshare_mount"] == r["unshare_user"] == "Operation not permitted", r
