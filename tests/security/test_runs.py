"""Runs that never end, wait for input, or drown the gateway in output; and a control case that must just work."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from testing.harness import Api, GatewayProcess, stdout_of
from tests.security.conftest import GVISOR, LIMITS, json_out


def test_ignored_interrupt_and_endless_loop_end_at_the_deadline(api: Api, victim: int) -> None:
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
    result = api.execute(victim, code, timeout=2)
    assert result["status"] == "timeout" and result["kernel_state_kept"] is False, result
    assert "replaced" in result["detail"]
    assert stdout_of(api.execute(victim, "print('next run works')")) == "next run works\n"


def test_sleep_forever_is_interrupted_at_the_deadline(api: Api, victim: int) -> None:
    api.execute(victim, "kept = 'state'")
    result = api.execute(victim, "import time\ntime.sleep(10**8)", timeout=2)
    assert result["status"] == "timeout" and result["kernel_state_kept"] is True, result
    assert stdout_of(api.execute(victim, "print(kept)")) == "state\n"


def test_input_fails_at_once(api: Api, victim: int) -> None:
    result = api.execute(victim, "input('password: ')", timeout=10)
    assert result["status"] == "error", result
    assert result["outputs"][-1]["ename"] == "StdinNotImplementedError"


HUNDRED_K_DISPLAYS = """
k = get_ipython().kernel
for i in range(100_000):
    k.session.send(k.iopub_socket, "display_data", {"data": {"text/plain": str(i)}, "metadata": {}},
                   parent=k.get_parent())
"""


def gateway_peak_rss_mb(gateway: GatewayProcess) -> float:
    assert gateway.process is not None
    status = Path(f"/proc/{gateway.process.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


@pytest.mark.slow
@pytest.mark.timeout(600)  # its HTTP client waits up to 400 s (below)
@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("32 MiB of prints", "chunk = 'x' * 2**15\nfor _ in range(1024):\n    print(chunk)"),
        ("1 GiB of prints", "chunk = 'x' * 2**20\nfor _ in range(1024):\n    print(chunk)"),
        # Sent straight through the kernel's session: IPython's display() costs ~1 ms each in a 1-CPU sandbox,
        # and the point is the gateway receiving 100k messages.
        ("100k tiny displays", HUNDRED_K_DISPLAYS),
        (
            "a 30 MB image",
            "import base64, os\nfrom IPython.display import display\n"
            "display({'image/png': base64.b64encode(os.urandom(30 * 2**20)).decode()}, raw=True)",
        ),
    ],
)
def test_output_floods_come_back_truncated_and_the_gateway_stays_small(
    api: Api, victim: int, hostile_gateway: GatewayProcess, name: str, code: str
) -> None:
    api.http.timeout = httpx.Timeout(400)  # a loaded 2-core machine makes the kernel side slow, not the gateway
    result = api.execute(victim, code, timeout=60)
    print(f"\n{name}: {result['status']} {result.get('detail') or ''}")
    if result["status"] == "died":
        # The kernel's own output buffer (ipykernel's, inside the sandbox) can outgrow its memory limit when code
        # prints faster than the kernel sends: that kernel dies of it, is reported and restarted; nothing else.
        # Under gVisor the engine may not flag the kill as OOM: it shows as SIGKILL.
        assert "out of memory" in result["detail"] or (GVISOR and "signal 9" in result["detail"]), result["detail"]
        assert stdout_of(api.execute(victim, "print('back')")) == "back\n"
        return
    if result["status"] == "timeout" and name == "100k tiny displays":
        # When the gateway falls behind, the kernel's IOPub socket drops messages past its high-water mark, and the
        # run's final idle status can be among them: the run then ends at its deadline (kernel interrupted or
        # replaced), still within the caps. Seen on a loaded machine; a known limit (see notes/issue-3.md).
        assert result["detail"] and len(result["outputs"]) <= LIMITS["max_outputs"] + 2
        assert stdout_of(api.execute(victim, "print('next')")) == "next\n"
        return
    assert result["status"] == "ok", (name, result["status"], result.get("detail"))
    outputs = result["outputs"]
    text = "".join(o.get("text", "") for o in outputs) + "".join(
        str(o.get("data", {}).get("text/plain", "")) for o in outputs
    )
    assert result["truncated"] or "dropped" in text, name
    assert "truncated" in text or "dropped" in text, name
    assert len(outputs) <= LIMITS["max_outputs"] + 1
    assert sum(len(str(o)) for o in outputs) < 3 * LIMITS["max_output_bytes"] + LIMITS["max_image_bytes"]
    peak = gateway_peak_rss_mb(hostile_gateway)
    print(f"\n{name}: {len(outputs)} outputs back; gateway peak RSS so far {peak:.0f} MiB")
    assert peak < 1024, peak


def test_numpy_with_threads_works_under_the_limits(api: Api, victim: int) -> None:
    code = """
import os, json, numpy as np
a = np.random.default_rng(0).random((400, 400))
ok = bool(np.allclose(a @ np.linalg.inv(a), np.eye(400), atol=1e-6))
print(json.dumps({"ok": ok, "threads": [os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")]}))
"""
    result = json_out(api.execute(victim, code))
    assert result == {"ok": True, "threads": ["1", "1"]}
