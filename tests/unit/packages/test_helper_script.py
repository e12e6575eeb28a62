"""The fetch helper's pure parts: what pip's failures mean, what its report says to install."""

from __future__ import annotations

from gateway.packages.helper_script import choose_failure, classify, wheels_from_report


def test_unreachable_index() -> None:
    output = (
        "WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection "
        "broken by 'NewConnectionError(...: Failed to establish a new connection: [Errno 111] Connection refused')'"
        "\nERROR: Could not find a version that satisfies the requirement tabulate (from versions: none)\n"
    )
    assert classify(output)["kind"] == "unreachable"


def test_no_version_names_the_requirement_and_the_versions_seen() -> None:
    output = "ERROR: Could not find a version that satisfies the requirement tabulate==99 (from versions: 0.8, 0.9)"
    failure = classify(output)
    assert (failure["kind"], failure["requirement"], failure["versions"]) == (
        "no_version",
        "tabulate==99",
        ["0.8", "0.9"],
    )


def test_conflicts_keep_pip_explanation() -> None:
    output = (
        "ERROR: Cannot install foo==1.0 because these package versions have conflicting dependencies.\n\n"
        "The conflict is caused by:\n    foo 1.0 depends on numpy<2\n    The user requested (constraint) numpy==2.3.5\n"
        "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/...\n"
    )
    failure = classify(output)
    assert failure["kind"] == "conflict"
    assert "numpy<2" in failure["detail"] and "numpy==2.3.5" in failure["detail"]


def test_why_no_wheel_fits() -> None:
    assert choose_failure([], None) == "not_found"
    assert choose_failure(["0.9"], ["x-0.9-py3-none-any.whl"]) == "not_found"  # the specifier excluded them
    assert choose_failure([], ["x-1.0.tar.gz", "x-0.9.zip"]) == "sdist_only"
    assert choose_failure([], ["x-1.0.tar.gz", "x-1.0-cp27-cp27mu-manylinux1_x86_64.whl"]) == "no_wheel"


def test_report_wheels() -> None:
    report = {
        "install": [
            {
                "metadata": {"name": "cffi", "version": "2.1.1"},
                "requested": True,
                "download_info": {
                    "url": "https://files.example/packages/cffi-2.1.1-cp311-cp311-manylinux_2_17_x86_64.whl",
                    "archive_info": {"hashes": {"sha256": "ab" * 32}},
                },
            }
        ]
    }
    (wheel,) = wheels_from_report(report)
    assert wheel["filename"] == "cffi-2.1.1-cp311-cp311-manylinux_2_17_x86_64.whl"
    assert (wheel["name"], wheel["version"], wheel["sha256"], wheel["requested"]) == ("cffi", "2.1.1", "ab" * 32, True)
