"""The actor base: bounded mailbox, ask and tell, failures that reach the asker, stopping."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from alphad.actors.base import Actor, ActorStopped, MailboxFull, encode_in_slices, msgpack_pieces
from alphad.daemon.supervisor import Supervisor


class Counter(Actor):
    name = "counter"

    def __init__(self, mailbox_size: int = 8) -> None:
        super().__init__(mailbox_size)
        self.total = 0
        self.batches: list[int] = []

    async def handle(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        if message == "crash-loop":
            raise RuntimeError("loop crash")
        if message == "slow":
            await asyncio.sleep(10)
        self.total += message
        return self.total


async def test_ask_returns_the_answer_and_tell_changes_state() -> None:
    actor = Counter()
    supervisor = Supervisor()
    await supervisor.start(actor)
    actor.tell(2)
    assert await actor.ask(3) == 5
    await supervisor.stop(1.0)


async def test_exception_in_ask_goes_to_asker_and_actor_keeps_running() -> None:
    actor = Counter()
    supervisor = Supervisor()
    await supervisor.start(actor)
    with pytest.raises(ValueError, match="boom"):
        await actor.ask("boom")
    assert await actor.ask(1) == 1
    assert actor.state == "running"
    await supervisor.stop(1.0)


async def test_full_mailbox_is_reported_not_grown() -> None:
    actor = Counter(mailbox_size=2)  # not started: nothing drains it
    actor.tell(1)
    actor.tell(1)
    with pytest.raises(MailboxFull):
        actor.tell(1)
    assert actor.depth() == 2
    assert actor.full_count == 1


async def test_ask_waiting_for_room_is_queued_once_the_mailbox_drains() -> None:
    actor = Counter(mailbox_size=2)
    actor.tell(1)
    actor.tell(1)
    asked = asyncio.ensure_future(actor.ask(5, wait_for_room=True))
    await asyncio.sleep(0)
    assert not asked.done() and actor.depth() == 2  # waiting, not refused
    supervisor = Supervisor()
    await supervisor.start(actor)
    assert await asked == 7
    await supervisor.stop(1.0)


async def test_ask_times_out() -> None:
    actor = Counter()
    supervisor = Supervisor()
    await supervisor.start(actor)
    with pytest.raises(TimeoutError):
        await actor.ask("slow", timeout=0.05)
    await supervisor.stop(0.1)


@pytest.mark.parametrize("wait_for_room", [False, True])
async def test_a_cancel_that_comes_with_the_answer_is_not_lost(wait_for_room: bool) -> None:
    # The answer and the asker's cancellation in the same turn of the loop: the asker must
    # still end cancelled (asyncio.wait_for of Python 3.11 returned the answer and dropped
    # the cancellation, so a stopping task ran on: gh-86296).
    actor = Counter()
    answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    actor.ask_future = lambda message: answer  # type: ignore[method-assign]

    async def when_room(message: Any) -> Any:
        return await answer

    actor._ask_when_room = when_room  # type: ignore[method-assign]
    asker = asyncio.create_task(actor.ask(1, timeout=5.0, wait_for_room=wait_for_room))
    for _ in range(3):
        await asyncio.sleep(0)  # the asker is now waiting for its answer
    answer.set_result(7)
    asker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asker


async def test_an_ask_still_times_out_and_its_answer_is_dropped() -> None:
    actor = Counter()
    answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    actor.ask_future = lambda message: answer  # type: ignore[method-assign]
    with pytest.raises(TimeoutError):
        await actor.ask(1, timeout=0.05)
    assert answer.cancelled()


class Gated(Counter):
    """Holds its mailbox at ``"wait"`` until the gate opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def handle(self, message: Any) -> Any:
        if message == "wait":
            await self.gate.wait()
            return None
        return await super().handle(message)


async def test_an_ask_given_up_before_its_turn_is_not_handled() -> None:
    # A gateway's timed-out reads queued behind a slow one were each still handled, so an
    # operator's change answered "timeout" came into effect a minute later.
    # The actors' own asks are handled however late: an undo must run.
    actor = Gated()
    supervisor = Supervisor()
    await supervisor.start(actor)
    held = actor.ask_future("wait")
    timed_out = actor.ask_future(5, skippable=True)
    timed_out.set_exception(TimeoutError())  # as the gateway's timer does
    actor.ask_future(7, skippable=True).cancel()
    with pytest.raises(TimeoutError):
        await actor.ask(100, timeout=0.05)  # an actor's own: still handled
    actor.gate.set()
    await held
    assert await actor.ask(1) == 101  # 5 and 7 were never added, 100 was
    assert actor.asks_given_up == 2
    await supervisor.stop(0.1)


