"""CURVE for tcp:// endpoints: ipc sockets are guarded by file modes, tcp ones by keys.

A tcp:// endpoint is only served with a server key pair and a directory of the public
keys of the bots allowed in (ZeroMQ's ZAP handler checks every connection against it);
without them the daemon refuses to start. ``alphad keygen`` writes key pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


class SecurityConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[security]``: CURVE keys for tcp:// endpoints."""

    curve_server_secret: str = ""  # a .key_secret file written by `alphad keygen`
    curve_clients_dir: str = ""  # the public .key files of the bots allowed in


class SecurityError(Exception):
    """A tcp endpoint without keys, or keys that cannot be read."""


def needs_curve(endpoints: list[str]) -> bool:
    """Whether any endpoint leaves the host's file permissions (tcp://, not ipc://)."""
    return any(not e.startswith(("ipc://", "inproc://")) for e in endpoints)


class Curve:
    """The server's keys and the running ZAP authenticator."""

    def __init__(self, context: zmq.Context[Any], config: SecurityConfig) -> None:
        if not config.curve_server_secret or not config.curve_clients_dir:
            raise SecurityError(
                "a tcp:// endpoint needs [security] curve_server_secret and curve_clients_dir "
                "(create keys with `alphad keygen`)"
            )
        clients = Path(config.curve_clients_dir)
        if not clients.is_dir():
            raise SecurityError(f"curve_clients_dir {clients} is not a directory")
        try:
            public, secret = zmq.auth.load_certificate(config.curve_server_secret)
        except (OSError, ValueError) as exc:
            raise SecurityError(f"cannot read {config.curve_server_secret}: {exc}") from None
        if secret is None:
            raise SecurityError(f"{config.curve_server_secret} holds no secret key")
        self.public, self.secret = public, secret
        self.authenticator = ThreadAuthenticator(context)
        self.authenticator.start()
        self.authenticator.configure_curve(domain="*", location=str(clients))

    def serve(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE server (before it binds)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def stop(self) -> None:
        self.authenticator.stop()


def keygen(directory: str, name: str) -> tuple[str, str]:
    """Write NAME.key (public, to share) and NAME.key_secret (mode 0600) in ``directory``."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(target, name)
    Path(secret).chmod(0o600)
    return str(public), str(secret)
