"""The alert sockets' own thread: XPUB sockets in manual mode, subscriptions under a cap.

Each subscription a subscriber sends reaches this thread, which applies it (``SUBSCRIBE``
right after receiving it applies to that subscriber's pipe) or refuses it; a plain SUB
socket sees no difference from a PUB. A subscriber is a process (the ``Peer-Address``
ZeroMQ gives its messages: ``host:uid:gid:pid`` over ipc, the address over tcp); it may
hold ``max_subscriptions`` distinct prefixes, and all subscribers of a socket together
ten times that.

Refusing is not enough to bound memory: in manual mode ZeroMQ itself keeps every
subscription a connection sent, applied or not, until the connection ends. So a
subscriber over a cap is also disconnected (its accepted sockets are shut down; ZeroMQ
then drops everything it kept for them). Its SUB socket reconnects by itself and is
disconnected again at the next refusal.

None of this runs in the event loop. A socket is used by one thread only, so the sockets
are this thread's, and the event loop hands it alerts over an inproc PAIR without ever
waiting (``AlertPublisher``). The work is done in bounded batches between polls, which
release the GIL, so a flood of subscriptions costs the bots' requests little more than
the CPU it takes.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import structlog
import zmq

from alphad.actors.log_throttle import LogThrottle
from alphad.daemon.gateway import bind_with_mode

log = structlog.get_logger("alphad.alerts")

# Topics are a few words (``status.suspended``); a longer subscription message makes
# ZeroMQ drop the connection before the prefix is stored.
MAX_SUBSCRIPTION_BYTES = 64
# Over tcp the bound must let CURVE's handshake through (its INITIATE command carries the
# client's vouch and metadata, a few hundred bytes): only authenticated clients get there.
CURVE_MAX_MESSAGE_BYTES = 4096
# Subscription messages handled per socket between two polls, and alerts published.
SUBSCRIPTION_BATCH = 256
ALERT_BATCH = 1024
# How long the thread sleeps in a poll with nothing to do: the longest a stop waits.
POLL_MS = 50
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class SubscriptionBook:
    """Which prefixes each subscriber holds on one socket, and which to refuse.

    Counts are per subscriber and prefix (two SUB sockets of one process may both hold
    ``status.``). ZeroMQ's own unsubscriptions for a connection that ended carry no
    subscriber; ``forget`` drops the subscribers with no connection left instead.
    """

    def __init__(self, cap: int, total_cap: int) -> None:
        self.cap = cap
        self.total_cap = total_cap
        self.peers: dict[str, dict[bytes, int]] = {}
        self.total = 0  # distinct (subscriber, prefix) pairs held

    def subscribe(self, peer: str, prefix: bytes) -> bool:
        """Count a subscription; False when it would take ``peer`` or the socket over
        its cap."""
        held = self.peers.get(peer)
        count = held.get(prefix) if held is not None else None
        if count is None:
            if (held is not None and len(held) >= self.cap) or self.total >= self.total_cap:
                return False
            if held is None:
                held = self.peers[peer] = {}
            self.total += 1
        assert held is not None
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
            self.total -= 1
            if not held:
                del self.peers[peer]

    def forget(self, connected: Callable[[str], bool]) -> None:
        """Drop every subscriber for which ``connected`` is False."""
        for peer in [p for p in self.peers if not connected(p)]:
            self.total -= len(self.peers.pop(peer))


class Outlet:
    """One XPUB socket, its subscription book and the subscribers it disconnected.

    Made (and bound) in the event loop at start, then used by the alert thread only.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        endpoint: str,
        *,
        hwm: int,
        max_subscriptions: int,
        curve: Callable[[Any], None] | None,
    ) -> None:
        sock = context.socket(zmq.XPUB)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.XPUB_MANUAL, 1)
            # A cycle can change many strategies at once: the burst must fit the HWM, and
            # a subscriber that still misses some sees the gap in seq and backfills.
            sock.setsockopt(zmq.SNDHWM, hwm)
            over_ipc = endpoint.startswith("ipc://")
            sock.setsockopt(
                zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES if over_ipc else CURVE_MAX_MESSAGE_BYTES
            )
            # Subscriptions ZeroMQ reads ahead of the thread: two. ZeroMQ takes in all a
            # connection's pipe can bring while it hands the thread one message, so with
            # room for 100 a flooding subscriber had tens of thousands more stored before
            # its connection was shut down (418 MiB after 10 s of a 300 000-prefix
            # flood); with room for two, a dozen or so a disconnection (46 MiB). (One left
            # a CURVE subscriber over tcp without any alert, in the tests.)
            sock.setsockopt(zmq.RCVHWM, 2)
            if not over_ipc:
                if curve is None:
                    raise ValueError(f"{endpoint}: a tcp endpoint needs CURVE keys")
                curve(sock)
            bind_with_mode(sock, endpoint, 0o660)
        except BaseException:
            sock.close(linger=0)
            raise
        self.socket = sock
        self.endpoint = endpoint
        self.book = SubscriptionBook(max_subscriptions, 10 * max_subscriptions)
        self.refused = 0
        self.disconnected = 0
        self.published = 0
        self._throttle = LogThrottle()
        self._forget_at: float | None = None

    def take(self) -> None:
        """Apply or refuse up to ``SUBSCRIPTION_BATCH`` subscriptions waiting."""
        sock = self.socket
        book = self.book
        over: set[str] = set()
        ended = False
        for _ in range(SUBSCRIPTION_BATCH):
            try:
                frame = sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
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
                        prefix=prefix[:64].decode("ascii", "backslashreplace"),
                        max_alert_subscriptions=book.cap,
                        suppressed=held,
                    )
        if (ended or over) and self._forget_at is None:
            self._forget_at = time.monotonic() + 1.0

    def forget_ended(self) -> None:
        """A second after a connection ended, drop the subscribers with none left."""
        if self._forget_at is None or time.monotonic() < self._forget_at:
            return
        self._forget_at = None
        connected = {key for key, _ in self._connections()}
        self.book.forget(lambda peer: any(_same_peer(peer, key) for key in connected))

    def publish(self, topic: bytes, payload: bytes, seq: bytes) -> None:
        try:
            self.socket.send_multipart([topic, payload], zmq.NOBLOCK)
            self.published += 1
        except zmq.ZMQError as exc:
            if self._throttle.admit("not_published") is not None:
                log.warning("alert_not_published", seq=seq.decode(), error=str(exc))

    def _disconnect(self, peer: str) -> int:
        """Shut down the connections of ``peer``; ZeroMQ notices and lets go of them."""
        cut = 0
        for key, conn in self._connections():
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
        """``(peer, socket)`` for each connection accepted on this endpoint, each socket
        on ZeroMQ's own descriptor, valid until the next one is yielded: shutting it down
        ends the connection ZeroMQ holds; never close it.

        Only sockets are looked at, and no descriptor is duplicated or closed: closing any
        descriptor of a file releases every POSIX lock the process holds on that file, and
        a duplicate of SQLite's closed here released the daemon's locks on the database
        (another process then rebuilt the shared memory under it, a SIGBUS, or
        checkpointed and deleted the write-ahead log, and no trade was recorded again).
        """
        local = _local_address(self.socket)
        if local is None:
            return
        try:
            names = os.listdir("/proc/self/fd")
        except OSError:
            return
        for name in names:
            try:
                fd = int(name)
                if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                    continue
                # Not a socket after all (closed and reused since): refused, left open.
                conn = socket.socket(fileno=fd)
            except (OSError, ValueError):
                continue
            try:
                key = _peer_of(conn, local)
                if key is not None:
                    yield key, conn
            finally:
                conn.detach()  # ZeroMQ's: the socket object lets go without closing it

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


