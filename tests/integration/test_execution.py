"""Runs that end badly: deadlines, ignored interrupts, dead kernels."""

from __future__ import annotations

from testing.harness import Api, stdout_of


def test_deadline_interrupts_and_keeps_state(api: Api, kernel: int) -> None:
    api.execute(kernel, "kept = 'yes'")
    result = api.execute(kernel, "print('started', flush=True)\nwhile True: pass", timeout=2)
    assert result["status"] == "timeout" and result["kernel_state_kept"] is True
    assert "started\n" in stdout_of(result)
    assert result["outputs"][-1]["ename"] == "KeyboardInterrupt"
    assert stdout_of(api.execute(kernel, "print(kept)")) == "yes\n"


def test_deadline_interrupts_once_so_the_cell_can_clean_up(api: Api, kernel: int) -> None:
    """One interrupt per deadline: a second SIGINT would land in the handler's cleanup (or in the traceback)."""
    code = (
        "import time\ntry:\n    while True:\n        pass\nexcept KeyboardInterrupt:\n"
        "    time.sleep(1.5)\n    print('cleaned up', flush=True)"
    )
    result = api.execute(kernel, code, timeout=1)
    assert result["status"] == "timeout" and result["kernel_state_kept"] is True, result
    assert stdout_of(result) == "cleaned up\n", result["outputs"]


def test_ignored_interrupt_replaces_the_kernel(api: Api, kernel: int) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: time.sleep(0.1)"
    result = api.execute(kernel, code, timeout=1)
    assert result["status"] == "timeout" and result["kernel_state_kept"] is False
    assert "replaced" in result["detail"]
    assert stdout_of(api.execute(kernel, "print(1 + 1)")) == "2\n"


def test_out_of_memory_is_reported_and_kernel_comes_back(api: Api, kernel: int) -> None:
    result = api.execute(kernel, "blocks = []\nwhile True: blocks.append(bytearray(50 * 2**20))")
    assert result["status"] == "died", result
    assert "out of memory (limit 512 MiB)" in result["detail"]
    kernel_model = api.http.get(f"/kernels/{kernel}").json()
    assert "out of memory" in kernel_model["last_death"]
    assert stdout_of(api.execute(kernel, "print('back')")) == "back\n"


def test_kernel_exit_is_reported(api: Api, kernel: int) -> None:
    result = api.execute(kernel, "import os; os._exit(3)")
    assert result["status"] == "died"
    assert "exited with code 3" in result["detail"] or "killed" in result["detail"], result["detail"]
    assert stdout_of(api.execute(kernel, "print('alive')")) == "alive\n"
