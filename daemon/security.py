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

from protocol.curve import load_key_file, over_network


class SecurityConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[security]``: CURVE keys for tcp:// endpoints."""

    curve_server_secret: str = ""  # a .key_secret file written by `alphad keygen`
    curve_clients_dir: str = ""  # the public .key files of the bots allowed in
    # For `alphad status/report/top/watch` against a tcp:// daemon: its server.key and
    # this operator's own .key_secret (whose .key is in the daemon's curve_clients_dir).
    curve_server_key: str = ""
    curve_client_secret: str = ""


class SecurityError(Exception):
    """A tcp endpoint without keys, or keys that cannot be read."""


def needs_curve(endpoints: list[str]) -> bool:
    """Whether any endpoint leaves the host's file permissions (tcp://, not ipc://)."""
    return any(over_network(e) for e in endpoints)


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
            public, secret = load_key_file(config.curve_server_secret)
        except ValueError as exc:
            raise SecurityError(str(exc)) from None
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


def keygen(directory: str, name: str, *, force: bool = False) -> tuple[str, str]:
    """Write NAME.key (public, to share) and NAME.key_secret (mode 0600) in ``directory``.

    An existing pair is kept unless ``force``: a replaced secret key locks out every
    peer that trusts the old public one.
    """
    target = Path(directory)
    existing = [p for p in (target / f"{name}.key", target / f"{name}.key_secret") if p.exists()]
    if existing and not force:
        raise SecurityError(
            f"{existing[-1]} exists: replacing it locks out every peer that trusts its "
            "public key; pass --force to replace it"
        )
    target.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(target, name)
    Path(secret).chmod(0o600)
    return str(public), str(secret)
