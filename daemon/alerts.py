"""The alert publisher: XPUB sockets fed from a mailbox, two frames per alert.

The sockets are XPUB in manual mode: each subscription a subscriber sends reaches the
daemon, which applies it (``SUBSCRIBE`` right after receiving it applies to that
subscriber's pipe) or refuses it. A plain SUB socket sees no difference. A subscriber is
a process (the ``Peer-Address`` ZeroMQ gives its messages: ``host:uid:gid:pid`` over
ipc, the address over tcp); it may hold ``max_alert_subscriptions`` distinct prefixes.

Refusing is not enough to bound memory: in manual mode ZeroMQ itself keeps every
subscription a connection sent, applied or not, until the connection ends. So a
subscriber over its cap is also disconnected (its accepted sockets are shut down; ZeroMQ
then drops everything it kept for them). Its SUB socket reconnects by itself and is
disconnected again at the next refusal.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

import structlog
import zmq

from actors.base import Actor
from daemon.gateway import LogThrottle, bind_with_mode
from protocol.codec import json_encoder, msgpack_encoder
from protocol.endpoints import alert_topic
from protocol.messages import Alert

log = structlog.get_logger("alphad.alerts")

# Topics are a few words (``status.suspended``); a longer subscription message makes
# ZeroMQ drop the connection before the prefix is stored.
MAX_SUBSCRIPTION_BYTES = 64
# Over tcp the bound must let CURVE's handshake through (its INITIATE command carries the
# client's vouch and metadata, a few hundred bytes): only authenticated clients get there.
CURVE_MAX_MESSAGE_BYTES = 4096
# Subscription messages read per turn of the event loop; the rest wait for the next turn.
DRAIN_BUDGET = 1000
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class SubscriptionBook:
    """Which prefixes each subscriber holds on one socket, and which to refuse.

    Counts are per subscriber and prefix (two SUB sockets of one process may both hold
    ``status.``). ZeroMQ's own unsubscriptions for a connection that ended carry no
    subscriber; ``forget`` drops the subscribers with no connection left instead.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.peers: dict[str, dict[bytes, int]] = {}

    def subscribe(self, peer: str, prefix: bytes) -> bool:
        """Count a subscription; False when it would take ``peer`` over the cap."""
        held = self.peers.setdefault(peer, {})
        count = held.get(prefix)
        if count is None and len(held) >= self.cap:
            return False
        held[prefix] = (count or 0) + 1
        return True

    def unsubscribe(self, peer: str, prefix: bytes) -> None:
        """Count an unsubscription from a connected subscriber."""
        held = self.peers.get(peer)
        if held is None or prefix not in held:
            return
        held[prefix] -= 1
        if held[prefix] <= 0:
            del held[prefix]
            if not held:
                del self.peers[peer]

    def forget(self, connected: Callable[[str], bool]) -> None:
        """Drop every subscriber for which ``connected`` is False."""
        for peer in [p for p in self.peers if not connected(p)]:
            del self.peers[peer]

    def prefixes(self) -> int:
        """Distinct (subscriber, prefix) pairs held."""
        return sum(len(held) for held in self.peers.values())


