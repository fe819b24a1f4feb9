"""Alert subscribers: ``Subscriber`` (blocking) and ``AsyncSubscriber`` (asyncio).

Both yield ``(topic, Alert)`` in ``seq`` order and fill the gaps a PUB socket leaves
(a subscriber connecting late, a daemon restart, a full queue) from the audit log;
``AlertSequence`` is that logic, written once.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec
import zmq
import zmq.asyncio

from alphad.protocol.codec import decode_alert
from alphad.protocol.core import AsyncClosing, Closing, Transport, open_socket
from alphad.protocol.curve import CurveKeys, CurveRefused
from alphad.protocol.endpoints import alert_topic, checked_endpoint, default_endpoint
from alphad.protocol.errors import AlphadError, ErrorCode
from alphad.protocol.messages import Alert, Audit, AuditEntry, GetAudit, GetStatus, StatusReply

if TYPE_CHECKING:
    from alphad.protocol.client import AsyncClient, Client

BACKFILL_PAGE = 1000  # audit entries per get_audit while filling a gap
CATCH_UP_S = 2.0
"""Quiet this long, a subscriber that has a client asks the audit log what it missed:
alerts published while its socket reconnected (a daemon restarting, a subscriber
resuming from ``last_seq``) are then not held back until some later alert shows the gap."""
CATCH_UP_TIMEOUT_S = 1.0  # for the question: a daemon that is down is asked again later

S = TypeVar("S", bound="zmq.Socket[Any]")
C = TypeVar("C", bound="Transport[Any]")


class AlertSequence:
    """The topic filter, the last ``seq`` and gap filling, without any socket.

    A received alert is held until the entries missing before it are backfilled, so a
    failed backfill (the daemon is restarting) loses nothing: the next ``receive``
    retries it before reading the socket again.
    """

    def __init__(
        self, topics: Sequence[str], last_seq: int | None, catch_up_s: float = CATCH_UP_S
    ) -> None:
        self.topics = list(topics) or [""]
        self.last_seq = last_seq
        self.gaps = 0
        self.held: tuple[str, Alert] | None = None
        self.found: list[tuple[str, Alert]] = []
        self.before: int | None = None  # the held alert's seq while its gap is filled
        self.catch_up_s = catch_up_s
        self.heard = time.monotonic()  # when an alert last came, or the log was last asked
        # Where the journal stood when a new subscriber (no ``last_seq``) first found its
        # socket quiet (``get_status.audit_seq``): it starts from there, so that an alert
        # lost after it (published while a restarted daemon's socket reconnected) is
        # backfilled as for one that has yielded an alert. None: not known yet.
        self.floor: int | None = None
        # When the floor was last asked for (None: never), and whether the daemon can
        # tell it (one before audit_seq cannot: the subscriber starts from now, as then).
        self.floor_asked: float | None = None
        self.floor_told = True

    def since(self) -> int | None:
        """The seq after which every wanted alert is delivered: the last one yielded (or
        found in the log), else the floor; None when neither is known."""
        return self.last_seq if self.last_seq is not None else self.floor

    def floor_due(self) -> bool:
        """Whether to ask where the journal stands (``floor``): nothing yielded yet, the
        daemon can tell, and the last question failed a quiet spell ago (or was never
        asked: the first quiet poll asks)."""
        if self.held is not None or self.since() is not None or not self.floor_told:
            return False
        asked = self.floor_asked
        return asked is None or time.monotonic() - asked >= self.catch_up_s

    def floor_question(self) -> None:
        """The floor is being asked for now."""
        self.floor_asked = time.monotonic()

    def started_at(self, audit_seq: int | None, told: bool = True) -> None:
        """The journal's newest seq when asked (None: the question failed, asked again
        after a quiet spell; ``told`` False: the daemon does not say, never asked again)."""
        self.floor = audit_seq
        self.floor_told = told

    def catch_up_due(self) -> int | None:
        """The ``since_seq`` to ask the audit log from after a quiet spell, or None (not
        due, or nothing known to ask after)."""
        since = self.since()
        if self.held is not None or since is None:
            return None
        if time.monotonic() - self.heard < self.catch_up_s:
            return None
        return since

    def caught_up(self, entries: list[AuditEntry] | None) -> list[tuple[str, Alert]]:
        """The wanted alerts among the entries after ``last_seq`` (None: the question
        failed, asked again after the next quiet spell)."""
        found: list[tuple[str, Alert]] = []
        since = self.since()
        for entry in entries or ():
            if since is not None and entry.seq <= since:
                continue
            topic = alert_topic(entry.kind, entry.new)
            if self.wanted(topic):
                found.append((topic, Alert.from_audit(entry)))
            self.last_seq = entry.seq
        if found:
            self.gaps += 1
        # A full page: more may wait, so the next quiet poll asks again at once.
        if entries is None or len(entries) < BACKFILL_PAGE:
            self.heard = time.monotonic()
        return found

    def wanted(self, topic: str) -> bool:
        """Whether ``topic`` matches a subscription (ZeroMQ's prefix rule)."""
        return any(topic.startswith(prefix) for prefix in self.topics)

    def hold(self, frames: list[bytes]) -> None:
        """Keep a received ``[topic, payload]`` until what is missing before it is found."""
        # An undecodable alert is dropped without moving last_seq: the next alert then
        # shows a gap, and the backfill brings the entry back from the audit log.
        if len(frames) != 2:
            return
        self.heard = time.monotonic()
        try:
            self.held = (frames[0].decode(), decode_alert(frames[1]))
        except (UnicodeDecodeError, msgspec.DecodeError, msgspec.ValidationError):
            return

    def gap(self, can_backfill: bool) -> int | None:
        """The ``since_seq`` of the first ``get_audit`` page to fetch, or None when
        nothing is missing before the held alert (or there is no client to ask)."""
        self.found, self.before = [], None
        since = self.since()
        if self.held is None or since is None or not can_backfill:
            return None
        seq = self.held[1].seq
        if seq <= since + 1:
            return None
        self.before = seq
        return since

    def page(self, entries: list[AuditEntry], since: int) -> int | None:
        """Keep the wanted entries of one ``get_audit`` page; the next ``since``, or None."""
        before = self.before
        assert before is not None, "page() only follows gap()"
        for entry in entries:
            if entry.seq >= before:
                return None
            topic = alert_topic(entry.kind, entry.new)
            if self.wanted(topic):
                self.found.append((topic, Alert.from_audit(entry)))
        if not entries or entries[-1].seq <= since or entries[-1].seq >= before - 1:
            return None
        return entries[-1].seq

    def release(self) -> list[tuple[str, Alert]]:
        """The backfilled alerts and the held one, in ``seq`` order; duplicates dropped."""
        if self.held is None:
            return []
        topic, alert = self.held
        self.held = None
        if self.last_seq is not None and alert.seq <= self.last_seq:
            return []  # already delivered by an earlier backfill
        if self.before is not None:
            self.gaps += 1
        out, self.found = self.found, []
        out.append((topic, alert))
        self.last_seq = alert.seq
        return out


class _Alerts(Generic[S, C]):
    """The SUB socket, the sequence and the backfilling client of a subscriber."""

    def __init__(
        self,
        endpoint: str | None = None,
        topics: Sequence[str] = ("",),
        *,
        client: C | str | None = None,
        last_seq: int | None = None,
        context: zmq.Context[S] | None = None,
        curve: CurveKeys | None = None,
        catch_up_s: float = CATCH_UP_S,
    ) -> None:
        self._sequence = AlertSequence(topics, last_seq, catch_up_s)
        context = context or self.default_context()
        self._own_client = isinstance(client, str)
        self.client: C | None = (
            self.make_client(client, context, curve) if isinstance(client, str) else client
        )
        self.endpoint = checked_endpoint(endpoint) if endpoint else default_endpoint("alerts")
        self._curve = curve
        self._open(context)

    def _open(self, context: zmq.Context[S]) -> None:
        self.socket, self.handshakes = open_socket(context, zmq.SUB, self.endpoint, self._curve)
        for topic in self._sequence.topics:
            self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self._pid = os.getpid()

    def _after_fork(self) -> None:
        """In a child of ``os.fork()`` (``Transport._forked``): a SUB socket of its own,
        subscribed again; alerts published meanwhile are a gap, as after a restart."""
        if self._pid != os.getpid():
            self._open(self.default_context())

    def default_context(self) -> zmq.Context[S]:
        """The process's shared context of this kind of subscriber."""
        raise NotImplementedError

    def make_client(self, endpoint: str, context: zmq.Context[S], curve: CurveKeys | None) -> C:
        """The client this subscriber backfills through, given an rpc endpoint."""
        raise NotImplementedError

    @property
    def last_seq(self) -> int | None:
        """The ``seq`` of the last alert yielded; None before the first."""
        return self._sequence.last_seq

    @property
    def gaps(self) -> int:
        """How many jumps in ``seq`` were backfilled."""
        return self._sequence.gaps

    def wanted(self, topic: str) -> bool:
        """Whether ``topic`` matches a subscription (ZeroMQ's prefix rule)."""
        return self._sequence.wanted(topic)

    def _catch_up_question(self, timeout_s: float | None) -> dict[str, Any] | None:
        """The ``call`` arguments of the ``get_audit`` that asks what was missed after a
        quiet spell (``AlertSequence.catch_up_due``), waiting no longer than the caller's
        receive and asked once (one that fails is asked again after the next quiet spell,
        not after every retry of a daemon that is down; the client's own retries, which a
        bot sharing it relies on, stay as they are); None when it is not due or there is
        no client."""
        if self.client is None:
            return None
        wait = CATCH_UP_TIMEOUT_S if timeout_s is None else min(CATCH_UP_TIMEOUT_S, timeout_s)
        once = {"timeout_s": max(0.05, wait), "retries": 0}
        if self._sequence.floor_due():
            self._sequence.floor_question()
            return {"request": GetStatus(), "expected": StatusReply, **once}
        since = self._sequence.catch_up_due()
        if since is None:
            return None
        request = GetAudit(since_seq=since, limit=BACKFILL_PAGE)
        return {"request": request, "expected": Audit, **once}

    def _answered(self, answer: Audit | StatusReply | None) -> list[tuple[str, Alert]]:
        """What a quiet spell's question found (None: it failed, asked again later)."""
        sequence = self._sequence
        if isinstance(answer, StatusReply):
            sequence.started_at(answer.audit_seq, told=answer.audit_seq is not None)
            return []
        if answer is None and sequence.since() is None:
            return []  # the floor's question failed: asked again after a quiet spell
        return self._sequence.caught_up(answer.entries if answer is not None else None)

    def _nothing_came(self) -> list[tuple[str, Alert]]:
        # Silence on a tcp socket may be a refused CURVE handshake: say so, once known.
        refused = self.handshakes.refusal(self.endpoint) if self.handshakes else None
        if refused is not None:
            raise refused
        return []

    def close(self) -> None:
        """Close the socket, and the client if this subscriber made it."""
        if self.handshakes is not None:
            self.handshakes.close()
        self.socket.close(linger=0)
        if self._own_client and self.client is not None:
            self.client.close()


def _wait_ms(timeout_s: float) -> int:
    return int(timeout_s * 1000)


MIN_SPELL_S = 0.05
"""The shortest wait between two asks of a receive without a timeout (a ``catch_up_s`` of
0 polled without waiting: a core spun, and an asyncio loop never ran anything else)."""


def _spell(catch_up_s: float) -> float:
    return max(catch_up_s, MIN_SPELL_S)


RETRIED_BACKFILL: frozenset[ErrorCode] = frozenset(
    ("timeout", "overloaded", "storage_unavailable")
)
"""The backfill failures ``iter`` asks again after: the daemon down, restarting or busy,
or its journal unreadable for a moment."""


class Subscriber(_Alerts[zmq.Socket[Any], "Client"], Closing):
    """Alerts as ``(topic, Alert)`` in ``seq`` order, with gaps backfilled.

    ``topics`` are ZeroMQ prefixes (``"status."``, ``"status.suspended"``; ``""`` is all).
    When ``seq`` jumps by more than one, the entries in between are fetched with
    ``get_audit`` through ``client`` (a ``Client`` used by this subscriber only, or an
    rpc endpoint), filtered by the same topics, and yielded first. Without a client, a
    gap is not filled. After ``catch_up_s`` without an alert it asks the audit log what
    came after the last one (a change published while it reconnected shows no gap until
    the next alert). Pass ``last_seq`` to resume after a restart, ``curve=`` for a
    tcp:// daemon. Because ``seq`` is shared by every topic, a filtered subscriber sees
    jumps over the topics it did not subscribe to; each costs one ``get_audit`` that
    finds nothing.
    """

    def default_context(self) -> zmq.Context[zmq.Socket[Any]]:
        return zmq.Context.instance()

    def make_client(
        self, endpoint: str, context: zmq.Context[zmq.Socket[Any]], curve: CurveKeys | None
    ) -> Client:
        from alphad.protocol.client import Client  # protocol.client re-exports this module

        return Client(endpoint, context=context, curve=curve)

    def receive(self, timeout_s: float | None = None) -> list[tuple[str, Alert]]:
        """The next alert, after any backfilled ones; ``[]`` when none came in time
        (``timeout_s`` None: waits until one comes, asking the audit log after each quiet
        spell, as with a timeout).

        Raises ``AlphadError`` when a backfill fails (the alert is kept and the backfill
        retried by the next call), ``CurveRefused`` when the daemon refused the keys.
        """
        if timeout_s is None:
            # Not one endless poll: the catch-up runs when a poll comes back empty.
            while not (found := self._receive(_spell(self._sequence.catch_up_s))):
                pass
            return found
        return self._receive(timeout_s)

    def _receive(self, timeout_s: float) -> list[tuple[str, Alert]]:
        self._after_fork()
        sequence, client = self._sequence, self.client
        if sequence.held is None:
            if not self.socket.poll(_wait_ms(timeout_s), zmq.POLLIN):
                question = self._catch_up_question(timeout_s)
                if question is not None and client is not None:
                    try:
                        answer: Audit | StatusReply | None = client.call(**question)
                    except AlphadError:
                        answer = None
                    found = self._answered(answer)
                    if found:
                        return found
                return self._nothing_came()
            sequence.hold(self.socket.recv_multipart())
        since = sequence.gap(client is not None)
        while since is not None and client is not None:
            page = client.get_audit(since_seq=since, limit=BACKFILL_PAGE)
            since = sequence.page(page.entries, since)
        return sequence.release()

    def iter(
        self, timeout_s: float = 0.5, stop: threading.Event | None = None
    ) -> Iterator[tuple[str, Alert]]:
        """Alerts until ``stop`` is set (checked every ``timeout_s``). A backfill the
        daemon does not answer (restarting) is asked again, the alert kept: it ended
        the iteration, and with it a bot's alert thread."""
        while stop is None or not stop.is_set():
            try:
                yield from self.receive(timeout_s)
            except AlphadError as exc:
                if isinstance(exc, CurveRefused) or exc.code not in RETRIED_BACKFILL:
                    raise  # refused keys are refused for good: waiting would be silent
                (stop or threading.Event()).wait(timeout_s)

    def __iter__(self) -> Iterator[tuple[str, Alert]]:
        return self.iter()


class AsyncSubscriber(_Alerts[zmq.asyncio.Socket, "AsyncClient"], AsyncClosing):
    """The asyncio twin of ``Subscriber``, backfilling through an ``AsyncClient``."""

    def default_context(self) -> zmq.asyncio.Context:
        return zmq.asyncio.Context.instance()

    def make_client(
        self, endpoint: str, context: zmq.Context[zmq.asyncio.Socket], curve: CurveKeys | None
    ) -> AsyncClient:
        from alphad.protocol.client import AsyncClient  # protocol.client re-exports this module

        return AsyncClient(endpoint, context=context, curve=curve)

    async def receive(self, timeout_s: float | None = None) -> list[tuple[str, Alert]]:
        """The next alert, after any backfilled ones; ``[]`` when none came in time
        (``Subscriber.receive``)."""
        if timeout_s is None:
            while not (found := await self._receive(_spell(self._sequence.catch_up_s))):
                pass
            return found
        return await self._receive(timeout_s)

    async def _receive(self, timeout_s: float) -> list[tuple[str, Alert]]:
        self._after_fork()
        sequence, client = self._sequence, self.client
        if sequence.held is None:
            if not await self.socket.poll(_wait_ms(timeout_s)):
                question = self._catch_up_question(timeout_s)
                if question is not None and client is not None:
                    try:
                        answer: Audit | StatusReply | None = await client.call(**question)
                    except AlphadError:
                        answer = None
                    found = self._answered(answer)
                    if found:
                        return found
                return self._nothing_came()
            sequence.hold(await self.socket.recv_multipart())
        since = sequence.gap(client is not None)
        while since is not None and client is not None:
            page = await client.get_audit(since_seq=since, limit=BACKFILL_PAGE)
            since = sequence.page(page.entries, since)
        return sequence.release()

    async def __aiter__(self) -> AsyncIterator[tuple[str, Alert]]:
        while True:
            # Not forever: a quiet spell is when what was missed is asked for.
            try:
                found = await self.receive(_spell(self._sequence.catch_up_s))
            except AlphadError as exc:
                if isinstance(exc, CurveRefused) or exc.code not in RETRIED_BACKFILL:
                    raise
                await asyncio.sleep(_spell(self._sequence.catch_up_s))
                continue
            for item in found:
                yield item
