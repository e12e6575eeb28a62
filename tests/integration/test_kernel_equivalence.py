"""JupyCell's sandbox kernel behaves exactly as stock ipykernel: the same messages for the same cells.

Two containers of the image under test (``JUPYCELL_SANDBOX_IMAGE``): JupyCell's kernel (the image's default,
``python -m jupycell_kernel``: configured and pre-warmed) and stock ipykernel of the same version
(``JUPYCELL_KERNEL_LAUNCHER=stock``: ``python -m ipykernel_launcher`` with no configuration). Every cell of a
battery runs on both, in the same order; what each produced on IOPub, on stdin and as its reply is compared message
by message, normalised only for what differs between any two runs (ids, clocks, ``%time``'s figures, per-process
temp paths, random display ids, where a stream's text is cut into messages).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.blocking import BlockingKernelClient

from bench.raw_floor import RawFloor
from gateway.settings import Settings
from tests.support_kernel import CellResult, KernelUnderTest

STOCK = {"JUPYCELL_KERNEL_LAUNCHER": "stock"}

#: (code, execute options). Run in this order on both kernels: later cells read what earlier ones left.
BATTERY: list[tuple[str, dict[str, Any]]] = [
    # the first cell of a fresh kernel: no trace of the pre-warming (count 1, empty In/Out/history, no variables)
    ("sorted(k for k in globals() if not k.startswith('_')), In, Out, _ih, _oh, _i, _ii, _", {}),
    ("%who", {}),
    ("%history -n -g", {}),
    ("1+1", {}),
    ("x = 10\ny = x * 2\nprint(y)", {}),
    ("x + y", {}),
    ("_, __, ___, _4, Out[4], In[4], _i4, _ih[-2], len(In), sorted(Out)", {}),
    ("1+1;", {}),
    ("print('a')\nprint('b', end='')\nimport sys\nprint('err', file=sys.stderr)\n3", {}),
    ("for i in range(3):\n    print(i, flush=True)", {}),
    ("print('\\n'.join(str(i) for i in range(5000)))", {}),
    ("print('héllo wörld ✓ \U0001f600')", {}),
    ("%who", {}),
    ("%whos", {}),
    ("%time sum(range(1000))", {}),
    ("%%time\nz = 3", {}),
    ("%timeit -n1 -r1 pass", {}),
    ("%pwd", {}),
    ("!echo shell-out && ls /opt/jupycell | head -3", {}),
    ("files = !ls /\nfiles[:3]", {}),
    ("%history -n 1-5", {}),
    ("%history -g x =", {}),
    ("%lsmagic", {}),
    ("%%capture captured\nprint('hidden')", {}),
    ("captured.stdout", {}),
    (
        "from IPython.display import display, HTML, Markdown, JSON, Latex\n"
        "display(HTML('<b>bold</b>'))\ndisplay(Markdown('*md*'), Latex(r'$x^2$'))\ndisplay({'a': 1}, raw=True)\n"
        "display(JSON({'k': [1, 2]}))",
        {},
    ),
    ("h = display('first', display_id=True)\nh.update('second')", {}),
    ("from IPython.display import clear_output\nprint('one')\nclear_output(wait=True)\nprint('two')", {}),
    ("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})\ndf", {}),
    ("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nplt.show()", {}),
    ("1/0", {}),
    ("undefined_name", {}),
    ("def f(n):\n    return 1 / n", {}),
    ("f(0)", {}),
    ("if True\n    pass", {}),
    ("raise ValueError('custom message')", {}),
    ("import warnings\nwarnings.warn('careful')\n'after warning'", {}),
    ("import asyncio\nawait asyncio.sleep(0)\n'awaited'", {}),
    ("import threading\nt = threading.Thread(target=print, args=('from a thread',))\nt.start()\nt.join()", {}),
    ("name = input('your name? ')\nprint('hello', name)", {"stdin_replies": ["Ada"]}),
    ("import getpass\nsecret = getpass.getpass('pw: ')\nlen(secret)", {"stdin_replies": ["hunter2"]}),
    ("input('no stdin? ')", {"allow_stdin": False}),
    ("'silent'", {"silent": True}),
    ("'not stored'", {"store_history": False}),
    ("", {"user_expressions": {"double": "x * 2", "bad": "1/0"}}),
    ("import sys\nsys.path[:1], sys.argv[1:2], type(sys.stdout).__mro__[-3].__name__", {}),
    ("get_ipython().execution_count, len(In), sorted(Out)", {}),
    ("%reset -f\n%who", {}),
    ("In[-1], _i", {}),
]


@pytest.fixture
def kernels() -> Iterator[tuple[KernelUnderTest, KernelUnderTest]]:
    floor = RawFloor(Settings().sandbox_image)
    try:
        yield KernelUnderTest(floor, STOCK), KernelUnderTest(floor)
    finally:
        floor.close()


@pytest.fixture
def ours() -> Iterator[KernelUnderTest]:
    floor = RawFloor(Settings().sandbox_image)
    try:
        yield KernelUnderTest(floor)
    finally:
        floor.close()


def assert_same(cell: str, stock: CellResult, ours: CellResult) -> None:
    assert [m["msg_type"] for m in ours.iopub] == [m["msg_type"] for m in stock.iopub], cell
    for theirs, mine in zip(stock.iopub, ours.iopub, strict=True):
        assert mine == theirs, cell
    assert ours.stdin == stock.stdin, cell
    assert ours.reply == stock.reply, cell


def test_the_launchers_differ(kernels: tuple[KernelUnderTest, KernelUnderTest]) -> None:
    """The comparison is between two different kernels (else it proves nothing)."""
    expression = {"stream": "type(__import__('sys').stdout).__name__"}
    replies = [k.run("", silent=True, user_expressions=expression).reply for k in kernels]
    assert [r["content"]["user_expressions"]["stream"]["data"]["text/plain"] for r in replies] == [
        "'OutStream'",
        "'QuickFlushOutStream'",
    ]


def test_kernel_info_is_the_same_but_for_subshells(kernels: tuple[KernelUnderTest, KernelUnderTest]) -> None:
    """The one documented difference: no shell channel thread, so no "kernel subshells" feature (app.py)."""
    stock, ours = kernels

    def info(kernel: KernelUnderTest) -> dict[str, Any]:
        content = kernel.kernel_info()["content"]
        content["banner"] = content["banner"].split("Tip:")[0]  # IPython picks a random tip each time
        return content

    mine, theirs = info(ours), info(stock)
    assert "kernel subshells" in theirs["supported_features"]
    theirs["supported_features"].remove("kernel subshells")
    assert mine == theirs


def test_a_battery_of_cells_gives_the_same_messages(kernels: tuple[KernelUnderTest, KernelUnderTest]) -> None:
    stock, ours = kernels
    for code, options in BATTERY:
        assert_same(code, stock.run(code, **dict(options)), ours.run(code, **dict(options)))


def test_an_interrupt_gives_the_same_messages(kernels: tuple[KernelUnderTest, KernelUnderTest]) -> None:
    """Interrupted while it waits in ``input()`` (a place the kernel is known to be in when the interrupt comes):
    the same ``KeyboardInterrupt`` and traceback, and the kernel goes on."""
    stock, ours = kernels
    code = "print('before')\nname = input('wait: ')"
    assert_same(code, stock.run(code, interrupt_at_input=True), ours.run(code, interrupt_at_input=True))
    assert_same("'still alive'", stock.run("'still alive'"), ours.run("'still alive'"))


def test_an_interrupted_sleep_ends_alike(kernels: tuple[KernelUnderTest, KernelUnderTest]) -> None:
    """Interrupted in running code: the same messages and error. (Which line the traceback shows depends on when
    the signal lands — in ``time.sleep`` or still in the print before it — on any kernel, so only its end is
    compared.)"""
    stock, ours = kernels
    code = "import time\nprint('started', flush=True)\nwhile True: time.sleep(0.01)"
    results = [kernel.run(code, interrupt_after="started") for kernel in kernels]
    assert [m["msg_type"] for m in results[1].iopub] == [m["msg_type"] for m in results[0].iopub]
    for result in results:
        content = result.reply["content"]
        assert (content["status"], content["ename"]) == ("error", "KeyboardInterrupt")
    assert_same("'still alive'", stock.run("'still alive'"), ours.run("'still alive'"))


def test_requests_queued_behind_an_error_are_aborted_alike(
    kernels: tuple[KernelUnderTest, KernelUnderTest],
) -> None:
    """stop_on_error: requests already queued when a cell fails get an ``aborted`` reply, on both kernels."""
    results = []
    for kernel in kernels:
        ids = [kernel.send(code) for code in ("import time; time.sleep(0.5); 1/0", "'second'", "'third'")]
        results.append([kernel.collect(msg_id) for msg_id in ids])
    for stock, ours in zip(*results, strict=True):
        assert_same("queued after an error", stock, ours)
    assert [r.reply["content"]["status"] for r in results[1]] == ["error", "aborted", "aborted"]


#: Prints "waiting", then polls the kernel's own shell socket until a request is waiting on it. The poll takes the
#: socket's pending events in, as the send of the cell's reply does: ZMQ's descriptor will not wake the kernel's
#: event loop for that request (the case of a gateway replica adopting a kernel whose cell its first client held).
WAIT_FOR_A_REQUEST = """import time
print("waiting", flush=True)
shell = get_ipython().kernel.shell_stream.socket
deadline = time.monotonic() + 60
while not shell.poll(0) and time.monotonic() < deadline:
    time.sleep(0.01)
