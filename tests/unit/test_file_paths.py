"""Paths of files moved in and out of a kernel's working directory."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidFilePath
from gateway.kernels.files import clean_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [("data.csv", "data.csv"), ("a/b/c.txt", "a/b/c.txt"), ("./x//y.bin", "x/y.bin")],
)
def test_relative_paths_are_normalised(path: str, expected: str) -> None:
    assert clean_path(path) == expected


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../secret", "a/../../b", "a/..", "x\x00y", ".", "\\\\host"])
def test_escaping_or_empty_paths_are_rejected(path: str) -> None:
    with pytest.raises(InvalidFilePath):
        clean_path(path)
