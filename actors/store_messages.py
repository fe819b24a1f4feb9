"""The store's messages and errors: what the other actors send the store, and its answers.

The store itself is split in three (actors/store.py says how); these are its wire to the
rest of the daemon and are imported from ``actors.store`` as they always were.
"""

from __future__ import annotations

import struct
import time
import zlib
from typing import Any

import msgspec

from alphad.actors.base import Ask, Piece
from alphad.actors.events import ClosedTrade, SignalOutcome
from alphad.protocol.messages import AuditEntry, OptimizationState, RecordTrade, SignalRecord


class StorageCorrupt(Exception):
    """The database file fails SQLite's own check; the store refuses to use it."""


class StorageUnavailable(Exception):
    """The database could not be written; nothing in the failed batch was recorded."""


# ----------------------------------------------------------------------------- messages


class AppendTrade(Ask[tuple[bool, int]], frozen=True):
    """Ask: record a trade; answered with ``(duplicate, seq)`` after the commit.

    A resend of a recorded trade_id is a duplicate only if every one of ``TRADE_FIELDS``
    is equal (floats exactly); otherwise it is refused with ``conflict``. The detected
    regime is not compared: a resend after a restart has no bars to read it from.
    ``use_detected``: the trade counts under ``detected_regime`` (unknown when None), not
    under the bot's label.
    """

    trade: RecordTrade
    detected_regime: str | None = None
    use_detected: bool = False
    # The trade's signal_id when it came: (whether the scorer held it pending, the
    # scorer's count of scored signals); None without a signal_id.
    signal_mark: tuple[bool, int] | None = None
    # When it was sent (time.monotonic()): a write waits on a lock only for what is left
    # of [store] busy_timeout_ms since then (StoreActor._lock_wait_ms).
    sent: float = msgspec.field(default_factory=time.monotonic)


class AppendOutcome(Ask[tuple[bool, int]], frozen=True):
    """Ask: record a signal outcome; answered with ``(duplicate, seq)`` after the commit,
    or refused with ``conflict`` if the signal's recorded outcome is the other one.

    ``pending`` False (the scorer does not wait for this signal): refused with
    ``not_found`` unless the signal is in the signals journal or has an outcome already.
    """

    signal_id: str
    success: bool
    ts_ms: int
    pending: bool = True
    scored: int | None = None  # the scorer's count of scored signals when it came
    # Last, so that no field given by position lands in it: as AppendTrade's.
    sent: float = msgspec.field(default_factory=time.monotonic)


class AppendSignal(msgspec.Struct, frozen=True, array_like=True):
    """Tell: keep a scored signal (best effort, batched, off the hot path)."""

    signal_id: str
    ts_ms: int
    strategy: str
    symbol: str
    side: str
    confidence: float
    confluence: int
    regime: str | None
    quality: float
    execute: bool
    size_multiplier: float
    weight: float
    status: str
    reasons: str
    detected_regime: str | None = None
    regime_source: str | None = None
    # The scorer's count of scored signals once this one was scored (its ``scored``).
    ordinal: int | None = None


class AppendSignals(Ask[None], frozen=True):
    """Ask: scored signals collected by the scorer since its last flush, answered when
    the store takes them into its next write (the scorer hands no more until then)."""

    rows: list[AppendSignal]


class TradesCommitted(msgspec.Struct, frozen=True):
    """Tell (to the engine): this many trades were committed since the last such notice.

    One per group commit at most; a notice that finds the mailbox full is not waited on
    but added to the next one, so counts are never lost, only late.
    """

    count: int


class CheckFiles(msgspec.Struct, frozen=True):
    """Tell: check that the database file and its write-ahead log are still the ones
    opened, between writes too (every second): a log deleted while nothing was written
    was found only by the next write, and a crash meanwhile lost all it held."""


class PruneSignals(msgspec.Struct, frozen=True):
    """Tell: delete journaled signals scored before ``before_ms``, oldest first.

    A chunk per batch, so writes interleave with a long prune; the store tells itself
    to go on after row ``after_id`` while a chunk held an old signal or was all stamped
    after ``now_ms`` (the clock when the prune began).
    """

    before_ms: int
    after_id: int = 0
    now_ms: int | None = None