print("a request is waiting:", bool(shell.poll(0)))"""


def test_a_second_clients_request_sent_while_a_cell_runs_is_answered_after_it(ours: KernelUnderTest) -> None:
    """A new client (new session, new ZMQ identity) whose request waits on the shell socket while another
    client's cell runs gets its answer once the cell ends (the kernel's reply to the first client went out
    directly, ``fast_send``; the kernel must still read what was waiting)."""
    msg_id = ours.send(WAIT_FOR_A_REQUEST)
    deadline = time.monotonic() + 60
    while True:  # the cell runs (else the second request could be read before it)
        msg = ours.client.get_iopub_msg(timeout=max(0.0, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            break
    second = BlockingKernelClient()
    second.load_connection_info(ours.client.get_connection_info())
    second.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    try:
        info_id = second.kernel_info()
        result = ours.collect(msg_id)
        assert result.reply["content"]["status"] == "ok"
        assert "a request is waiting: True" in result.iopub[-2]["content"]["text"]
        deadline = time.monotonic() + 30
        while True:
            reply = second.get_shell_msg(timeout=max(0.0, deadline - time.monotonic()))  # Empty: never answered
            if reply["parent_header"].get("msg_id") == info_id:
                break
        assert reply["content"]["status"] == "ok"
    finally:
        second.stop_channels()
