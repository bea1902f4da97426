"""Interactive proofs between processes: prover and verifier exchange JSON messages over
a byte channel (here a ``multiprocessing`` pipe; any socket-like object with
``send_bytes``/``recv_bytes`` works)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from vtrust._io import parse_json
from vtrust.errors import ProofRejected
from vtrust.proofs.circuit import Circuit
from vtrust.proofs.protocol import PreparedVerifier, Prover, RandomChallenges, verifier


def encode(message: dict[str, Any] | None) -> bytes:
    if message is None:
        return b"null"
    values = message["values"]
    if isinstance(values, np.ndarray):
        values = values.ravel().tolist()
    return json.dumps({"kind": message["kind"], "values": values}).encode()


def decode(data: bytes) -> Any:
    try:
        return parse_json(data)
    except (ValueError, UnicodeDecodeError):
        raise ProofRejected("unreadable message") from None


def serve_prover(conn, circuit: Circuit, x: np.ndarray, protocol: str = "fused") -> None:
    """The prover's process: answer the verifier until the protocol ends."""
    conversation = Prover(circuit, protocol).run(x)
    message = next(conversation)
    while True:
        conn.send_bytes(encode(message))
        reply = decode(conn.recv_bytes())
        try:
            message = conversation.send(reply)
        except StopIteration:
            return


def verify_remote(
    conn, circuit: Circuit, x: np.ndarray, *, seed: int | None = None, protocol: str = "fused"
):
    """The verifier's side over ``conn``; the verified outputs or :class:`ProofRejected`."""
    check = verifier(PreparedVerifier.prepare(circuit), x, RandomChallenges(seed), protocol)
    next(check)
    while True:
        try:
            reply = check.send(decode(conn.recv_bytes()))
        except StopIteration as done:
            conn.send_bytes(b"null")
            return done.value
        conn.send_bytes(json.dumps(reply).encode())