async def test_pending_asks_fail_cleanly_on_stop() -> None:
    actor = Counter()
    supervisor = Supervisor()
    await supervisor.start(actor)
    blocker = actor.ask_future("slow")
    queued = actor.ask_future(1)
    await asyncio.sleep(0)
    await supervisor.stop(0.05)
    with pytest.raises(ActorStopped):
        await blocker
    with pytest.raises(ActorStopped):
        await queued
    with pytest.raises(ActorStopped):
        actor.tell(1)


async def test_an_actor_started_is_running_when_its_start_returns() -> None:
    # The daemon says READY=1 after its last start: a status read at once showed "new".
    actor = Counter()
    supervisor = Supervisor()
    await supervisor.start(actor)
    assert actor.state == "running"
    await supervisor.stop(1.0)


async def test_crashed_loop_is_restarted_by_supervisor() -> None:
    actor = Counter()
    supervisor = Supervisor(max_restarts=3, backoff_s=0.001)
    await supervisor.start(actor)
    actor.tell("crash-loop")
    await asyncio.sleep(0.05)
    assert await actor.ask(4) == 4
    assert len(supervisor.crashes["counter"]) == 1
    assert not supervisor.failed.is_set()
    await supervisor.stop(1.0)


async def test_too_many_crashes_fail_the_supervisor() -> None:
    actor = Counter(mailbox_size=16)
    supervisor = Supervisor(max_restarts=2, window_s=60, backoff_s=0.001)
    await supervisor.start(actor)
    for _ in range(3):
        actor.tell("crash-loop")
        await asyncio.sleep(0.02)  # one crash per batch: let the supervisor restart the loop
    await asyncio.wait_for(supervisor.failed.wait(), 2.0)
    assert actor.state == "failed"
    assert supervisor.failure is not None and "counter" in supervisor.failure
    await supervisor.stop(0.1)


async def test_a_failing_tell_does_not_cost_the_rest_of_its_batch() -> None:
    actor = Counter(mailbox_size=16)
    actor.tell(1)
    actor.tell("crash-loop")
    actor.tell(2)
    last = actor.ask_future(3)
    supervisor = Supervisor(backoff_s=0.001)
    await supervisor.start(actor)
    assert await last == 6
    assert len(supervisor.crashes["counter"]) == 1
    await supervisor.stop(1.0)


async def test_messages_arriving_together_are_handled_as_one_batch() -> None:
    class Batcher(Counter):
        async def handle_batch(self, batch: list[Any]) -> None:
            self.batches.append(len(batch))
            await super().handle_batch(batch)

    actor = Batcher(mailbox_size=64)
    for _ in range(10):
        actor.tell(1)
    last = actor.ask_future(1)
    supervisor = Supervisor()
    await supervisor.start(actor)
    assert await last == 11
    assert actor.batches[0] == 11
    await supervisor.stop(1.0)


async def test_encoding_in_slices_lets_the_loop_serve_between_slices() -> None:
    served: list[int] = []

    async def other_work() -> None:
        for i in range(1000):
            served.append(i)
            await asyncio.sleep(0)

    entries = [[i, float(i) / 3, "x" * (i % 7)] for i in range(1000)]
    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    before = len(served)
    encoded = await encode_in_slices(entries, every=100)
    during = len(served) - before
    other.cancel()
    # Ten slices, a turn of the loop after each: the other task ran between them.
    assert during >= 9
    assert [msgspec.msgpack.decode(raw) for raw in encoded] == entries
    assert msgspec.msgpack.decode(msgspec.msgpack.encode({"e": encoded})) == {"e": entries}


@pytest.mark.parametrize("length", [0, 1, 15, 16, 65_535, 65_536])
def test_msgpack_pieces_concatenate_to_the_encoding_of_the_whole(length: int) -> None:
    raws = [msgspec.Raw(msgspec.msgpack.encode([i, i / 7])) for i in range(length)]
    names = {f"s{i}": float(i) for i in range(length)}
    value = {"version": 2, "groups": {"strategy": raws, "names": names}, "tail": [1, "x"]}
    pieces = msgpack_pieces(value)
    assert b"".join(pieces) == msgspec.msgpack.encode(value)
    # The slices are not copied into one buffer: each Raw is a piece of its own.
    assert sum(piece is raw for piece in pieces for raw in raws[:3]) == min(length, 3)
