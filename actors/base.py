"""The actor base: a bounded mailbox, ``tell`` and ``ask``, and a loop a supervisor can restart.

An exception raised while handling an ``ask`` goes back to the asker and the actor
keeps running. An exception while handling a ``tell`` (nobody to report it to) is a
crash of the loop: the supervisor logs it and restarts the loop with backoff. The
mailbox survives a restart, and asks still queued when the actor stops fail with
``ActorStopped``.

The rule that keeps actors from waiting on each other for ever: **never wait for room in
the mailbox of an actor that can ask you** (``tell_wait``, or ``ask`` with
``wait_for_room``). Waits must run one way only. The store waits for room in the
learners' mailboxes (performance, scorer), which never ask it; the engine waits for the
store and the models, none of which waits on the engine; the store tells the engine only
with a plain ``tell`` that gives up on a full mailbox.

**Handles.** Nothing outside an actor holds the actor itself, only a ``Handle``: it can
``tell`` and ``ask``, say how deep the mailbox is and read the actor's ``stats()``, an
immutable snapshot of its counters. The daemon keeps the actor objects to start,
supervise and stop them; the gateway, the metrics and the other actors get handles.

**Typed asks.** A message that is answered derives from ``Ask[T]``, ``T`` its answer:
``await handle.ask(PaperRecord())`` is typed by the message alone. A wire request an
actor answers (``get_performance``, the engine's requests) is answered with a ``Reply``.

**Samples.** What an actor times for the metrics (commits, cycles) goes into a bounded
``Samples`` ring that readers take by sequence number (``since``); nobody but the actor
changes it.

**Inline reads.** ``score_signal``, ``market_bars``, ``get_weights`` and ``get_health`` are
answered in the gateway's receive callback without a mailbox (the hot path). The scorer
and the engine declare what may be read so (``ScorerActor.inline()``,
``EngineActor.inline()``). It is safe because everything runs on one event loop, the
calls never await, and an actor changes its state only while it handles a message: a
synchronous read sees the state between two messages, as an ask would.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import deque
from collections.abc import Iterable
from itertools import islice
from typing import Any, Generic, Protocol, TypeVar, overload

import msgspec
import structlog

from alphad.protocol.messages import Reply, Request

log = structlog.get_logger("alphad.actor")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
A_co = TypeVar("A_co", bound="Actor", covariant=True)


class Ask(msgspec.Struct, Generic[T], frozen=True):
    """Base of a message that is answered; ``T`` is the type of its answer.

    ``ask`` returns a ``T`` for an ``Ask[T]``, so a caller needs no annotation and a wrong
    one fails the type check.
    """


class MailboxFull(Exception):
    """The actor's mailbox is at capacity; the caller should answer ``overloaded``."""


class ActorStopped(Exception):
    """The actor stopped before it handled the message."""


class Envelope:
    """A message and, for an ask, the future its answer goes to; ``skippable`` when it
    is left unhandled if its asker gave up before its turn (a bot's request, answered
    ``timeout``), unlike the actors' own asks (an undo must run, however late)."""

    __slots__ = ("message", "reply_to", "skippable")

    def __init__(
        self, message: Any, reply_to: asyncio.Future[Any] | None, skippable: bool = False
    ) -> None:
        self.message = message
        self.reply_to = reply_to
        self.skippable = skippable


_STOP = Envelope(None, None)


