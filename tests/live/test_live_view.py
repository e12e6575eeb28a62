"""The live view in a real browser, against a real gateway and kernels: cells and outputs, live updates while a
cell runs, plots, hostile outputs kept inert, and read-only view links."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

from testing.harness import Api, GatewayProcess
from tests.live.conftest import ALICE, BOB, save_screenshot


def view_url(api: Api, kernel: int) -> str:
    return f"{str(api.http.base_url).rstrip('/')}/kernels/{kernel}/view"


def cell_text(page: Any, number: int) -> str:
    return page.locator(f'section[data-cell="{number}"] .outputs').inner_text()


def wait_for_text(page: Any, number: int, text: str, part: str = ".outputs") -> None:
    """Wait until cell ``number`` shows ``text`` in its outputs (or in ``part``: ``.code``, ``.meta``)."""
    page.locator(f'section[data-cell="{number}"] {part}').get_by_text(text).first.wait_for()


def container_of(kernel_id: int) -> Any:
    client = docker.from_env()
    (container,) = client.containers.list(filters={"label": f"jupycell.kernel_id={kernel_id}"})
    return container


def test_page_shows_the_notebook_and_follows_runs_live(api: Api, kernel: int, page: Any) -> None:
    assert api.add(kernel, 1, "greeting = 'hello from cell 1'\nprint(greeting)").status_code == 200
    assert api.run(kernel, 1).status_code == 200
    page.goto(view_url(api, kernel))
    wait_for_text(page, 1, "hello from cell 1")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # A cell added and run through the API appears, its output streaming in while it runs: it prints, then
    # waits for a file the test creates only once the first line is on the page.
    code = (
        "import os, time\nprint('first line', flush=True)\ndeadline = time.time() + 120\n"
        "while not os.path.exists('/work/go') and time.time() < deadline:\n    time.sleep(0.05)\nprint('second line')"
    )
    assert api.add(kernel, 2, code).status_code == 200
    wait_for_text(page, 2, "import os, time", part=".code")
    run: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: run.update(response=api.run(kernel, 2)))
    runner.start()
    try:
        wait_for_text(page, 2, "first line")
        section = page.locator('section[data-cell="2"]')
        assert "running" in (section.get_attribute("class") or "")
        assert "In [*]" in section.inner_text() and "second line" not in section.locator(".outputs").inner_text()
        assert page.locator("#state").inner_text() == "busy"
    finally:
        container_of(kernel).exec_run(["touch", "/work/go"])
        runner.join(180)
    assert run["response"].json()["status"] == "ok"
    wait_for_text(page, 2, "second line")
    page.locator('section[data-cell="2"] .badge.ok').wait_for()
    page.locator("#state[data-state=idle]").wait_for()

    # Edits (staleness) and deletions show up too.
    assert api.cell(kernel, "edit", 1, "greeting = 'changed'").status_code == 200
    page.locator('section[data-cell="1"] .code').get_by_text("changed").wait_for()
    assert api.cell(kernel, "delete", 2).status_code == 200
    page.locator('section[data-cell="2"]').wait_for(state="detached")
    assert page.evaluate("window.__sameDocument") is True


def test_plot_shows_as_an_image_and_the_page_is_screenshotted(api: Api, kernel: int, page: Any) -> None:
    code = (
        "import matplotlib.pyplot as plt\nimport numpy as np\nx = np.linspace(0, 6.3, 200)\n"
        "plt.plot(x, np.sin(x), label='sin'); plt.plot(x, np.cos(x), label='cos'); plt.legend(); plt.show()"
    )
    api.add(kernel, 1, "print('\\x1b[32mcoloured\\x1b[0m output')")
    api.add(kernel, 2, code)
    api.add(kernel, 3, "{'answer': 42}['question']")
    assert api.cell(kernel, "run_all").json()["failed_cell"] == 3
    page.goto(view_url(api, kernel))
    image = page.locator('section[data-cell="2"] .out-image img')
    image.wait_for()
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=image.element_handle())
    wait_for_text(page, 3, "KeyError")
    coloured = page.locator('section[data-cell="1"] .out-stream span').first
    assert coloured.inner_text() == "coloured" and "rgb(0,187,0)" in (coloured.get_attribute("style") or "")
    save_screenshot(page, "live-view.png")


HOSTILE = r"""
from IPython.display import HTML, SVG, display
payload = '<img src=x onerror="window.__pwned=1; parent.__pwned=1"><script>window.__pwned=2; parent.__pwned=2</script>'
print(payload)
display(HTML(payload + '<b id="inert">bold but inert</b>'))
display({'text/html': '<iframe srcdoc="<script>parent.parent.__pwned=3</script>"></iframe>'
                      '<a href="javascript:parent.__pwned=4">x</a><style>body{background:url(/kernels)}</style>'},
        raw=True)
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="parent.__pwned=5">'
            '<script>parent.__pwned=6</script><rect width="10" height="10"/></svg>'))
