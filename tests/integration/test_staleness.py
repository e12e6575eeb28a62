"""Dependencies between cells through the API: staleness after edits, runs with dependencies, run_stale."""

from __future__ import annotations

from testing.harness import Api, stdout_of


def stale_cells(api: Api, kernel: int) -> list[int]:
    return [c["number"] for c in api.http.get(f"/kernels/{kernel}/cells").json()["cells"] if c["stale"]]


def seed_notebook(api: Api, kernel: int) -> None:
    for number, code in enumerate(["x = 10", "y = x * 2", "print(y)", "z = 'unrelated'"], start=1):
        assert api.add(kernel, number, code).status_code == 200
    assert api.cell(kernel, "run_all").json()["status"] == "ok"
    assert stale_cells(api, kernel) == []


def test_edit_marks_dependents_stale_and_with_dependencies_catches_up(api: Api, kernel: int) -> None:
    seed_notebook(api, kernel)
    api.cell(kernel, "edit", 2, "y = x * 3")
    assert stale_cells(api, kernel) == [2, 3]
    outputs = api.http.get("/cell_outputs", params={"kernel_id": kernel, "cell_number": 3}).json()
    assert outputs["stale"] is True and stdout_of(outputs) == "20\n"  # the old output, flagged

    plain = api.run(kernel, 3).json()  # without dependencies: the kernel still holds the old y
    assert stdout_of(plain) == "20\n" and plain["dependency_runs"] == []

    result = api.run(kernel, 3, with_dependencies=True).json()
    assert [r["cell_number"] for r in result["dependency_runs"]] == [2]  # cell 1 is up to date
    assert result["cell_number"] == 3 and stdout_of(result) == "30\n"
    assert stale_cells(api, kernel) == []


def test_rerun_and_delete_mark_dependents(api: Api, kernel: int) -> None:
    seed_notebook(api, kernel)
    api.run(kernel, 1)
    assert stale_cells(api, kernel) == [2, 3]
    api.run(kernel, 2)
    assert stale_cells(api, kernel) == [3]
    api.run(kernel, 3)
    api.cell(kernel, "delete", 2)
    assert stale_cells(api, kernel) == [3]


def test_run_stale_brings_the_notebook_up_to_date_in_order(api: Api, kernel: int) -> None:
    seed_notebook(api, kernel)
    api.cell(kernel, "edit", 1, "x = 1")
    api.add(kernel, 5, "print(z, x)")  # never ran
    result = api.cell(kernel, "run_stale").json()
    assert result["status"] == "ok"
    assert [r["cell_number"] for r in result["outputs"]] == [1, 2, 3, 5]
    assert stdout_of(result["outputs"][2]) == "2\n" and stdout_of(result["outputs"][3]) == "unrelated 1\n"
    assert stale_cells(api, kernel) == []
    assert api.cell(kernel, "run_stale").json()["outputs"] == []  # nothing left to do


def test_failing_dependency_stops_the_run_and_says_so(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "x = 1")
    api.add(kernel, 2, "print(x)")
    api.cell(kernel, "run_all")
    api.cell(kernel, "edit", 1, "x = 1 / 0")
    result = api.run(kernel, 2, with_dependencies=True).json()
    assert result["status"] == "error" and result["cell_number"] == 1
    assert "cell 2 was not run" in result["detail"]
