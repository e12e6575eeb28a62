"""API keys, the rate limiter and the audit log, on their own (no HTTP, no Docker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.security.audit import AuditLog, code_fields
from gateway.security.keys import KeyRing, parse_keys, secret_from_header
from gateway.security.rate_limit import RateLimiter

ALICE = "alice-secret-0123456789"
ROOT = "root-secret-0123456789ab"


def test_keys_parse_and_authenticate() -> None:
    ring = KeyRing(parse_keys(f"alice:{ALICE}, root:{ROOT}:admin\n# a comment\n", "test"))
    assert ring.enabled and ring.ids == ["alice", "root"]
    alice = ring.authenticate(ALICE)
    assert alice is not None and alice.key_id == "alice" and not alice.admin
    root = ring.authenticate(ROOT)
    assert root is not None and root.admin and root.owns("alice")
    assert alice.owns("alice") and not alice.owns("root") and not alice.owns(None)
    assert ring.authenticate("alice") is None and ring.authenticate(ALICE + "x") is None
    assert ring.authenticate("") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice", "entry 1 is not"),
        (f"alice:{ALICE}:root", "entry 1 is not"),
        ("alice:short", "secret too short"),
        (f"bad id:{ALICE}", "key id must be"),
    ],
)
def test_malformed_keys_are_refused_without_showing_the_secret(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        parse_keys(text, "JUPYCELL_API_KEYS")
    assert ALICE not in str(error.value)


def test_duplicate_ids_and_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="unique; repeated: alice"):
        KeyRing(parse_keys(f"alice:{ALICE},alice:{ROOT}", "t"))
    with pytest.raises(ValueError, match="same secret"):
        KeyRing(parse_keys(f"alice:{ALICE},bob:{ALICE}", "t"))


def test_keys_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"root:{ROOT}:admin\n")
    path.chmod(0o600)
    ring = KeyRing.load(f"alice:{ALICE}", path)
    assert ring.ids == ["alice", "root"]
    with pytest.raises(ValueError, match="No such file"):
        KeyRing.load(None, tmp_path / "missing")
    assert not KeyRing.load(None, None).enabled


@pytest.mark.parametrize(
    ("header", "secret"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("token abc", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        (None, None),
    ],
)
def test_secret_from_header(header: str | None, secret: str | None) -> None:
    assert secret_from_header(header) == secret


def test_rate_limiter_bursts_then_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [limiter.check("a") for _ in range(3)] == [None, None, None]
    assert limiter.check("a") == 1  # next token in 0.5 s: Retry-After rounds up to whole seconds
    assert limiter.check("b") is None  # buckets are per key
    now[0] = 0.5
    assert limiter.check("a") is None and limiter.check("a") == 1
    assert RateLimiter(rate=0, burst=1).check("a") is None  # 0: off


def test_audit_log_writes_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    audit.record(key_id="alice", action="cell.add", kernel=7, **code_fields("print(1)"), outcome="ok")
    audit.close()
    (line,) = path.read_text().splitlines()
    record = json.loads(line)
    assert record["key_id"] == "alice" and record["kernel"] == 7 and record["time"].endswith("Z")
    assert record["code_bytes"] == 8 and len(record["code_sha256"]) == 64 and "print" not in line
    AuditLog("off").record(action="x")  # no-op