class AuditDraft(msgspec.Struct, frozen=True, kw_only=True):
    """An audit entry before the store gives it its ``seq``."""

    ts_ms: int
    kind: str
    strategy: str | None
    old: Any
    new: Any
    reason: str
    actor: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The state of every stateful actor at a point in the trade and outcome streams.

    ``state`` is msgpack in pieces (``msgpack_pieces``), written to the database piece by
    piece and never copied into one buffer on the event loop; read back, it is one piece.
    """

    ts_ms: int
    trade_seq: int
    outcome_seq: int
    state: list[Piece]
    # The last audit entry the state includes (set when read back; the store sets it on
    # commit to the last entry of the same transaction).
    audit_seq: int = 0
    checksum: int | None = None  # CRC-32 of the state as written; set when read back

    def encoded(self) -> bytes:
        """The state as one msgpack buffer; ``ValueError`` if it, or the row's numbers
        (``row_checksum``), are not what was written."""
        state = b"".join(self.state)
        if self.checksum is not None:
            of_state = zlib.crc32(state)
            # A row written before the numbers were checked has the state's alone.
            numbers = (self.ts_ms, self.trade_seq, self.outcome_seq, self.audit_seq)
            if self.checksum not in (row_checksum(numbers, of_state), of_state):
                raise ValueError("the snapshot is damaged (its checksum does not match)")
        return state


def row_checksum(numbers: tuple[int, int, int, int], of_state: int) -> int:
    """The CRC-32 a snapshot's row keeps: of its state (``of_state``), then of its
    numbers (ts_ms, trade_seq, outcome_seq, audit_seq), so that a damaged ``trade_seq``
    (which decides the trades replayed after it) is found as a damaged state is."""
    return zlib.crc32(struct.pack("<4q", *numbers), of_state)


class Commit(Ask[list[AuditEntry]], frozen=True, kw_only=True):
    """Ask: journal audit entries, a history row and a snapshot in one transaction.

    Answered with the committed ``AuditEntry`` list (with their seqs).
    """

    audit: list[AuditDraft] = msgspec.field(default_factory=list)
    history: OptimizationState | None = None
    snapshot: Snapshot | None = None


class QueryAudit(Ask[tuple[list[AuditEntry], bool]], frozen=True):
    """Ask: at most ``limit`` audit entries after ``since_seq``, oldest first, and no more
    than fit in about ``max_bytes`` (at least one) when it is given; answered
    ``(entries, more)``, ``more`` telling whether entries are left after the page."""

    since_seq: int
    strategy: str | None
    limit: int
    max_bytes: int | None = None


class QueryHistory(Ask[tuple[list[OptimizationState], bool]], frozen=True):
    """Ask: the latest ``limit`` cycles' full states before ``before_cycle``, newest
    first, and no more than fit in about ``max_bytes`` (at least one) when it is given;
    answered ``(states, more)``."""

    limit: int
    before_cycle: int | None = None
    max_bytes: int | None = None


class QuerySignals(Ask[tuple[list[SignalRecord], bool]], frozen=True, kw_only=True):
    """Ask: journaled signals after the journal id ``after``, oldest first, with their
    outcome; at most ``limit``, no more than fit in about ``max_bytes`` (at least one),
    answered ``(records, more)``."""

    strategy: str | None
    symbol: str | None
    since_ms: int | None
    after: int | None
    limit: int
    max_bytes: int


class JournaledSignal(msgspec.Struct, frozen=True, kw_only=True):
    """A scored signal as the journal keeps it, for the scorer to count and hold it
    pending again at a start (``ScorerModel.restore_scored``); ``regime`` is the one it
    was scored under (the detected reading where that counted)."""

    ordinal: int
    signal_id: str
    strategy: str
    symbol: str
    side: str
    confluence: int
    regime: str | None
    quality: float
    execute: bool
    status: str


class Recovery(msgspec.Struct, kw_only=True):
    """What a restart needs: a snapshot and everything committed after it.

    ``audit`` holds the journaled changes after the snapshot: none after the newest
    snapshot, the ones a restart must apply again after an older one.
    """

    snapshot: Snapshot | None
    trades: list[ClosedTrade]
    outcomes: list[SignalOutcome]
    audit: list[AuditEntry] = msgspec.field(default_factory=list)
