"""View tokens: one kernel's view and events only, GET only, expiry, revocation; the metrics token."""

from __future__ import annotations

from typing import Any

from gateway.security.view_tokens import MetricsToken, Viewer, ViewTokens


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scope(path: str, query: str = "", method: str = "GET", headers: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": query.encode(), "headers": headers or []}


def test_a_token_opens_its_kernels_view_and_events_only() -> None:
    tokens = ViewTokens()
    token, secret = tokens.issue(42, "alice", 600)
    viewer = tokens.authenticate(scope("/kernels/42/view", f"token={secret}"))
    assert isinstance(viewer, Viewer) and viewer.kernel_id == 42 and not viewer.owns("alice")
    assert not viewer.owns(None) and not viewer.sees_everything
    assert tokens.authenticate(scope("/kernels/42/events", f"token={secret}")) is not None
    for refused in (
        scope("/kernels/43/view", f"token={secret}"),  # another kernel
        scope("/cell", f"token={secret}", "POST"),
        scope("/kernels/42/cells", f"token={secret}"),
        scope("/kernels/42/view", f"token={secret}", "POST"),
        scope("/kernels/42/view", "token=wrong"),
        scope("/kernels/42/view"),
    ):
        assert tokens.authenticate(refused) is None, refused
    assert [t.id for t in tokens.list(42)] == [token.id] and secret not in str(token.public())


def test_expired_and_revoked_tokens_are_refused() -> None:
    clock = Clock()
    tokens = ViewTokens(clock)
    short, short_secret = tokens.issue(1, None, 60)
    kept, kept_secret = tokens.issue(1, None, 600)
    clock.now += 61
    assert tokens.check(short_secret, 1) is None and tokens.check(kept_secret, 1) is not None
    assert not tokens.alive(short.id) and tokens.alive(kept.id)
    assert tokens.revoke(1, kept.id) and not tokens.revoke(1, kept.id)
    assert tokens.check(kept_secret, 1) is None and tokens.list(1) == [] and not tokens.alive(kept.id)


def test_metrics_token_opens_metrics_alone() -> None:
    token = MetricsToken("scrape-secret-123456")
    bearer = [(b"authorization", b"Bearer scrape-secret-123456")]
    assert token.authenticate(scope("/metrics", headers=bearer)) is not None
    assert token.authenticate(scope("/kernels", headers=bearer)) is None
    assert token.authenticate(scope("/metrics", headers=[(b"authorization", b"Bearer nope")])) is None