class Actor:
    """One component: it owns its state and changes it only from its mailbox."""

    name: str = "actor"
    max_batch: int = 64

    def __init__(self, mailbox_size: int = 4096) -> None:
        self.mailbox: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=mailbox_size)
        self.mailbox_size = mailbox_size
        self.state = "new"
        self.full_count = 0
        self.asks_given_up = 0  # asks left unhandled: their askers had given up
        self._stopping = False

    # ------------------------------------------------------------------ sending

    def tell(self, message: Any) -> None:
        """Queue a message with no answer expected; raises ``MailboxFull``."""
        self._put(Envelope(message, None))

    async def tell_wait(self, message: Any) -> None:
        """Queue a message, waiting for room: back-pressure for messages that must not drop."""
        if self._stopping:
            raise ActorStopped(f"{self.name} is stopping")
        await self.mailbox.put(Envelope(message, None))

    @overload
    def ask_future(self, message: Ask[T], *, skippable: bool = False) -> asyncio.Future[T]: ...
    @overload
    def ask_future(
        self, message: Request, *, skippable: bool = False
    ) -> asyncio.Future[Reply]: ...
    def ask_future(self, message: Any, *, skippable: bool = False) -> asyncio.Future[Any]:
        """Queue a message and return the future its answer will be set on; one
        ``skippable`` is not handled if the answer is set (given up) before its turn."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(Envelope(message, future, skippable))
        return future

    @overload
    async def ask(
        self, message: Ask[T], timeout: float | None = 5.0, *, wait_for_room: bool = False
    ) -> T: ...
    @overload
    async def ask(
        self, message: Request, timeout: float | None = 5.0, *, wait_for_room: bool = False
    ) -> Reply: ...
    async def ask(
        self, message: Any, timeout: float | None = 5.0, *, wait_for_room: bool = False
    ) -> Any:
        """Queue a message and wait for its answer; ``TimeoutError`` after ``timeout``.

        A full mailbox raises ``MailboxFull``, unless ``wait_for_room``: then the asker
        waits for room within the same timeout (only if this actor never waits on it).
        """
        # asyncio.timeout, not wait_for: in Python 3.11 wait_for returns an answer that
        # arrives in the same turn as the asker's cancellation and drops the
        # cancellation (gh-86296), so a task being stopped ran on.
        if not wait_for_room:
            future = self.ask_future(message)
            if timeout is None:
                return await future
            async with asyncio.timeout(timeout):
                return await future
        if timeout is None:
            return await self._ask_when_room(message)
        async with asyncio.timeout(timeout):
            return await self._ask_when_room(message)

    async def _ask_when_room(self, message: Any) -> Any:
        if self._stopping:
            raise ActorStopped(f"{self.name} is stopping")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self.mailbox.put(Envelope(message, future))
        return await future

    def _put(self, envelope: Envelope) -> None:
        if self._stopping:
            raise ActorStopped(f"{self.name} is stopping")
        try:
            self.mailbox.put_nowait(envelope)
        except asyncio.QueueFull:
            self.full_count += 1
            raise MailboxFull(f"{self.name} mailbox is full ({self.mailbox_size})") from None

    # ------------------------------------------------------------------ lifecycle

    async def on_start(self) -> None:
        """Called once before the first message; override to open resources."""

    async def on_stop(self) -> None:
        """Called once after the last message; override to release resources."""

    async def handle(self, message: Any) -> Any:
        """Handle one message and return the answer for an ask."""
        raise NotImplementedError(f"{self.name} cannot handle {type(message).__name__}")

    async def handle_batch(self, batch: list[Envelope]) -> None:
        """Handle messages that arrived together; override to group work (the store does).

        A failing tell does not cost the rest of the batch: the batch is finished first,
        then the failure is raised as a crash of the loop. A skippable ask whose asker
        gave up (its answer already set: timed out) is not handled: it was told it failed,
        and a backlog of given-up reads must not hold back what comes after it.
        """
        crash: Exception | None = None
        for envelope in batch:
            reply_to = envelope.reply_to
            if envelope.skippable and reply_to is not None and reply_to.done():
                self.asks_given_up += 1
                continue
            try:
                result = await self.handle(envelope.message)
            except Exception as exc:
                if reply_to is None:
                    crash = crash or exc
                elif not reply_to.done():  # the asker gets the failure, the actor lives on
                    reply_to.set_exception(exc)
            else:
                if reply_to is not None and not reply_to.done():
                    reply_to.set_result(result)
        if crash is not None:
            raise crash

    async def run(self) -> None:
        """Take messages in batches until the stop sentinel; a raise is a crash."""
        self.state = "running"
        mailbox = self.mailbox
        while True:
            first = await mailbox.get()
            batch = [first]
            while len(batch) < self.max_batch and not mailbox.empty():
                batch.append(mailbox.get_nowait())
            stop_at = next((i for i, env in enumerate(batch) if env is _STOP), None)
            if stop_at is not None:
                batch = batch[:stop_at]
            try:
                await self.handle_batch(batch)
            except BaseException as exc:
                # No ask of this batch may be left waiting forever.
                failure = (
                    exc if isinstance(exc, Exception) else ActorStopped(f"{self.name} stopped")
                )
                for envelope in batch:
                    if envelope.reply_to is not None and not envelope.reply_to.done():
                        envelope.reply_to.set_exception(failure)
                raise
            if stop_at is not None:
                return

    def request_stop(self) -> None:
        """Stop taking new messages and let the loop finish what is queued."""
        self._stopping = True
        try:
            self.mailbox.put_nowait(_STOP)
        except asyncio.QueueFull:
            # The supervisor cancels the loop after the grace period; pending asks fail then.
            pass

    def fail_pending(self) -> int:
        """Fail every ask still in the mailbox; returns how many messages were left."""
        left = 0
        while not self.mailbox.empty():
            envelope = self.mailbox.get_nowait()
            if envelope is _STOP:
                continue
            left += 1
            if envelope.reply_to is not None and not envelope.reply_to.done():
                envelope.reply_to.set_exception(ActorStopped(f"{self.name} stopped"))
        if left:
            log.warning("actor_left_messages", actor=self.name, left=left)
        return left

    def depth(self) -> int:
        """Messages waiting in the mailbox."""
        return self.mailbox.qsize()


class HasStats(Protocol[T_co]):
    """An actor with read-only stats: ``stats()`` returns an immutable snapshot."""

    def stats(self) -> T_co: ...


class Handle(Generic[A_co]):
    """What others hold of an actor: its mailbox and its stats, nothing of its state.

    ``tell`` and ``ask`` go to the mailbox; ``depth`` and ``refused`` say how full it is
    and how many messages it turned away; ``stats`` is the actor's own immutable snapshot
    of its counters. Assigning to a handle fails, and it has no attribute of the actor.
    """

    __slots__ = ("_actor",)

    def __init__(self, actor: A_co) -> None:
        self._actor = actor

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "_actor"):
            raise AttributeError(f"a handle of {self._actor.name} is read-only")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"Handle({self._actor.name})"

    @property
    def name(self) -> str:
        """The actor's name (as in logs and metrics)."""
        return self._actor.name

    def tell(self, message: Any) -> None:
        """``Actor.tell``: queue a message with no answer; raises ``MailboxFull``."""
        self._actor.tell(message)

    async def tell_wait(self, message: Any) -> None:
        """``Actor.tell_wait``: queue a message, waiting for room (see the module's rule)."""
        await self._actor.tell_wait(message)

    @overload
    def ask_future(self, message: Ask[T], *, skippable: bool = False) -> asyncio.Future[T]: ...
    @overload
    def ask_future(
        self, message: Request, *, skippable: bool = False
    ) -> asyncio.Future[Reply]: ...
    def ask_future(self, message: Any, *, skippable: bool = False) -> asyncio.Future[Any]:
        """``Actor.ask_future``: queue a message; its answer goes to the future."""
        return self._actor.ask_future(message, skippable=skippable)

    @overload
    async def ask(
        self, message: Ask[T], timeout: float | None = 5.0, *, wait_for_room: bool = False
    ) -> T: ...
    @overload
    async def ask(
        self, message: Request, timeout: float | None = 5.0, *, wait_for_room: bool = False
    ) -> Reply: ...
    async def ask(
        self, message: Any, timeout: float | None = 5.0, *, wait_for_room: bool = False
    ) -> Any:
        """``Actor.ask``: queue a message and wait for its answer."""
        return await self._actor.ask(message, timeout, wait_for_room=wait_for_room)

    def depth(self) -> int:
        """Messages waiting in the mailbox."""
        return self._actor.mailbox.qsize()

    def refused(self) -> int:
        """Messages refused by a full mailbox since the start."""
        return self._actor.full_count

    def stats(self: Handle[HasStats[T]]) -> T:  # type: ignore[type-var]
        """The actor's counters: an immutable snapshot, taken now."""
        return self._actor.stats()


