"""CurveZMQ keys of agents and gateways, in ZeroMQ's certificate files (zcert, read and written by ``zmq.auth``).

An agent has a keypair (its secret file) and an allow-list of gateway public keys: one certificate file, or a
directory of them (every ``*.key`` file). A gateway has its own keypair and the agents' public key.
``python -m gateway.agent.keys DIR`` writes a fresh agent and gateway keypair into DIR.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import zmq.auth


@dataclass(frozen=True)
class Keypair:
    public: bytes  # Z85, 40 bytes
    secret: bytes


def load_keypair(path: Path) -> Keypair:
    """The keypair in a zcert secret file; ValueError if the file has no secret key."""
    public, secret = zmq.auth.load_certificate(path)
    if not secret:
        raise ValueError(f"{path} holds no secret key (give the *.key_secret file)")
    return Keypair(public, secret)


def load_public_key(path: Path) -> bytes:
    """The public key in a zcert file (public or secret)."""
    public, _ = zmq.auth.load_certificate(path)
    return public


def load_allowed_keys(path: Path) -> frozenset[bytes]:
    """The public keys allowed to connect: one certificate file, or every ``*.key`` file in a directory."""
    if path.is_dir():
        keys = frozenset(zmq.auth.load_certificates(path))
    else:
        keys = frozenset({load_public_key(path)})
    if not keys:
        raise ValueError(f"no public keys found in {path}")
    return keys


def create_keys(directory: Path) -> dict[str, Path]:
    """Write an ``agent`` and a ``gateway`` keypair (``NAME.key`` public, ``NAME.key_secret`` secret) into
    ``directory``; return the four paths."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths: dict[str, Path] = {}
    for name in ("agent", "gateway"):
        public, secret = zmq.auth.create_certificates(directory, name)
        paths[f"{name}_public"], paths[f"{name}_secret"] = Path(public), Path(secret)
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m gateway.agent.keys DIR")
    for what, where in create_keys(Path(sys.argv[1])).items():
        print(f"{what}: {where}")
