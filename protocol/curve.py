"""CURVE keys for a client of a tcp:// daemon, and what a failed handshake means.

ipc:// sockets are guarded by file modes; a tcp:// endpoint is served only with CURVE.
A client then needs the daemon's public key (``server.key``) and a key pair of its own
(``NAME.key_secret``) whose public half (``NAME.key``) is in the daemon's
``curve_clients_dir``. ``alphad keygen DIR NAME`` writes both files of a pair.

A refused handshake never reaches the daemon, so it cannot be answered with an
``error`` reply: the request times out. The client watches its tcp sockets' handshakes
and, on a timeout, raises ``CurveRefused`` saying why instead of a bare ``timeout``.
"""

from __future__ import annotations

import itertools
import os
import struct
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.auth

from alphad.protocol.errors import AlphadError

KeyFile = str | os.PathLike[str]


def over_network(endpoint: str) -> bool:
    """Whether an endpoint leaves the host's file permissions (tcp://, not ipc:// or inproc://)."""
    return not endpoint.startswith(("ipc://", "inproc://"))


def load_key_file(path: KeyFile) -> tuple[bytes, bytes | None]:
    """The public key and the secret key (None in a public ``.key`` file) of a file
    written by ``alphad keygen``; ``ValueError`` naming the file when it cannot be read."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        raise ValueError(f"cannot read CURVE key file {path}: {exc.strerror or exc}") from None
    except Exception:  # ZeroMQ's reader: ValueError, an IndexError on a cut-off line, ...
        raise ValueError(f"{path} is not a CURVE key file written by `alphad keygen`") from None
    if not _is_key(public) or (secret is not None and not _is_key(secret)):
        # A copy cut off inside a key reads as a shorter key, which no peer holds.
        raise ValueError(f"{path} is not a CURVE key file written by `alphad keygen`")
    return public, secret


def _is_key(key: bytes) -> bool:
    # ZeroMQ takes a key as 32 raw bytes or as its 40-character Z85 text.
    return len(key) == 32 or (len(key) == 40 and key.isascii())


@dataclass(frozen=True)
class CurveKeys:
    """The keys a client needs for a CURVE daemon: the daemon's public key and its own pair."""

    server_public: bytes
    public: bytes
    secret: bytes

    def __post_init__(self) -> None:
        for name in ("server_public", "public", "secret"):
            if not _is_key(getattr(self, name)):
                raise ValueError(f"CurveKeys.{name} must be a 40-character Z85 key or 32 bytes")

    @classmethod
    def from_files(cls, server_key: KeyFile, client_key: KeyFile) -> CurveKeys:
        """Read ``server.key`` (the daemon's public key) and this client's ``NAME.key_secret``."""
        server_public, _ = load_key_file(server_key)
        public, secret = load_key_file(client_key)
        if secret is None:
            raise ValueError(
                f"{client_key} holds no secret key: give the client's .key_secret file"
            )
        return cls(server_public=server_public, public=public, secret=secret)

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE client of the daemon (before it connects)."""
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret


class CurveRefused(AlphadError):
    """No reply because the CURVE handshake failed: a key is wrong or missing.

    Its code is ``timeout`` (nothing reached the daemon, so a request may be sent again
    once the keys are right); the message says which key to check.
    """

    def __init__(self, message: str) -> None:
        super().__init__("timeout", message)


_HANDSHAKES = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


def _why(event: int, value: int, has_keys: bool) -> str | None:
    """What a failed handshake says about the keys; None for a handshake that succeeded."""
    if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        return None
    # Without keys any failure means CURVE: the daemon closes on the mechanism mismatch,
    # which this side sees either as that mismatch or as a bare closed connection.
    if not has_keys:
        return "the daemon serves this endpoint with CURVE and this client has no keys"
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return (
            "the daemon refused this client's CURVE key (its public key is not in the "
            "daemon's curve_clients_dir)"
        )
    if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "this client has CURVE keys but the endpoint is not served with CURVE"
    # A daemon that cannot decrypt the client's hello closes without a word.
    return "the CURVE handshake failed: check that the server key is this daemon's server.key"


_WATCHES = itertools.count()


class HandshakeWatch:
    """The handshakes of one tcp socket, read without blocking when a request timed out."""

    def __init__(self, sock: zmq.Socket[Any], has_keys: bool) -> None:
        # An address of its own: pyzmq's default is named after the socket's file
        # descriptor, which a new socket reuses while ZeroMQ is still tearing the last
        # one's monitor down ("Address already in use" under load).
        address = f"inproc://alphad-handshakes-{os.getpid()}-{next(_WATCHES)}"
        monitor = sock.get_monitor_socket(_HANDSHAKES, addr=address)
        # A sync view of the same socket, so the asyncio client can drain it alike.
        self.monitor: zmq.Socket[Any] = zmq.Socket.shadow(monitor.underlying)
        self._owner = monitor
        self.has_keys = has_keys
        self.last: tuple[int, int] | None = None

    def refusal(self, endpoint: str) -> CurveRefused | None:
        """Why the last handshake failed, or None when it did not (or none happened)."""
        while self.monitor.poll(0):
            frames = self.monitor.recv_multipart()
            if len(frames) == 2 and len(frames[0]) == 6:
                self.last = struct.unpack("=hi", frames[0])
        why = _why(*self.last, self.has_keys) if self.last is not None else None
        return CurveRefused(f"no reply from {endpoint}: {why}") if why else None

    def close(self) -> None:
        """Stop watching (the socket it watches is closed by its owner)."""
        self._owner.close(linger=0)
