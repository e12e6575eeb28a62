"""The sandbox kernel's per-request savings (sandbox_image/jupycell_kernel: frames, session, cells, logs)
give what stock pyzmq, jupyter_client, IPython and ipykernel give: same frames, same bytes, same answers.

Needs the ipykernel the image pins (7.4); real ZMQ sockets and a real IPython shell, in-process. The end-to-end
proof is tests/integration/test_kernel_equivalence.py (every message of 49 cells against stock ipykernel).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

ipykernel = pytest.importorskip("ipykernel")
if ipykernel.__version__ != "7.4.0":
    pytest.skip(f"the sandbox image pins ipykernel 7.4.0, found {ipykernel.__version__}", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox_image"))
from ipykernel.kernelbase import _accepts_parameters  # noqa: E402
from IPython.core.async_helpers import _should_be_async  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from jupycell_kernel import cells  # noqa: E402
from jupycell_kernel.cells import CellPreparation, _cached_accepts_parameters  # noqa: E402
from jupycell_kernel.frames import readable, send_frames  # noqa: E402
from jupycell_kernel.logs import quiet  # noqa: E402
from jupycell_kernel.session import LeanSession  # noqa: E402
from jupyter_client.session import Session, json_packer  # noqa: E402
from tornado.ioloop import IOLoop  # noqa: E402
from traitlets.config import Config  # noqa: E402
from zmq.eventloop.zmqstream import ZMQStream  # noqa: E402

KEY = b"0123456789abcdef0123456789abcdef"


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    context = zmq.Context()
    push, pull = context.socket(zmq.PUSH), context.socket(zmq.PULL)
    pull.bind("inproc://lean")
    push.connect("inproc://lean")
    try:
        yield push, pull
    finally:
        push.close(linger=0)
        pull.close(linger=0)
        context.term()


def receive(pull: zmq.Socket[bytes]) -> list[bytes]:
    assert pull.poll(5000), "nothing arrived"
    return pull.recv_multipart()


# --- frames -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "kwargs"),
    [
        ([b"one"], {}),
        ([b"ident", b"<IDS|MSG>", b"sig", b"{}", b"{}", b"{}", b'{"a": 1}'], {}),
        ([b"head", memoryview(b"buffer")], {}),  # not all bytes: pyzmq's own send_multipart
        ([b"head", b"x" * 100_000], {"copy": False}),
        ([b"head", b"tracked"], {"copy": False, "track": True}),
    ],
)
def test_send_frames_puts_the_same_frames_on_the_wire(pair, frames: list[Any], kwargs: dict[str, Any]) -> None:
    push, pull = pair
    push.send_multipart(frames, **kwargs)
    expected = receive(pull)
    send_frames(push, frames, **kwargs)
    assert receive(pull) == expected == [bytes(f) for f in frames]


def test_readable_is_pollin_of_the_events_option(pair) -> None:
    push, pull = pair
    assert not readable(pull)
    push.send(b"x")
    assert pull.poll(5000)
    assert readable(pull) == bool(pull.getsockopt(zmq.EVENTS) & zmq.POLLIN) is True


# --- session ------------------------------------------------------------------------------------------------


def sessions() -> tuple[Session, LeanSession]:
    """Both with jupyter_client's json packer, the image's (it has no orjson; with orjson LeanSession packs as
    Session does)."""
    return (
        Session(key=KEY, session="s", username="u", packer="json"),
        LeanSession(key=KEY, session="s", username="u", packer="json"),
    )


def message(session: Session, content: Any, parent: dict[str, Any]) -> dict[str, Any]:
    header = {"msg_id": "m1", "msg_type": "stream", "username": "u", "session": "s", "version": "5.4"}
    header["date"] = datetime.datetime(2026, 11, 29, 20, 0, 0, 123456, tzinfo=datetime.UTC)
    return {
        "header": header,
        "msg_id": "m1",
        "msg_type": "stream",
        "parent_header": parent,
        "content": content,
        "metadata": {"started": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)},
    }


@pytest.mark.filterwarnings("ignore:Interpreting naive datetime:DeprecationWarning")
@pytest.mark.parametrize(
    "content",
    [
        {"name": "stdout", "text": "héllo ☃ \U0001f600\n"},
        {"data": {"text/plain": "2", "application/json": {"a": [1, 2.5, None, True]}}, "execution_count": 3},
        {"when": datetime.datetime(2026, 2, 3, 4, 5, 6)},  # naive: json_default's own handling
        {},
        None,
        b'{"already": "packed"}',
        '{"a": "str"}',
    ],
)
def test_lean_serialize_gives_the_same_frames(content: Any) -> None:
    stock, lean = sessions()
    assert lean.pack is json_packer  # the lean path, not Session.serialize
    parent = {"msg_id": "p1", "msg_type": "execute_request", "date": "2026-11-29T20:00:00Z", "session": "c"}
    for _ in range(2):  # the second time with the parent header packed already
        assert lean.serialize(message(lean, content, parent), [b"topic"]) == stock.serialize(
            message(stock, content, parent), [b"topic"]
        )


def test_a_parent_header_changed_in_place_is_packed_again() -> None:
    stock, lean = sessions()
    parent = {"msg_id": "p1", "msg_type": "execute_request"}
    lean.serialize(message(lean, {}, parent))
    parent["msg_id"] = "p2"
    assert lean.serialize(message(lean, {}, parent)) == stock.serialize(message(stock, {}, parent))
    del parent["msg_type"]
    parent["msg_type"] = "execute_request"  # same items, other order: other bytes
    assert lean.serialize(message(lean, {}, parent)) == stock.serialize(message(stock, {}, parent))


def test_content_json_cannot_hold_takes_jupyter_clients_fallback_and_warning() -> None:
    stock, lean = sessions()
    with pytest.warns(UserWarning, match="Message serialization failed") as stock_warning:
        expected = stock.serialize(message(stock, {"nan": float("nan")}, {}))
    with pytest.warns(UserWarning, match="Message serialization failed") as lean_warning:
        got = lean.serialize(message(lean, {"nan": float("nan")}, {}))
    assert got == expected
    assert len(stock_warning) == len(lean_warning) == 1


def test_a_reply_on_an_idle_registered_stream_leaves_at_once(pair) -> None:
    push, pull = pair
    stream = ZMQStream(push)
    lean = LeanSession(key=KEY, packer="json")
    lean.send_directly_on(stream)
    sent = lean.send(stream, "execute_reply", {"status": "ok"}, ident=[b"client"])
    frames = receive(pull)  # no event loop ran: it was not queued
    assert frames[0] == b"client" and frames[1] == b"<IDS|MSG>"
    _, msg = lean.feed_identities(frames)
    assert lean.deserialize(msg)["header"]["msg_id"] == sent["header"]["msg_id"]
    stream.close(linger=0)


def test_a_reply_behind_queued_messages_or_from_another_thread_is_queued(pair) -> None:
    push, pull = pair
    stream = ZMQStream(push)
    lean = LeanSession(key=KEY, packer="json")
    lean.send_directly_on(stream)
    stream.send_multipart([b"first"])  # queued for the event loop
    lean.send(stream, "execute_reply", {"status": "ok"})
    other = threading.Thread(target=lambda: lean.send(stream, "status", {"execution_state": "idle"}))
    other.start()
    other.join()
    assert not pull.poll(100)  # nothing overtook the queue
    stream.flush()
    assert receive(pull) == [b"first"]
    assert [lean.deserialize(receive(pull)[1:])["msg_type"] for _ in range(2)] == ["execute_reply", "status"]
    stream.close(linger=0)


def test_a_request_waiting_when_a_reply_leaves_at_once_is_still_read() -> None:
    """A send takes in the socket's pending events and ZMQ's descriptor is edge-triggered: after a direct reply,
    a request that was waiting (here: a second client's, taken in beforehand the same way) must still reach the
    stream's handler, as it does after a queued reply."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.bind("inproc://lean-router")
    second = context.socket(zmq.DEALER)
    loop = IOLoop(make_current=False)
    stream = ZMQStream(router, io_loop=loop)
    received: list[list[bytes]] = []
    stream.on_recv(received.append)
    lean = LeanSession(key=KEY, packer="json")
    lean.send_directly_on(stream)
    try:
        second.connect("inproc://lean-router")
        second.send(b"kernel_info_request")
        assert router.poll(5000)  # takes the socket's events in: the descriptor will not wake the loop for it
        lean.send(stream, "execute_reply", {"status": "ok"}, ident=[b"first-client"])  # its first client's, gone

        async def until_received() -> None:
            while not received:
                await asyncio.sleep(0.01)

        loop.run_sync(until_received, timeout=10)
        assert received[0][-1] == b"kernel_info_request"
    finally:
        stream.close(linger=0)
        second.close(linger=0)
        loop.close()
        context.term()


# --- cells --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell(config=config)
    yield shell
    shell.history_manager.end_session()


@pytest.fixture
def prepared(shell: InteractiveShell) -> Iterator[tuple[CellPreparation, list[str]]]:
    calls: list[str] = []
    original = shell.transform_cell

    def counted(cell: str) -> str:
        calls.append(cell)
        return original(cell)

    shell.transform_cell = counted  # type: ignore[method-assign]
    preparation = CellPreparation(shell)
    try:
        yield preparation, calls
    finally:
        del shell.transform_cell
        del shell.should_run_async


def test_a_cell_is_transformed_once_per_request(prepared) -> None:
    preparation, calls = prepared
    code = "%time 1+1"
    with preparation.request():
        first = preparation.transform_cell(code)
        assert preparation.transform_cell(code) == first  # IPython's second call: kept
        assert preparation.transform_cell(code) == first  # a third one computes again
    assert calls == [code, code]
    assert first == InteractiveShell.transform_cell(preparation.shell, code)


def test_nothing_is_kept_outside_a_request_for_another_string_or_another_thread(prepared) -> None:
    preparation, calls = prepared
    code = "x = 1"
    preparation.transform_cell(code)
    preparation.transform_cell(code)
    with preparation.request():
        preparation.transform_cell(code)
        preparation.transform_cell("".join(["x = ", "1"]))  # equal, not the same object
        worker = threading.Thread(target=preparation.transform_cell, args=(code,))
        worker.start()
        worker.join()
    assert len(calls) == 5


def test_with_a_user_transformer_every_call_transforms(prepared) -> None:
    preparation, calls = prepared
    seen: list[list[str]] = []

    def user_transform(lines: list[str]) -> list[str]:
        seen.append(lines)
        return lines

    preparation.shell.input_transformers_post.append(user_transform)
    try:
        with preparation.request():
            code = "y = 2"
            preparation.transform_cell(code)
            preparation.transform_cell(code)
    finally:
        preparation.shell.input_transformers_post.remove(user_transform)
    assert len(calls) == len(seen) == 2


@pytest.mark.parametrize(
    "cell",
    [
        "1+1\n",
        "await asyncio.sleep(0)\n",
        "async for x in y:\n    pass\n",
        "[x async for x in y]\n",
        "async with a:\n    pass\n",
        "x = 'await'\n",
        "def f(:\n",
        "print('héllo')\n",
        "ａｗａｉｔ x\n",
        "async def f():\n    await g()\n",
    ],
)
def test_should_run_async_answers_as_ipython(prepared, cell: str) -> None:
    preparation, _ = prepared
    assert preparation.should_run_async(cell, transformed_cell=cell) == _should_be_async(cell)


def test_signatures_are_read_once_and_answer_the_same(monkeypatch) -> None:
    calls = []
    original = cells._accepts_parameters

    def counted(meth: Any, names: list[str]) -> dict[str, bool]:
        calls.append(meth)
        return original(meth, names)

    monkeypatch.setattr(cells, "_accepts_parameters", counted)
    monkeypatch.setattr(cells, "_signatures", {})
    shell = InteractiveShell.__new__(InteractiveShell)
    names = ["cell_id", "cell_meta"]
    first = _cached_accepts_parameters(shell.run_cell_async, names)
    first["cell_id"] = "changed by a caller"
    assert _cached_accepts_parameters(shell.run_cell_async, names) == _accepts_parameters(shell.run_cell_async, names)
    assert len(calls) == 1


# --- logs -----------------------------------------------------------------------------------


def test_quiet_logger_builds_no_record_its_handlers_drop_and_emits_the_rest() -> None:
    logger = logging.getLogger("jupycell-test-quiet")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        quiet(logger)
        assert not logger.isEnabledFor(logging.DEBUG)
        logger.debug("dropped")
        logger.warning("kept")
        assert [r.getMessage() for r in records] == ["kept"]
        logger.propagate = True  # a parent's handlers may want everything: leave it
        logger.setLevel(logging.DEBUG)
        quiet(logger)
        assert logger.isEnabledFor(logging.DEBUG)
    finally:
        logger.removeHandler(handler)
