"""The engine's writing: every change committed with a fresh snapshot, then alerted, and
the snapshots taken on their own when due.

A change's audit entries (and a cycle's history row) commit in one transaction with a
snapshot of every stateful actor, so a restart never replays a change twice; the alerts
go out only once that is on disk. Between changes a snapshot is due every so many
committed trades, and on the timer when trades or bars came in since the last one.
Apart from the actor (actors/engine.py), which decides what changes, because this is the
one path to the store: its order (snapshot, commit, alerts) and its bookkeeping of what
the last snapshot holds read in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from alphad.actors.base import TAKE_STATE, Actor, Ask, Handle
from alphad.actors.engine_snapshot import encode_snapshot
from alphad.actors.optimizer import Optimizer
from alphad.actors.store import AuditDraft, Commit, Snapshot
from alphad.protocol.messages import Alert, AuditEntry, OptimizationState

log = structlog.get_logger("alphad.engine")

_T = TypeVar("_T")


async def ask_peer(actor: Handle[Actor], message: Ask[_T]) -> _T:
    """Ask, waiting for room in a full mailbox: none of the engine's peers waits on it."""
    return await actor.ask(message, timeout=30.0, wait_for_room=True)


class Since:
    """The time since a moment stamped on the wall clock (ms): what spaces scheduled
    cycles and timer snapshots.

    Where the wall clock is behind the stamp (set back by an operator or NTP, or a stamp
    restored from a snapshot made while it ran fast), the time is counted on the
    monotonic clock from when the stamp was set: a clock set back a year stopped every
    scheduled cycle and timer snapshot for a year, across restarts too.
    """

    def __init__(self, at_ms: int, what: str) -> None:
        self.what = what
        self.set(at_ms)

    def set(self, at_ms: int) -> None:
        self.at_ms = at_ms
        self._monotonic = time.monotonic()
        self._behind_logged = False

    def copy(self) -> Since:
        """The same stamp and monotonic start, to put back as they were."""
        other = Since(self.at_ms, self.what)
        other._monotonic, other._behind_logged = self._monotonic, self._behind_logged
        return other

    def elapsed_ms(self, now_ms: int) -> int:
        wall = now_ms - self.at_ms
        if wall >= 0:
            return wall
        if not self._behind_logged:
            self._behind_logged = True
            log.warning("wall_clock_behind", last=self.what, last_ms=self.at_ms, now_ms=now_ms)
        return int((time.monotonic() - self._monotonic) * 1000)


class Journal:
    """The engine's commits to the store and the snapshots in them."""

    def __init__(
        self,
        *,
        performance: Handle[Actor],
        scorer: Handle[Actor],
        store: Handle[Actor],
        alerts: Handle[Actor],
        optimizer: Optimizer,
        engine_state: Callable[[], dict[str, Any]],
        inputs_taken: Callable[[], int],
        clock: Callable[[], int],
        snapshot_interval_s: float,
        snapshot_every_trades: int,
    ) -> None:
        self.performance = performance
        self.scorer = scorer
        self.store = store
        self.alerts = alerts
        self.optimizer = optimizer
        self.engine_state = engine_state  # the engine's own part of a snapshot
        # A count of what came in besides trades that the snapshot holds (the bars the
        # scorer's book took, the signals it scored): a change makes the timer's snapshot
        # due, as trades do. A bot that only scores left the start to read every signal
        # since the last cycle's snapshot, millions in a day.
        self.inputs_taken = inputs_taken
        self.inputs_in_snapshot = self._inputs_being_saved = inputs_taken()
        self.clock = clock
        self.snapshot_interval_ms = int(snapshot_interval_s * 1000)
        self.snapshot_every_trades = snapshot_every_trades
        self.since_snapshot = Since(clock(), "snapshot")
        self.since_failed: Since | None = None  # the last background snapshot failed
        self.trades_since_snapshot = 0

    def trades_committed(self, count: int) -> bool:
        """Count trades the store committed; whether they make a snapshot due (after a
        background snapshot failed, not before the timer's interval: tried again at every
        commit, it was made and refused again for every batch of trades)."""
        self.trades_since_snapshot += count
        failed = self.since_failed
        return self.trades_since_snapshot >= self.snapshot_every_trades and (
            failed is None or failed.elapsed_ms(self.clock()) >= self.snapshot_interval_ms
        )

    def due_on_timer(self, now: int) -> bool:
        """Whether the timer's snapshot is due: trades, bars or scored signals came in since
        the last one, an interval ago or more."""
        return (
            bool(self.trades_since_snapshot or self.inputs_taken() != self.inputs_in_snapshot)
            and self.since_snapshot.elapsed_ms(now) >= self.snapshot_interval_ms
        )

    async def commit(
        self, drafts: list[AuditDraft], history: OptimizationState | None = None
    ) -> list[AuditEntry]:
        """Commit audit entries with a fresh snapshot, then publish them as alerts."""
        snapshot = await self._snapshot_now()
        # No timeout: the store always answers (committed or refused), and one given up
        # on could still commit what the engine then undoes.
        entries = await self.store.ask(
            Commit(audit=drafts, history=history, snapshot=snapshot),
            timeout=None,
            wait_for_room=True,
        )
        self._after_snapshot(snapshot)
        alerts = [Alert.from_audit(e) for e in entries]
        if alerts:
            try:
                self.alerts.tell(alerts)
            except Exception as exc:  # the audit row is the record; the alert is a courtesy
                log.warning("alerts_not_queued", error=str(exc), count=len(alerts))
        return entries

    async def snapshot(self, reason: str) -> None:
        """Write a snapshot of every stateful actor."""
        snapshot = await self._snapshot_now()
        await ask_peer(self.store, Commit(snapshot=snapshot))
        self._after_snapshot(snapshot)
        log.debug("snapshot_written", reason=reason, trade_seq=snapshot.trade_seq)

    async def background_snapshot(self, reason: str) -> None:
        """A snapshot nobody waits for: a failure is logged and tried again later.

        Raised, it would crash the loop, and a storage outage would soon fail the daemon
        over what only shortens the next restart's replay. The trade count is kept; the
        next try comes one timer interval later, on the timer or on a commit.
        """
        try:
            await self.snapshot(reason)
        except Exception as exc:
            self.since_snapshot.set(self.clock())
            self.since_failed = Since(self.clock(), "failed snapshot")
            log.warning(
                "snapshot_not_written",
                reason=reason,
                error=f"{type(exc).__name__}: {exc}",
                trades_since_snapshot=self.trades_since_snapshot,
            )

    def _after_snapshot(self, snapshot: Snapshot) -> None:
        self.since_snapshot.set(self.clock())
        self.since_failed = None
        self.trades_since_snapshot = 0
        self.inputs_in_snapshot = self._inputs_being_saved

    async def _snapshot_now(self) -> Snapshot:
        self._inputs_being_saved = self.inputs_taken()  # one taken meanwhile is saved again
        performance = await ask_peer(self.performance, TAKE_STATE)
        scorer = await ask_peer(self.scorer, TAKE_STATE)
        return encode_snapshot(
            performance=performance,
            scorer=scorer,
            optimizer=self.optimizer,
            engine=self.engine_state(),
            ts_ms=self.clock(),
        )
