"""View tokens: one kernel's view and events only, GET only, expiry, revocation; the metrics token."""

from __future__ import annotations

from typing import Any

from gateway.security.view_tokens import MetricsToken, Viewer, ViewTokens


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scope(path: str, secret: str | None = None, method: str = "GET", query: str = "") -> dict[str, Any]:
    headers = [(b"authorization", f"Bearer {secret}".encode())] if secret else []
    return {"type": "http", "method": method, "path": path, "query_string": query.encode(), "headers": headers}


def test_a_token_opens_its_kernels_events_only() -> None:
    tokens = ViewTokens()
    token, secret = tokens.issue(42, "alice", 600)
    viewer = tokens.authenticate(scope("/kernels/42/events", secret))
    assert isinstance(viewer, Viewer) and viewer.kernel_id == 42 and not viewer.owns("alice")
    assert not viewer.owns(None) and not viewer.sees_everything
    for refused in (
        scope("/kernels/43/events", secret),  # another kernel
        scope("/cell", secret, "POST"),
        scope("/kernels/42/cells", secret),
        scope("/kernels/42/events", secret, "POST"),
        scope("/kernels/42/events", "wrong"),
        scope("/kernels/42/events"),
        scope("/kernels/42/events", query=f"token={secret}"),  # never from the URL: logs would keep it
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
    assert token.authenticate(scope("/metrics", "scrape-secret-123456")) is not None
    assert token.authenticate(scope("/kernels", "scrape-secret-123456")) is None
    assert token.authenticate(scope("/metrics", "nope")) is None
