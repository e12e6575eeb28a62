"""The gateway's kernel connections decode messages as jupyter_client does, but for the headers' dates."""

from __future__ import annotations

import pytest
from jupyter_client.session import Session

from gateway.protocol.session import DatelessSession

KEY = b"a-key"


def frames(session: Session, msg_type: str = "execute_result", content: dict | None = None) -> list[bytes]:
    parent = session.msg("execute_request", {"code": "1+1"})
    msg = session.msg(msg_type, content or {"data": {"text/plain": "2"}, "execution_count": 1}, parent=parent)
    _, signed = session.feed_identities(session.serialize(msg))
    return [bytes(f) for f in signed]


def test_same_message_as_jupyter_client_but_dates_left_as_sent() -> None:
    signed = frames(Session(key=KEY))
    theirs = Session(key=KEY).deserialize(list(signed))
    ours = DatelessSession(key=KEY).deserialize(list(signed))
    assert isinstance(ours["header"]["date"], str) and isinstance(ours["parent_header"]["date"], str)
    for msg in (theirs, ours):
        msg["header"].pop("date"), msg["parent_header"].pop("date")
    assert ours == theirs


def test_signature_is_required_checked_and_not_replayed() -> None:
    signed = frames(Session(key=KEY))
    session = DatelessSession(key=KEY)
    with pytest.raises(ValueError, match="Unsigned"):
        session.deserialize([b"", *signed[1:]])
    with pytest.raises(ValueError, match="Invalid Signature"):
        session.deserialize([b"0" * len(signed[0]), *signed[1:]])
    tampered = frames(Session(key=b"another key"))
    with pytest.raises(ValueError, match="Invalid Signature"):
        session.deserialize(tampered)
    session.deserialize(list(signed))
    with pytest.raises(ValueError, match="Duplicate Signature"):
        session.deserialize(list(signed))


@pytest.mark.parametrize(
    "bad",
    [
        [b"", b"{}", b"{}"],
        [b"", b"[]", b"{}", b"{}", b"{}"],
        [b"", b"{}", b"{}", b"{}", b"{}"],
        [b"", b"x", b"", b"", b""],
    ],
)
def test_bad_messages_raise_as_in_jupyter_client(bad: list[bytes]) -> None:
    """Unsigned sessions (no key: no signature check) on malformed frames: the same exception as jupyter_client."""
    with pytest.raises(Exception) as theirs:
        Session(key=b"").deserialize(list(bad))
    with pytest.raises(Exception) as ours:
        DatelessSession(key=b"").deserialize(list(bad))
    assert type(ours.value) is type(theirs.value)