class AlertThread(threading.Thread):
    """Owns the outlets: takes in subscriptions, publishes what the feed brings.

    A feed message is ``[topic, seq, payload for each outlet]``; an empty frame alone
    asks the thread to end. Subscriptions waiting are taken in before the alerts that
    follow them are published, as a PUB socket does: a subscriber connected before an
    alert receives it.
    """

    def __init__(
        self, context: zmq.Context[Any], feed_endpoint: str, outlets: list[Outlet], hwm: int
    ) -> None:
        super().__init__(name="alphad-alerts", daemon=True)
        self.context = context
        self.feed_endpoint = feed_endpoint
        self.outlets = outlets
        self.hwm = hwm
        self.stopping = threading.Event()
        self._throttle = LogThrottle()

    def run(self) -> None:
        feed = self.context.socket(zmq.PAIR)
        feed.setsockopt(zmq.LINGER, 0)
        feed.setsockopt(zmq.RCVHWM, self.hwm)
        feed.connect(self.feed_endpoint)
        poller = zmq.Poller()
        poller.register(feed, zmq.POLLIN)
        for outlet in self.outlets:
            poller.register(outlet.socket, zmq.POLLIN)
        try:
            while not self.stopping.is_set():
                poller.poll(POLL_MS)
                try:
                    for outlet in self.outlets:
                        outlet.take()
                        outlet.forget_ended()
                    if not self._publish(feed):
                        break
                except Exception as exc:  # the alerts go on; say why once a second
                    if self._throttle.admit("error") is not None:
                        log.error("alerts_socket_error", error=str(exc) or type(exc).__name__)
                    time.sleep(POLL_MS / 1000)
        finally:
            feed.close(linger=0)
            for outlet in self.outlets:
                outlet.close()

    def _publish(self, feed: zmq.Socket[Any]) -> bool:
        """Publish up to ``ALERT_BATCH`` alerts from the feed; False when asked to end."""
        for _ in range(ALERT_BATCH):
            try:
                frames = feed.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return True
            if len(frames) < 2 + len(self.outlets):
                return False
            topic, seq = frames[0], frames[1]
            for outlet, payload in zip(self.outlets, frames[2:], strict=False):
                outlet.publish(topic, payload, seq)
        return True