display({'text/plain': payload}, raw=True)
raise ValueError(payload)
"""


def test_hostile_outputs_stay_inert(api: Api, kernel: int, page: Any) -> None:
    api.add(kernel, 1, HOSTILE)
    assert api.run(kernel, 1).json()["status"] == "error"
    page.goto(view_url(api, kernel))
    wait_for_text(page, 1, "ValueError")
    frames = page.locator('section[data-cell="1"] iframe')
    assert frames.count() == 2
    # Reload every output frame and wait for its load event: by then its images have failed (onerror would have
    # fired) and its scripts would have run.
    page.evaluate(
        """() => Promise.all([...document.querySelectorAll('iframe')].map(frame => new Promise(resolve => {
            frame.addEventListener('load', resolve, { once: true });
            frame.srcdoc = frame.srcdoc;
        })))"""
    )
    page.wait_for_function("[...document.querySelectorAll('.out-image img')].every(img => img.complete)")
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("[...document.querySelectorAll('iframe')].every(f => f.getAttribute('sandbox') === '')")
    assert page.evaluate("document.querySelectorAll('script').length") == 1  # the page's own module
    text = cell_text(page, 1)
    assert text.count("<script>window.__pwned=2; parent.__pwned=2</script>") >= 3  # stdout, text/plain, error
    for frame in page.frames[1:]:
        assert "<script" not in frame.content() and "onerror" not in frame.content()
    csp = httpx.get(view_url(api, kernel)).headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-eval" not in csp


def test_thousands_of_lines_are_cut_with_a_link_to_the_full_output(api: Api, kernel: int, page: Any) -> None:
    api.add(kernel, 1, "for i in range(20000):\n    print('line', i)")
    assert api.run(kernel, 1).json()["status"] == "ok"
    page.goto(view_url(api, kernel))
    wait_for_text(page, 1, "line 19999")
    section = page.locator('section[data-cell="1"]')
    assert section.locator("pre").count() <= 4 and "line 10000" not in section.inner_text()
    link = section.locator(".elided a")
    assert link.inner_text().startswith("full output (20000 lines")
    with page.context.expect_page() as opened:
        link.click()
    full = opened.value
    full.wait_for_load_state()
    assert "line 10000\n" in full.inner_text("body") and full.url.startswith("blob:")
    full.close()


# --- read-only links ---------------------------------------------------------------------------------------


@pytest.fixture
def alice_kernel(secured: GatewayProcess) -> Iterator[tuple[Api, int]]:
    alice = Api(secured.url, key=ALICE)
    kernel = alice.start()
    try:
        yield alice, kernel
    finally:
        alice.http.delete(f"/kernels/{kernel}")
        alice.close()


def test_a_view_link_opens_the_page_and_nothing_else(
    alice_kernel: tuple[Api, int], page: Any, secured: GatewayProcess
) -> None:
    alice, kernel = alice_kernel
    alice.add(kernel, 1, "print('watched')")
    alice.run(kernel, 1)
    base = str(alice.http.base_url).rstrip("/")
    assert httpx.get(f"{base}/kernels/{kernel}/events").status_code == 401  # no key, no token
    bob = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {BOB}"})
    assert bob.post(f"/kernels/{kernel}/view-tokens").status_code == 404  # not Bob's kernel
    assert bob.get(f"/kernels/{kernel}/events").status_code == 404
    created = alice.http.post(f"/kernels/{kernel}/view-tokens", json={"expires_in": 600})
    assert created.status_code == 201, created.text
    link = created.json()
    token = link["token"]
    assert link["url"] == f"/kernels/{kernel}/view#token={token}"  # in the fragment: never sent, never logged

    page.goto(base + link["url"])
    wait_for_text(page, 1, "watched")
    alice.add(kernel, 2, "print('live through the link')")
    alice.run(kernel, 2)
    wait_for_text(page, 2, "live through the link")
    assert token not in secured.log()  # the page sent it in a header: no access log line holds it
    # From the page, with the token, nothing but watching: no run, no listing, no other route or kernel.
    statuses = page.evaluate(
        """async ([kernel, token]) => {
            const auth = {Authorization: `Bearer ${token}`};
            const body = JSON.stringify({kernel_id: kernel, cell_number: 1, action: 'run'});
            const post = (url, headers) => fetch(url, {method: 'POST', body,
                headers: {'Content-Type': 'application/json', ...headers}});
            const status = async (request) => (await request).status;
            return [
                await status(post('/cell', {})),
                await status(post('/cell', auth)),
                await status(fetch(`/kernels/${kernel}/cells`, {headers: auth})),
                await status(fetch('/kernels', {headers: auth})),
                await status(post(`/kernels/${kernel}/view-tokens`, auth)),
                await status(fetch(`/kernels/${kernel + 1}/events`, {headers: auth})),
                await status(fetch(`/kernels/${kernel}/events?token=${token}`)),
                await status(fetch('/metrics', {headers: auth})),
            ];
        }""",
        [kernel, token],
    )
    assert statuses == [401] * 8

    listed = alice.http.get(f"/kernels/{kernel}/view-tokens").json()["tokens"]
    assert [t["token_id"] for t in listed] == [link["token_id"]] and token not in str(listed)
    # Revoking ends streams already open with the token (at their next event), and refuses new ones.
    bearer = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{base}/kernels/{kernel}/events", headers=bearer, timeout=60) as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: snapshot"
        assert alice.http.delete(f"/kernels/{kernel}/view-tokens/{link['token_id']}").status_code == 200
        assert alice.add(kernel, 3, "'after the revocation'").status_code == 200
        assert not any("after the revocation" in line for line in lines)  # the stream ended, without it
    assert httpx.get(f"{base}/kernels/{kernel}/events", headers=bearer).status_code == 401
    page.locator("#state[data-state=gone]").wait_for()  # the open page's reconnect was refused
    assert "revoked" in page.locator("#connection").inner_text()
    assert alice.http.delete(f"/kernels/{kernel}/view-tokens/{link['token_id']}").status_code == 404


def test_an_expired_link_is_refused(alice_kernel: tuple[Api, int]) -> None:
    alice, kernel = alice_kernel
    link = alice.http.post(f"/kernels/{kernel}/view-tokens", json={"expires_in": 1}).json()
    url = f"{str(alice.http.base_url).rstrip('/')}/kernels/{kernel}/events"
    deadline = time.monotonic() + 30
    while True:
        with httpx.stream("GET", url, headers={"Authorization": f"Bearer {link['token']}"}, timeout=30) as response:
            if response.status_code == 401:
                break
        assert time.monotonic() < deadline, "a one-second link still opens the events after 30 s"
        time.sleep(0.2)
    assert alice.http.post(f"/kernels/{kernel}/view-tokens", json={"expires_in": 10**9}).status_code == 422


def test_index_page_lists_ones_kernels_and_opens_their_views(alice_kernel: tuple[Api, int], page: Any) -> None:
    alice, kernel = alice_kernel
    alice.add(kernel, 1, "print('from the index')")
    alice.run(kernel, 1)
    page.goto(str(alice.http.base_url))
    page.locator("#login").wait_for()
    page.fill("#key", ALICE)
    page.click("#login button")
    page.get_by_role("link", name="live view").click()
    wait_for_text(page, 1, "from the index")
    assert "token=" in page.url
