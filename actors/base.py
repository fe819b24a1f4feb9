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
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable
from typing import Any

import msgspec
import structlog

log = structlog.get_logger("alphad.actor")


class MailboxFull(Exception):
    """The actor's mailbox is at capacity; the caller should answer ``overloaded``."""


class ActorStopped(Exception):
    """The actor stopped before it handled the message."""


class Envelope:
    """A message and, for an ask, the future its answer goes to."""

    __slots__ = ("message", "reply_to")

    def __init__(self, message: Any, reply_to: asyncio.Future[Any] | None) -> None:
        self.message = message
        self.reply_to = reply_to


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

    def ask_future(self, message: Any) -> asyncio.Future[Any]:
        """Queue a message and return the future its answer will be set on."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(Envelope(message, future))
        return future

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
        then the failure is raised as a crash of the loop.
        """
        crash: Exception | None = None
        for envelope in batch:
            reply_to = envelope.reply_to
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


class TakeState:
    """Ask: the actor's model state for a snapshot (plain, msgpack-serializable data).

    Large parts may come pre-encoded as ``msgspec.Raw`` (see ``encode_in_slices``).
    """

    __slots__ = ()


TAKE_STATE = TakeState()


class Restore(msgspec.Struct, frozen=True):
    """Ask: put the model back to a state taken with ``TAKE_STATE``.

    How a change whose journal commit failed is undone: a change refused on the wire must
    have no effect anywhere (docs/operations.md).
    """

    state: dict[str, Any]


_slice_encoder = msgspec.msgpack.Encoder()


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
