"""The seed README's API, through HTTP, against real kernel containers."""

from __future__ import annotations

import base64

import pytest

from testing.harness import HOLD_UNTIL_INTERRUPTED, Api, BackgroundRun, stdout_of


def test_start_returns_random_integer_ids(api: Api) -> None:
    first, second = api.start(), api.start()
    try:
        assert isinstance(first, int) and isinstance(second, int)
        assert first != second
        assert abs(first - second) > 1000  # not sequential
    finally:
        api.shutdown(first)
        api.shutdown(second)


def test_seed_readme_example(api: Api, kernel: int) -> None:
    """The README's curl sequence: 20, then 30 after editing cell 2 (the seed's 15 was wrong)."""
    assert api.add(kernel, 1, "x = 10").json() == {"status": "Cell 1 added.", "version": 1}
    assert api.add(kernel, 2, "y = x * 2").json() == {"status": "Cell 2 added.", "version": 2}
    assert api.add(kernel, 3, "print(y)").json() == {"status": "Cell 3 added.", "version": 3}

    run_all = api.cell(kernel, "run_all").json()
    assert [c["cell_number"] for c in run_all["outputs"]] == [1, 2, 3]
    assert run_all["outputs"][0]["outputs"] == [] and run_all["outputs"][1]["outputs"] == []
    assert run_all["outputs"][2]["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "20\n"}]
    outputs = api.http.get("/cell_outputs", params={"kernel_id": kernel, "cell_number": 3}).json()
    assert outputs["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "20\n"}]

    assert api.cell(kernel, "edit", 2, "y = x * 3").json() == {"status": "Cell 2 updated.", "version": 4}
    api.cell(kernel, "run_all")
    outputs = api.http.get("/cell_outputs", params={"kernel_id": kernel, "cell_number": 3}).json()
    assert outputs["outputs"][0]["text"] == "30\n"


def test_run_single_cell_and_delete(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "print('Hello, World!')")
    result = api.run(kernel, 1).json()
    assert result["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "Hello, World!\n"}]
    assert result["status"] == "ok" and result["execution_count"] == 1
    assert api.cell(kernel, "delete", 1).json() == {"status": "Cell 1 deleted.", "version": 2}
    assert api.run(kernel, 1).status_code == 404


def test_state_persists_between_runs(api: Api, kernel: int) -> None:
    api.execute(kernel, "counter = 41")
    assert stdout_of(api.execute(kernel, "counter += 1; print(counter)")) == "42\n"


def test_rich_outputs(api: Api, kernel: int) -> None:
    result = api.execute(kernel, "6 * 7")
    assert result["outputs"] == [
        {"output_type": "execute_result", "execution_count": 1, "data": {"text/plain": "42"}, "metadata": {}}
    ]
    html = api.execute(kernel, "from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b>'))")
    assert html["outputs"][0]["output_type"] == "display_data"
    assert html["outputs"][0]["data"]["text/html"] == "<b>bold</b>"
    frame = api.execute(kernel, "import pandas as pd\npd.DataFrame({'a': [1, 2]})")
    assert "text/html" in frame["outputs"][0]["data"] and "<table" in frame["outputs"][0]["data"]["text/html"]


def test_matplotlib_plot_is_png(api: Api, kernel: int) -> None:
    result = api.execute(kernel, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()")
    images = [o for o in result["outputs"] if o["output_type"] == "display_data" and "image/png" in o["data"]]
    assert len(images) == 1, result
    assert base64.b64decode(images[0]["data"]["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")


def test_error_output(api: Api, kernel: int) -> None:
    result = api.execute(kernel, "1 / 0")
    assert result["status"] == "error"
    error = result["outputs"][-1]
    assert error["output_type"] == "error" and error["ename"] == "ZeroDivisionError"
    assert error["evalue"] == "division by zero" and error["traceback"]


def test_run_all_stops_at_first_failure(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "a = 1")
    api.add(kernel, 5, "raise ValueError('boom')")
    api.add(kernel, 9, "a = 2")
    result = api.cell(kernel, "run_all").json()
    assert result["status"] == "error" and result["failed_cell"] == 5
    assert [c["cell_number"] for c in result["outputs"]] == [1, 5]
    assert stdout_of(api.execute(kernel, "print(a)")) == "1\n"  # cell 9 never ran


def test_cells_run_in_ascending_number_order(api: Api, kernel: int) -> None:
    api.add(kernel, 10, "order.append(10); print(order)")
    api.add(kernel, 2, "order = [2]")
    api.add(kernel, 7, "order.append(7)")
    result = api.cell(kernel, "run_all").json()
    assert result["outputs"][-1]["outputs"][0]["text"] == "[2, 7, 10]\n"


def test_input_fails_at_once(api: Api, kernel: int) -> None:
    result = api.execute(kernel, "input('name? ')", timeout=30)
    assert result["status"] == "error"
    assert result["outputs"][-1]["ename"] == "StdinNotImplementedError"


def test_several_kernels_work_at_once(api: Api) -> None:
    """A long run on one kernel does not hold up another kernel."""
    slow, fast = api.start(), api.start()
    try:
        api.add(slow, 1, HOLD_UNTIL_INTERRUPTED)  # runs until interrupted: the fast kernel cannot wait it out
        run = BackgroundRun(api, slow, 1)
        run.wait_for_output()
        assert stdout_of(api.execute(fast, "print(1 + 1)")) == "2\n"
        assert run.running, "the slow run ended before it was interrupted"
        assert api.http.post(f"/kernels/{slow}/interrupt").status_code == 200
        assert stdout_of(run.result()) == "holding\nreleased\n"
    finally:
        api.shutdown(slow)
        api.shutdown(fast)


def test_kernels_do_not_share_state(api: Api) -> None:
    first, second = api.start(), api.start()
    try:
        api.execute(first, "secret = 'first'")
        result = api.execute(second, "print(secret)")
        assert result["status"] == "error" and result["outputs"][-1]["ename"] == "NameError"
    finally:
        api.shutdown(first)
        api.shutdown(second)


# --- bad input: the right status, a message that says what was wrong, nothing changed ---------------------


def test_unknown_kernel_is_404(api: Api) -> None:
    for action, extra in [("add", {"cell_number": 1, "code": "1"}), ("run", {"cell_number": 1}), ("run_all", {})]:
        response = api.http.post("/cell", json={"kernel_id": 1, "action": action, **extra})
        assert response.status_code == 404
        assert response.json()["detail"] == "Kernel 1 not found."
    response = api.http.get("/cell_outputs", params={"kernel_id": 1, "cell_number": 1})
    assert response.status_code == 404


def test_adding_existing_cell_is_409_and_keeps_code(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "print('original')")
    response = api.add(kernel, 1, "print('replacement')")
    assert response.status_code == 409
    assert "Cell 1 already exists" in response.json()["detail"]
    assert stdout_of(api.run(kernel, 1).json()) == "original\n"


@pytest.mark.parametrize("action", ["edit", "run", "delete"])
def test_missing_cell_is_404(api: Api, kernel: int, action: str) -> None:
    response = api.cell(kernel, action, 99, "x = 1" if action == "edit" else None)
    assert response.status_code == 404
    assert response.json()["detail"] == "Cell 99 not found."


def test_outputs_of_missing_cell_is_404(api: Api, kernel: int) -> None:
    response = api.http.get("/cell_outputs", params={"kernel_id": kernel, "cell_number": 4})
    assert response.status_code == 404 and response.json()["detail"] == "Cell 4 not found."


def test_an_invalid_request_is_422_and_changes_nothing(api: Api, kernel: int) -> None:
    """One case against a real kernel; the validation table is tests/unit/test_api_validation.py::test_bad_requests."""
    response = api.http.post("/cell", json={"kernel_id": kernel, "cell_number": "one", "code": "1", "action": "add"})
    assert response.status_code == 422, response.text
    assert "cell_number" in response.json()["detail"]
    assert api.http.get(f"/kernels/{kernel}/cells").json()["cells"] == []


def test_wrong_kernel_id_type_is_422(api: Api) -> None:
    response = api.http.post("/cell", json={"kernel_id": "abc", "action": "run_all"})
    assert response.status_code == 422 and "kernel_id" in response.json()["detail"]
    response = api.http.get("/cell_outputs", params={"kernel_id": "abc", "cell_number": 1})
    assert response.status_code == 422 and "kernel_id" in response.json()["detail"]