class SampleReader(Protocol[T]):
    """Reading a ``Samples`` ring: what was added after sequence number ``seq``."""

    def since(self, seq: int) -> tuple[int, list[T]]: ...


class Samples(Generic[T]):
    """The latest ``size`` samples an actor took (a commit's time, a cycle's), numbered.

    The actor adds; a reader (the metrics) keeps the number it read up to and asks
    ``since(number)`` for what came after it, so reading changes nothing. When more than
    ``size`` samples come between two reads, the oldest are not seen.
    """

    __slots__ = ("_ring", "added")

    def __init__(self, size: int = 10_000) -> None:
        self._ring: deque[T] = deque(maxlen=size)
        self.added = 0

    def add(self, sample: T) -> None:
        self._ring.append(sample)
        self.added += 1

    def since(self, seq: int) -> tuple[int, list[T]]:
        """The samples added after the ``seq``-th (those still held), and the new ``seq``."""
        new = min(self.added - seq, len(self._ring))
        if new <= 0:
            return self.added, []
        ring = self._ring
        return self.added, list(islice(ring, len(ring) - new, None))


class TakeState(Ask[dict[str, Any]], frozen=True):
    """Ask: the actor's model state for a snapshot (plain, msgpack-serializable data).

    Large parts may come pre-encoded as ``msgspec.Raw`` (see ``encode_in_slices``).
    """