class AlertSocket:
    """One XPUB socket, its subscription book and the subscribers it disconnected."""

    def __init__(
        self,
        context: zmq.Context[Any],
        endpoint: str,
        *,
        hwm: int,
        max_subscriptions: int,
        encode: Callable[[Alert], bytes],
        curve: Callable[[Any], None] | None,
    ) -> None:
        sock = context.socket(zmq.XPUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.XPUB_MANUAL, 1)
        # A cycle can change many strategies at once: the burst must fit the HWM, and a
        # subscriber that still misses some sees the gap in seq and backfills.
        sock.setsockopt(zmq.SNDHWM, hwm)
        over_ipc = endpoint.startswith("ipc://")
        sock.setsockopt(
            zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES if over_ipc else CURVE_MAX_MESSAGE_BYTES
        )
        # Subscriptions ZeroMQ reads ahead of the daemon: few, so that a subscriber over
        # its cap has little more stored before its connection is shut down.
        sock.setsockopt(zmq.RCVHWM, 100)
        if not over_ipc:
            if curve is None:
                raise ValueError(f"{endpoint}: a tcp endpoint needs CURVE keys")
            curve(sock)
        bind_with_mode(sock, endpoint, 0o660)
        self.socket = sock
        self.endpoint = endpoint
        self.encode = encode
        self.book = SubscriptionBook(max_subscriptions)
        self.refused = 0
        self.disconnected = 0
        self.published = 0
        self._throttle = LogThrottle()
        self._forget_scheduled = False

    def drain(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Apply or refuse the subscriptions waiting; True when more are left."""
        sock = self.socket
        book = self.book
        over: set[str] = set()
        ended = False
        more = True
        for _ in range(DRAIN_BUDGET):
            try:
                frame = sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                more = False
                break
            message = frame.bytes
            if len(message) < 1 or message[0] > 1:
                continue
            prefix = message[1:]
            try:
                peer = str(frame.get("Peer-Address"))
            except zmq.ZMQError:
                # Only ZeroMQ's unsubscriptions for a connection that ended lack it.
                ended = True
                continue
            if message[0] == 0:
                book.unsubscribe(peer, prefix)
                sock.setsockopt(zmq.UNSUBSCRIBE, prefix)
            elif len(message) <= MAX_SUBSCRIPTION_BYTES and book.subscribe(peer, prefix):
                # (over tcp the socket lets longer messages through, for CURVE's handshake)
                sock.setsockopt(zmq.SUBSCRIBE, prefix)
            else:
                self.refused += 1
                if peer not in over:
                    # At once: until the connection ends, ZeroMQ keeps storing all it sends.
                    over.add(peer)
                    self.disconnected += self._disconnect(peer)
                held = self._throttle.admit(peer)
                if held is not None:
                    log.warning(
                        "alert_subscription_refused",
                        endpoint=self.endpoint,
                        subscriber=peer,
                        prefix=prefix[:64].decode(errors="replace"),
                        max_alert_subscriptions=book.cap,
                        suppressed=held,
                    )
        if (ended or over) and not self._forget_scheduled:
            self._forget_scheduled = True
            loop.call_later(1.0, self._forget)
        return more

    def _forget(self) -> None:
        self._forget_scheduled = False
        connected = set()
        for key, conn in self._connections():
            conn.close()
            connected.add(key)
        self.book.forget(lambda peer: any(_same_peer(peer, key) for key in connected))

    def _disconnect(self, peer: str) -> int:
        """Shut down the connections of ``peer``; ZeroMQ notices and lets go of them."""
        cut = 0
        for key, conn in self._connections():
            with conn:
                if _same_peer(peer, key):
                    try:
                        conn.shutdown(socket.SHUT_RDWR)
                        cut += 1
                    except OSError:
                        pass
        if cut and self._throttle.admit("disconnected:" + peer) is not None:
            log.warning(
                "alert_subscriber_disconnected",
                endpoint=self.endpoint,
                subscriber=peer,
                connections=cut,
            )
        return cut

    def _connections(self) -> Iterator[tuple[str, socket.socket]]:
        """``(peer, socket)`` for each connection accepted on this endpoint. Each socket is
        a duplicate of ZeroMQ's descriptor, for the caller to close; shutting it down
        ends the connection ZeroMQ holds."""
        local = _local_address(self.socket)
        if local is None:
            return
        try:
            names = os.listdir("/proc/self/fd")
        except OSError:
            return
        for name in names:
            try:
                fd = os.dup(int(name))
            except (OSError, ValueError):
                continue  # closed since the listing
            try:
                conn = socket.socket(fileno=fd)
            except OSError:
                os.close(fd)  # not a socket
                continue
            key = _peer_of(conn, local)
            if key is None:
                conn.close()
                continue
            yield key, conn

    def publish(self, topic: bytes, alert: Alert) -> None:
        try:
            self.socket.send_multipart([topic, self.encode(alert)], zmq.NOBLOCK)
            self.published += 1
        except zmq.ZMQError as exc:
            log.warning("alert_not_published", seq=alert.seq, error=str(exc))

    def close(self) -> None:
        self.socket.close(linger=0)


def _local_address(sock: zmq.Socket[Any]) -> tuple[int, Any] | None:
    """The family and address an accepted connection of ``sock`` has on our side."""
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    if endpoint.startswith("ipc://"):
        return socket.AF_UNIX, endpoint[len("ipc://") :]
    if endpoint.startswith("tcp://"):
        return socket.AF_INET, int(endpoint.rsplit(":", 1)[1])
    return None


def _peer_of(conn: socket.socket, local: tuple[int, Any]) -> str | None:
    """The ``Peer-Address`` of an accepted connection on ``local``, in ZeroMQ's terms:
    ``:uid:gid:pid`` over ipc (ZeroMQ prefixes a host name), the address over tcp."""
    try:
        if conn.type != socket.SOCK_STREAM:
            return None
        if conn.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return None  # the listening socket itself
        family, address = local
        if family == socket.AF_UNIX:
            if conn.family != socket.AF_UNIX or conn.getsockname() != address:
                return None
            pid, uid, gid = _PEERCRED.unpack(
                conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            )
            return f":{uid}:{gid}:{pid}"
        if conn.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        if conn.getsockname()[1] != address:
            return None
        return str(conn.getpeername()[0])
    except OSError:
        return None


def _same_peer(peer: str, key: str) -> bool:
    return peer.endswith(key) if key.startswith(":") else peer == key


class AlertPublisher(Actor):
    """Publishes ``[topic, payload]``; ``seq`` lets subscribers find what PUB dropped."""

    name = "alerts"

    def __init__(
        self,
        context: zmq.Context[Any],
        endpoint: str,
        *,
        json_endpoint: str | None = None,
        hwm: int,
        mailbox_size: int,
        max_subscriptions: int = 1000,
        curve: Callable[[Any], None] | None = None,
    ) -> None:
        super().__init__(mailbox_size)
        self.context = context
        self.endpoint = endpoint
        self.json_endpoint = json_endpoint
        self.hwm = hwm
        self.max_subscriptions = max_subscriptions
        self.sockets: list[AlertSocket] = []
        self.curve = curve
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def published(self) -> int:
        """Alerts sent (on the msgpack socket)."""
        return self.sockets[0].published if self.sockets else 0

    @property
    def subscriptions_refused(self) -> int:
        """Subscriptions refused by ``max_alert_subscriptions``, on every socket."""
        return sum(s.refused for s in self.sockets)

    @property
    def subscribers_disconnected(self) -> int:
        """Connections shut down for going over ``max_alert_subscriptions``."""
        return sum(s.disconnected for s in self.sockets)

    async def on_start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._open(self.endpoint, msgpack_encoder.encode)
        if self.json_endpoint is not None:
            # For subscribers that read JSON only: the same alerts, topics and seq.
            self._open(self.json_endpoint, json_encoder.encode)
        for alerts in self.sockets:
            loop.add_reader(alerts.socket.FD, self._drain, alerts)
            # Subscriptions may be queued before the reader saw an edge.
            loop.call_soon(self._drain, alerts)

    def _open(self, endpoint: str, encode: Callable[[Alert], bytes]) -> None:
        self.sockets.append(
            AlertSocket(
                self.context,
                endpoint,
                hwm=self.hwm,
                max_subscriptions=self.max_subscriptions,
                encode=encode,
                curve=self.curve,
            )
        )

    def _drain(self, alerts: AlertSocket) -> None:
        loop = self._loop
        if loop is None or alerts not in self.sockets:
            return
        try:
            more = alerts.drain(loop)
        except zmq.ZMQError as exc:
            log.error("alerts_socket_error", endpoint=alerts.endpoint, error=str(exc))
            return
        if more:
            loop.call_soon(self._drain, alerts)

    async def on_stop(self) -> None:
        loop = self._loop
        for alerts in self.sockets:
            if loop is not None:
                loop.remove_reader(alerts.socket.FD)
            alerts.close()
        self.sockets = []

    async def handle(self, message: Any) -> None:
        alerts: list[Alert] = message if isinstance(message, list) else [message]
        for sock in self.sockets:
            # Apply what subscribers sent before publishing, as a PUB socket would: a
            # subscriber connected before the alert receives it.
            self._drain(sock)
            for alert in alerts:
                sock.publish(alert_topic(alert.kind, alert.new).encode(), alert)
            # A send can consume the FD's edge while subscriptions wait; look again.
            self._drain(sock)
