"""CPU of the parts of a `1+1` execute that the kernel's lean switches change, stock against lean, in-process.

``python -m bench.kernel_parts [--image IMAGE]`` runs this file inside a container of the sandbox image (same
pyzmq, jupyter_client, IPython and ipykernel as the kernels) and prints microseconds per call, the best of five
timings: a request's share is the figure times the calls per request given with it. The end-to-end effect, all
switches together and each alone, is ``bench.kernel_floor --switches`` (whose wall-time noise on a shared machine
is larger than most of these single figures, which is why they are measured here on their own).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any


def per_call(f: Callable[[], object], number: int = 20000) -> float:
    """Microseconds per call of ``f``, the best of five runs."""
    for _ in range(200):
        f()
    return min(timeit.repeat(f, number=number, repeat=5)) / number * 1e6


def inside() -> list[str]:
    """The measurements; runs where ``jupycell_kernel`` is importable (the sandbox image)."""
    import logging
    import tempfile

    import zmq
    from ipykernel.kernelbase import _accepts_parameters
    from IPython.core.interactiveshell import InteractiveShell
    from jupycell_kernel.cells import CellPreparation, _cached_accepts_parameters
    from jupycell_kernel.frames import send_frames
    from jupycell_kernel.session import LeanSession
    from jupyter_client.session import Session
    from traitlets.config import Config

    lines = []
    key = b"k" * 32
    stock, lean = Session(key=key), LeanSession(key=key)

    def status(session: Session) -> Callable[[], object]:
        parent = session.msg("execute_request", {"code": "1+1", "silent": False})
        return lambda: session.serialize(session.msg("status", {"execution_state": "busy"}, parent=parent), b"t")

    lines.append(
        f"lean_session  serialize one message (x5 per request): stock {per_call(status(stock)):.1f} us, "
        f"lean {per_call(status(lean)):.1f} us"
    )

    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.bind(f"ipc://{tempfile.mkdtemp()}/parts")
    frames = [b"kernel.x.status", b"<IDS|MSG>", b"s" * 64, b"h" * 200, b"p" * 200, b"{}", b'{"execution_state": "b"}']
    lines.append(
        f"fast_send     send 7 frames (x5 per request): pyzmq send_multipart "
        f"{per_call(lambda: socket.send_multipart(frames)):.1f} us, send_frames "
        f"{per_call(lambda: send_frames(socket, frames)):.1f} us"
    )
    socket.close(linger=0)
    context.term()

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell: Any = InteractiveShell.instance(config=config)
    code = "1+1"

    def prepare_twice() -> None:  # what ipykernel's do_execute and IPython's _run_cell each do
        for _ in range(2):
            transformed = shell.transform_cell(code)
            shell.should_run_async(code, transformed_cell=transformed)

    stock_prepare = per_call(prepare_twice, 3000)
    preparation = CellPreparation(shell)

    def prepare_once() -> None:
        with preparation.request():
            prepare_twice()

    lines.append(
        f"lean_run_cell transform + await check of `1+1`, per request: stock {stock_prepare:.1f} us, "
        f"lean {per_call(prepare_once, 3000):.1f} us"
    )
    names = ["cell_id", "cell_meta"]
    lines.append(
        f"cached_signatures  run_cell_async's signature, per request: stock "
        f"{per_call(lambda: _accepts_parameters(shell.run_cell_async, names)):.1f} us, cached "
        f"{per_call(lambda: _cached_accepts_parameters(shell.run_cell_async, names)):.1f} us"
    )
    log = logging.getLogger("kernel-parts")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    log.addHandler(handler)
    message = {"header": {"msg_type": "execute_request"}, "content": {"code": code}}
    loud = per_call(lambda: log.debug("%s: %s", "execute_request", message))
    log.setLevel(logging.WARNING)
    lines.append(
        f"quiet_logging one dropped log.debug (x4 per request): logger at DEBUG {loud:.2f} us, quiet "
        f"{per_call(lambda: log.debug('%s: %s', 'execute_request', message)):.2f} us"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kernel_parts", description=__doc__)
    parser.add_argument("--image", default=os.environ.get("JUPYCELL_SANDBOX_IMAGE", "jupycell-sandbox:latest"))
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        print("\n".join(inside()))
        return
    here = Path(__file__).resolve()
    command = ["docker", "run", "--rm", "-v", f"{here}:/opt/kernel_parts.py:ro", "--entrypoint", "python"]
    command += [args.image, "-W", "ignore", "/opt/kernel_parts.py", "--inside"]
    sys.exit(subprocess.run(command, check=False).returncode)


if __name__ == "__main__":
    main()
