"""Handles: what others hold of an actor is its mailbox and its stats, nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from alphad.actors.base import Actor, Ask, Handle, MailboxFull, Samples
from alphad.actors.store import AppendTrade
from alphad.daemon.supervisor import Supervisor
from tests.test_store import start_store, trade

HANDLE_API = {"name", "tell", "tell_wait", "ask", "ask_future", "depth", "refused", "stats"}


class CounterStats(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    added: int


class Add(Ask[int], frozen=True):
    amount: int


class Counter(Actor):
    name = "counter"

    def __init__(self) -> None:
        super().__init__(mailbox_size=2)
        self.total = 0
        self.added = 0

    def stats(self) -> CounterStats:
        return CounterStats(total=self.total, added=self.added)

    async def handle(self, message: Any) -> Any:
        self.total += message.amount
        self.added += 1
        return self.total


def public(obj: object) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


async def test_a_handle_exposes_the_mailbox_and_the_stats_and_nothing_of_the_actor() -> None:
    counter = Counter()
    handle = Handle(counter)
    assert public(handle) == HANDLE_API
    for internal in ("total", "added", "mailbox", "handle", "run", "state", "request_stop"):
        with pytest.raises(AttributeError):
            getattr(handle, internal)
    with pytest.raises(AttributeError):
        handle.total = 5  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        handle._actor = Counter()  # cannot be pointed at another actor
    with pytest.raises(AttributeError):
        handle.tell = print  # type: ignore[method-assign]

    handle.tell(Add(2))
    handle.tell(Add(3))
    with pytest.raises(MailboxFull):
        handle.tell(Add(4))
    assert (handle.name, handle.depth(), handle.refused()) == ("counter", 2, 1)
    supervisor = Supervisor()
    await supervisor.start(counter)
    try:
        assert await handle.ask(Add(10), wait_for_room=True) == 15
        stats = handle.stats()
        assert stats == CounterStats(total=15, added=3)
        with pytest.raises(AttributeError):
            stats.total = 0  # type: ignore[misc]
        await handle.ask(Add(1))
        assert stats.total == 15  # a snapshot: later messages do not change it
        assert handle.stats().total == 16
    finally:
        await supervisor.stop(1.0)


def test_samples_are_read_by_sequence_number_and_reading_changes_nothing() -> None:
    samples: Samples[int] = Samples(size=3)
    assert samples.since(0) == (0, [])
    samples.add(1)
    samples.add(2)
    seq, first = samples.since(0)
    assert (seq, first) == (2, [1, 2])
    assert samples.since(0) == (2, [1, 2])  # another reader still sees them
    assert samples.since(seq) == (2, [])
    for value in (3, 4, 5, 6):
        samples.add(value)
    # Four came since the last read and three are held: the oldest is not seen.
    assert samples.since(seq) == (6, [4, 5, 6])
    assert samples.since(5) == (6, [6])


async def test_the_stores_stats_are_a_snapshot_and_its_commits_a_ring(tmp_path: Path) -> None:
    store, _, supervisor = await start_store(tmp_path / "alphad.db")
    handle = Handle(store)
    try:
        for trade_id in ("t1", "t2"):
            await handle.ask(AppendTrade(trade(trade_id)))
        stats = handle.stats()
        assert (stats.trades_committed, stats.healthy, stats.conflicts) == (2, True, 0)
        seq, commits = stats.commit_samples.since(0)
        assert seq == 2 and [size for _, size in commits] == [1, 1]
        assert stats.commit_samples.since(seq) == (2, [])
        with pytest.raises(AttributeError):
            stats.trades_committed = 0  # type: ignore[misc]
    finally:
        await supervisor.stop(5.0)