TAKE_STATE = TakeState()


class Restore(Ask[None], frozen=True):
    """Ask: put the model back to a state taken with ``TAKE_STATE``.

    How a change whose journal commit failed is undone: a change refused on the wire must
    have no effect anywhere (docs/operations.md).
    """

    state: dict[str, Any]


_slice_encoder = msgspec.msgpack.Encoder()

TURN_AFTER_S = 0.000_2
"""Work an actor does between two turns of the event loop while it assembles a large
reply (``Turns``): a bot's request waits for at most about this much per step of its
way through the daemon."""


class Turns:
    """Gives the event loop a turn once ``after_s`` seconds of work have passed since the
    last one: ``await turns.take()`` between the items of a long, synchronous piece of
    work (a report of a thousand strategies took tens of milliseconds in one go, and
    every bot's request waited for it). The actor doing the work handles no other message
    meanwhile, so what it assembles is still of one state, but for what its inline calls
    change (the engine's report leaves out a strategy registered meanwhile)."""

    __slots__ = ("after_s", "since")

    def __init__(self, after_s: float = TURN_AFTER_S) -> None:
        self.after_s = after_s
        self.since = time.perf_counter()

    async def take(self) -> None:
        """A turn of the event loop, if this much work has been done since the last."""
        if time.perf_counter() - self.since >= self.after_s:
            await asyncio.sleep(0)
            self.since = time.perf_counter()


async def take_with_turns(items: Iterable[T], limit: int | None = None) -> list[T]:
    """At most ``limit`` of ``items``, each made as it is taken, giving the event loop its
    turns (``Turns``) in between."""
    taken: list[T] = []
    if limit is not None and limit <= 0:
        return taken
    turns = Turns()
    for item in items:
        taken.append(item)
        if len(taken) == limit:
            break
        await turns.take()
    return taken


async def encode_in_slices(entries: Iterable[Any], every: int = 256) -> list[msgspec.Raw]:
    """Encode each entry to msgpack, giving the event loop a turn every ``every`` entries.

    A snapshot of a large state would otherwise hold the loop for its whole length (a
    quarter of a second with a million trades), and every bot's request with it. The
    actor taking the snapshot handles no other message meanwhile, so what it encodes is
    still the state of one point in the streams it learns from.
    """
    encoded: list[msgspec.Raw] = []
    encode = _slice_encoder.encode
    for count, entry in enumerate(entries, 1):
        encoded.append(msgspec.Raw(encode(entry)))
        if count % every == 0:
            await asyncio.sleep(0)
    return encoded


Piece = bytes | msgspec.Raw


def msgpack_pieces(value: Any) -> list[Piece]:
    """``value`` as msgpack in pieces whose concatenation is ``msgspec.msgpack.encode(value)``.

    A list of ``msgspec.Raw`` (from ``encode_in_slices``) stays in its pieces instead of
    being copied into one buffer: copying a snapshot of a million trades takes about
    10 ms, which the event loop would spend holding every bot's request.
    """
    pieces: list[Piece] = []
    small: list[bytes] = []  # consecutive small pieces, joined into one

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            small.append(_header(len(item), 0x80, 0xDE))
            for key, child in item.items():
                small.append(_slice_encoder.encode(key))
                walk(child)
        elif isinstance(item, list) and item and isinstance(item[0], msgspec.Raw):
            small.append(_header(len(item), 0x90, 0xDC))
            pieces.append(b"".join(small))
            small.clear()
            pieces.extend(item)
        else:
            small.append(_slice_encoder.encode(item))

    walk(value)
    pieces.append(b"".join(small))
    return pieces


def _header(length: int, fix: int, sized: int) -> bytes:
    """A msgpack map (fix 0x80, sized 0xDE) or array (0x90, 0xDC) header, as msgspec writes it."""
    if length < 16:
        return bytes([fix | length])
    if length < 1 << 16:
        return struct.pack(">BH", sized, length)
    return struct.pack(">BI", sized + 1, length)
