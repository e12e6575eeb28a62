"""Untrusted JSON: decoded with a nesting limit, every refusal a ValueError with a message for the sender."""

from __future__ import annotations

import pytest

from gateway.safe_json import NotJSON, TooDeep, loads, nesting_depth


@pytest.mark.parametrize(
    ("text", "depth"), [("1", 0), ('"[["', 0), ("[]", 1), ('{"a": [{"b": 1}]}', 3), ('[[], [[[]]], {"a": {}}]', 4)]
)
def test_nesting_depth(text: str, depth: int) -> None:
    assert nesting_depth(loads(text)) == depth


def test_the_limit_is_inclusive() -> None:
    assert nesting_depth(loads("[" * 10 + "]" * 10, max_depth=10)) == 10
    with pytest.raises(TooDeep, match="nested more than 9 levels deep"):
        loads("[" * 10 + "]" * 10, max_depth=9)


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_200k_levels_are_refused_not_a_recursion_error(opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    with pytest.raises(TooDeep):
        loads(opening * 200_000 + "1" + closing * 200_000)


@pytest.mark.parametrize("data", [b"{not json", b"\xff\xfe", b"", "[1,]"])
def test_not_json_says_so(data: bytes | str) -> None:
    with pytest.raises(NotJSON) as caught:
        loads(data)
    assert isinstance(caught.value, ValueError) and str(caught.value)
