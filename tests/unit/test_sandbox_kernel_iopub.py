"""The sandbox kernel's IOPub plumbing (sandbox_image/jupycell_kernel/iopub.py) on real ZMQ sockets, in-process.

Needs the ipykernel the image pins (7.4): the module subclasses its internals. A SUB socket reads what the XPUB
socket sends, so order and content are checked on the wire.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

ipykernel = pytest.importorskip("ipykernel")
if ipykernel.__version__ != "7.4.0":
    pytest.skip(f"the sandbox image pins ipykernel 7.4.0, found {ipykernel.__version__}", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox_image"))
from jupycell_kernel.iopub import QuickFlushOutStream, QuickIOPubThread  # noqa: E402
from jupyter_client.session import Session  # noqa: E402


@pytest.fixture
def wire() -> Iterator[tuple[QuickIOPubThread, zmq.Socket[bytes]]]:
    context = zmq.Context()
    pub = context.socket(zmq.XPUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = context.socket(zmq.SUB)
    sub.connect(f"tcp://127.0.0.1:{port}")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    thread = QuickIOPubThread(pub, session=None)
    thread.start()
    deadline = time.monotonic() + 10
    while True:  # until the subscription is through (ZMQ slow joiner)
        thread.send_multipart([b"probe"])
        if sub.poll(50):
            sub.recv_multipart()
            break
        assert time.monotonic() < deadline, "subscription never arrived"
    while sub.poll(50):
        sub.recv_multipart()
    try:
        yield thread, sub
    finally:
        thread.stop()
        sub.close(linger=0)
        context.destroy(linger=0)


def received(sub: zmq.Socket[bytes], count: int) -> list[list[bytes]]:
    frames = []
    for _ in range(count):
        assert sub.poll(5000), f"only {len(frames)} of {count} messages arrived"
        frames.append(sub.recv_multipart())
    return frames


def test_an_idle_thread_sends_directly_without_waking_the_iopub_thread(wire) -> None:
    thread, sub = wire
    woken = []
    thread.schedule = lambda f: woken.append(f)  # would queue: must not be called
    thread.send_multipart([b"a"])
    thread.send_multipart([b"b"])
    assert received(sub, 2) == [[b"a"], [b"b"]]
    assert woken == []


def test_a_message_waits_behind_queued_callbacks_and_keeps_its_order(wire) -> None:
    thread, sub = wire
    gate = threading.Event()
    thread.schedule(gate.wait)  # the IOPub thread is busy with this callback
    thread.schedule(lambda: thread._really_send([b"queued"]))
    thread.send_multipart([b"after"])  # not idle: must queue behind, not overtake
    assert not thread.idle()
    gate.set()
    assert received(sub, 2) == [[b"queued"], [b"after"]]
    deadline = time.monotonic() + 5
    while not thread.idle():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_messages_from_many_threads_all_arrive_in_each_threads_order(wire) -> None:
    thread, sub = wire

    def sender(name: bytes) -> None:
        for i in range(200):
            thread.send_multipart([name, str(i).encode()])

    senders = [threading.Thread(target=sender, args=(bytes([65 + n]),)) for n in range(4)]
    for s in senders:
        s.start()
    for s in senders:
        s.join()
    frames = received(sub, 800)
    for n in range(4):
        mine = [int(f[1]) for f in frames if f[0] == bytes([65 + n])]
        assert mine == list(range(200))


def test_flush_sends_buffered_text_before_what_follows_and_skips_when_empty(wire) -> None:
    thread, sub = wire
    stream = QuickFlushOutStream(Session(key=b""), thread, "stdout", watchfd=False)
    assert stream._nothing_to_flush()
    stream.write("hello")
    assert not stream._nothing_to_flush()
    stream.flush()  # ipykernel's flush: the text is on the socket when it returns
    thread.send_multipart([b"after"])
    first, second = received(sub, 2)
    assert first[0] == b"stream.stdout" and b"hello" in first[-1]
    assert second == [b"after"]
    deadline = time.monotonic() + 5  # the IOPub thread marks itself idle just after the flush's event fires
    while not stream._nothing_to_flush():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_timed_flush_in_progress_is_waited_for(wire) -> None:
    """ipykernel flushes buffered text from a timer on the IOPub thread, outside the queue: while that flush has
    taken the text but not yet queued its message, a thread that flushes and then sends (as the displayhook and
    the execute handler do) must not skip the flush and send ahead of that text."""
    thread, sub = wire
    stream = QuickFlushOutStream(Session(key=b""), thread, "stdout", watchfd=False)
    inside, release = threading.Event(), threading.Event()

    def hold(msg):  # runs inside _flush, after the buffers were taken, before the message is queued
        inside.set()
        release.wait(10)
        return msg

    thread.io_loop.add_callback(lambda: stream.register_hook(hold))  # hooks are per thread: the IOPub thread's
    stream.write("early")
    deadline = time.monotonic() + 5
    while not thread.idle():  # the write's own callback (it arms the flush timer) has run
        assert time.monotonic() < deadline
        time.sleep(0.01)
    thread.io_loop.add_callback(stream._flush)  # as the flush timer does
    assert inside.wait(10)
    assert not stream._nothing_to_flush()

    def flush_then_send() -> None:
        stream.flush()
        thread.send_multipart([b"late"])

    sender = threading.Thread(target=flush_then_send)
    sender.start()
    time.sleep(0.05)  # not synchronisation: gives a wrong implementation the chance to overtake
    release.set()
    sender.join(10)
    first, second = received(sub, 2)
    assert first[0] == b"stream.stdout" and b"early" in first[-1]
    assert second == [b"late"]
