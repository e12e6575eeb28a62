"""``.ipynb`` export and import, and files in and out of the kernel's working directory, through HTTP."""

from __future__ import annotations

import json
import os

import nbformat

from testing.harness import Api, stdout_of


def test_ipynb_round_trip_between_kernels(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "x = 10")
    api.add(kernel, 3, "print(x * 3)")
    api.cell(kernel, "run_all")
    response = api.http.get(f"/kernels/{kernel}/notebook")
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-ipynb+json"
    assert "attachment" in response.headers["content-disposition"]
    node = nbformat.reads(response.text, as_version=4)
    nbformat.validate(node)
    assert node.cells[1].outputs[0]["text"] == "30\n" and node.cells[1].execution_count == 2

    other = api.start()
    try:
        imported = api.http.post(f"/kernels/{other}/notebook", content=response.content)
        assert imported.status_code == 200, imported.text
        assert imported.json()["cells"] == [1, 3]
        result = api.cell(other, "run_all").json()
        assert stdout_of(result["outputs"][-1]) == "30\n"
    finally:
        api.shutdown(other)


def test_import_errors(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "x = 1")
    not_json = api.http.post(f"/kernels/{kernel}/notebook", content=b"{not json")
    assert not_json.status_code == 422 and "not JSON" in not_json.json()["detail"]
    old = api.http.post(f"/kernels/{kernel}/notebook", json={"nbformat": 3, "cells": []})
    assert old.status_code == 422 and "nbformat must be 4" in old.json()["detail"]
    clash = {
        "nbformat": 4,
        "cells": [{"cell_type": "code", "source": "y = 2", "metadata": {"jupycell": {"cell_number": 1}}}],
    }
    response = api.http.post(f"/kernels/{kernel}/notebook", json=clash)
    assert response.status_code == 409 and "1 already exist" in response.json()["detail"]
    cells = api.http.get(f"/kernels/{kernel}/cells").json()["cells"]
    assert [(c["number"], c["code"]) for c in cells] == [(1, "x = 1")]  # nothing half-imported
    foreign = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("y = 2")])
    added = api.http.post(f"/kernels/{kernel}/notebook", content=json.dumps(foreign).encode())
    assert added.json()["cells"] == [2]


def test_file_upload_and_download(api: Api, kernel: int) -> None:
    payload = os.urandom(3 * 2**20 + 123)  # several chunks
    put = api.http.put(f"/kernels/{kernel}/files/data/blob.bin", content=payload)
    assert put.status_code == 200, put.text
    assert put.json() == {"path": "data/blob.bin", "size": len(payload)}
    code = "import hashlib; print(hashlib.sha256(open('/work/data/blob.bin','rb').read()).hexdigest())"
    assert stdout_of(api.execute(kernel, code)).strip() == __import__("hashlib").sha256(payload).hexdigest()

    api.execute(kernel, "open('report.txt', 'w').write('from the kernel\\n')")
    got = api.http.get(f"/kernels/{kernel}/files/report.txt")
    assert got.status_code == 200 and got.content == b"from the kernel\n"
    assert got.headers["content-type"].startswith("text/plain")
    assert api.http.get(f"/kernels/{kernel}/files/data/blob.bin").content == payload
    # The transfers neither left names in the user's namespace nor used execution counts.
    leaked = api.execute(kernel, "print([n for n in ('ROOT', 'stat', 'read', 'write', 'base64', 'ns') if n in dir()])")
    assert stdout_of(leaked) == "[]\n" and leaked["execution_count"] == 3


def test_file_errors(api: Api, kernel: int) -> None:
    assert api.http.get(f"/kernels/{kernel}/files/missing.txt").status_code == 404
    for bad in ["..%2F..%2Fetc%2Fpasswd", "a/../../x", "%2Fetc%2Fpasswd"]:
        response = api.http.put(f"/kernels/{kernel}/files/{bad}", content=b"x")
        assert response.status_code in (400, 404, 422), (bad, response.status_code)
        if response.status_code != 404:
            assert "path" in response.json()["detail"].lower()
    api.execute(kernel, "import os; os.symlink('/etc', '/work/etc-link'); os.mkdir('/work/adir')")
    assert api.http.get(f"/kernels/{kernel}/files/etc-link/passwd").status_code == 400
    assert api.http.get(f"/kernels/{kernel}/files/adir").status_code == 400
    assert api.http.get("/kernels/1/files/x").status_code == 404


def test_upload_over_the_limit_is_413(api: Api, kernel: int) -> None:
    response = api.http.put(f"/kernels/{kernel}/files/big.bin", content=b"x" * (65 * 2**20))
    assert response.status_code == 413 and "limit" in response.json()["detail"]


def notebook_of(sources: list[str]) -> bytes:
    """A valid v4.5 notebook of code cells (built as plain JSON: ``new_code_cell`` validates each cell, slowly)."""
    cells = [
        {"id": f"c{n}", "cell_type": "code", "metadata": {}, "execution_count": None, "source": code, "outputs": []}
        for n, code in enumerate(sources)
    ]
    return json.dumps({**nbformat.v4.new_notebook(), "cells": cells}).encode()


def test_hostile_notebooks_are_refused_with_a_reason(api: Api, kernel: int) -> None:
    deep = api.http.post(f"/kernels/{kernel}/notebook", content=b"[" * 200_000 + b"]" * 200_000)
    assert deep.status_code == 422, deep.text
    assert "nested more than 64 levels deep" in deep.json()["detail"]
    huge = api.http.post(f"/kernels/{kernel}/notebook", content=notebook_of([f"x{n} = {n}" for n in range(20_000)]))
    assert huge.status_code == 409, huge.text
    assert "this kernel has 0 cells and this request adds 20000, the limit is 1000" in huge.json()["detail"]
    assert api.http.get(f"/kernels/{kernel}/cells").json()["cells"] == []


def test_a_kernel_takes_max_cells_then_refuses_more(api: Api, kernel: int) -> None:
    sources = [f"x = x + {n}" if n else "x = 0" for n in range(1000)]
    imported = api.http.post(f"/kernels/{kernel}/notebook", content=notebook_of(sources))
    assert imported.status_code == 200, imported.text
    assert imported.json()["warnings"] == []
    refused = api.add(kernel, 5000, "y = 1")
    assert refused.status_code == 409
    assert "this kernel has 1000 cells, the limit is 1000" in refused.json()["detail"]
    assert api.http.get(f"/kernels/{kernel}/notebook").json()["cells"][-1]["source"] == "x = x + 999"
