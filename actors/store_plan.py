"""The store's sequencing and deduplication: what one group commit writes and answers,
planned without a database.

The writes of a batch get the next seqs in the order they arrived, one sequence each for
trades, signal outcomes and audit entries. A key (a trade_id; the signal of an outcome)
that comes twice in one batch is planned once: a repeat that sends the same fields is
answered as a duplicate of the first, one that differs is refused with a conflict that
names what differs. Whether a key was recorded by an earlier batch is known only inside
the transaction (the insert ignores such rows and reads back what is recorded), so the
plan is settled after the commit: those keys are answered against the record (a
duplicate with the recorded seq, or a conflict) and are not told to the learners. The
seqs planned for them are never written; a seq only has to increase, not be dense.

Nothing here touches SQLite: actors/store_writes.py writes a ``Batch``, actors/store.py
(the actor) plans, writes and settles one per group commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from alphad.actors.errors import Conflict, NotFound
from alphad.actors.events import UNKNOWN_REGIME, ClosedTrade, SignalOutcome
from alphad.actors.history_rows import Chain, Row, next_row
from alphad.actors.store_messages import AppendOutcome, AppendSignal, AppendTrade, Commit
from alphad.protocol.messages import AuditEntry

TRADE_FIELDS = (
    "strategy",
    "symbol",
    "side",
    "pnl",
    "entry_ts_ms",
    "exit_ts_ms",
    "regime",
    "size",
    "signal_id",
)
"""What a resend of a trade_id must repeat to be a duplicate (the trades table's columns)."""

OUTCOME_FIELDS = ("success",)
"""What a resend of a signal's outcome must repeat to be a duplicate."""

Recorded = tuple[int, tuple[Any, ...]]
"""A record's seq and its ``*_FIELDS`` as stored."""

Answer = tuple[bool, int] | Conflict
"""A write's answer: (duplicate, seq), or the conflict it is refused with."""

_R = TypeVar("_R", ClosedTrade, SignalOutcome)

_json = msgspec.json.Encoder()


@dataclass
class Planned(Generic[_R]):
    """The writes of one kind in a batch.

    ``answers``: one per message, in order; ``asked``: the key and compared fields of
    each. ``rows``: what to insert. ``new``: the records those rows make, in seq order
    (what the learners are told). ``sent``: the first message of each key, as its
    planned seq and compared fields.
    """

    conflict: Callable[[str, tuple[Any, ...], tuple[Any, ...]], Conflict]
    answers: list[Answer] = field(default_factory=list)
    asked: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    new: list[_R] = field(default_factory=list)
    sent: dict[str, Recorded] = field(default_factory=dict)

    def repeated(self, key: str, fields: tuple[Any, ...]) -> bool:
        """Answer a key already planned in this batch (False: it is the first)."""
        earlier = self.sent.get(key)
        if earlier is None:
            return False
        self.asked.append((key, fields))
        self.answers.append(
            (True, earlier[0]) if earlier[1] == fields else self.conflict(key, earlier[1], fields)
        )
        return True

    def add(
        self, key: str, seq: int, fields: tuple[Any, ...], row: tuple[Any, ...], record: _R
    ) -> None:
        self.sent[key] = (seq, fields)
        self.asked.append((key, fields))
        self.rows.append(row)
        self.answers.append((False, seq))
        self.new.append(record)

    @property
    def keys(self) -> list[str]:
        """The keys the rows insert, in row order."""
        return list(self.sent)

    def settle(self, found: dict[str, Recorded] | None) -> None:
        """The batch committed; ``found`` is the record of every key of the batch when some
        had been recorded before (None: every row was inserted).

        Answers every message of a key recorded before against the record: a duplicate
        with the recorded seq when it repeats the record, else a conflict; and drops those
        keys from ``new``.
        """
        if found is None:
            return
        before = {key: found[key] for key, (seq, _) in self.sent.items() if found[key][0] != seq}
        for index, (key, fields) in enumerate(self.asked):
            if key in before:
                seq, stored = before[key]
                self.answers[index] = (
                    (True, seq) if stored == fields else self.conflict(key, stored, fields)
                )
        planned = {self.sent[key][0] for key in before}
        self.new[:] = [record for record in self.new if record.seq not in planned]

    @property
    def conflicts(self) -> int:
        return sum(isinstance(answer, Conflict) for answer in self.answers)

    def last_seq(self, before: int) -> int:
        """The last seq written once the batch committed (``before``: none written)."""
        return max(before, self.new[-1].seq) if self.new else before


def plan_trades(appends: Sequence[AppendTrade], last_seq: int, now_ms: int) -> Planned[ClosedTrade]:
    """The trades after ``last_seq``, recorded at ``now_ms``."""
    plan: Planned[ClosedTrade] = Planned(trade_conflict)
    seq = last_seq
    for append in appends:
        request = append.trade
        regime = request.regime or UNKNOWN_REGIME
        source: str | None = "detected"
        if append.use_detected:
            used = append.detected_regime or UNKNOWN_REGIME
        else:
            used, source = regime, "bot" if request.regime is not None else None
        fields = (
            request.strategy,
            request.symbol,
            request.side,
            request.pnl,
            request.entry_ts_ms,
            request.exit_ts_ms,
            regime,
            request.size,
            request.signal_id,
        )
        if plan.repeated(request.trade_id, fields):
            continue
        seq += 1
        mark = append.signal_mark if request.signal_id is not None else None
        pending, scored = mark or (None, None)
        row = (
            seq,
            request.trade_id,
            *fields,
            now_ms,
            append.detected_regime,
            source,
            None if pending is None else int(pending),
            scored,
        )
        trade = ClosedTrade(
            seq=seq,
            trade_id=request.trade_id,
            strategy=request.strategy,
            symbol=request.symbol,
            side=request.side,
            pnl=request.pnl,
            entry_ts_ms=request.entry_ts_ms,
            exit_ts_ms=request.exit_ts_ms,
            regime=used,
            size=request.size,
            signal_id=request.signal_id,
            signal_pending=pending,
            signal_scored=scored,
        )
        plan.add(request.trade_id, seq, fields, row, trade)
    return plan


def plan_outcomes(appends: Sequence[AppendOutcome], last_seq: int) -> Planned[SignalOutcome]:
    """The signal outcomes after ``last_seq``."""
    plan: Planned[SignalOutcome] = Planned(outcome_conflict)
    seq = last_seq
    for append in appends:
        fields = (int(append.success),)
        if plan.repeated(append.signal_id, fields):
            continue
        seq += 1
        row = (
            seq,
            append.signal_id,
            int(append.success),
            append.ts_ms,
            int(append.pending),
            append.scored,
        )
        outcome = SignalOutcome(
            seq=seq,
            signal_id=append.signal_id,
            success=append.success,
            ts_ms=append.ts_ms,
            pending=append.pending,
            scored=append.scored,
        )
        plan.add(append.signal_id, seq, fields, row, outcome)
    return plan


@dataclass
class CommitPlan:
    """The audit entries, history rows and snapshots of a batch's ``Commit`` asks.

    ``answers``: each ask's entries with their seqs. A snapshot's row carries the seq of
    the last audit entry planned so far (its own ask's, or an earlier one's). ``chain``:
    what the next history row is written against once these rows are on disk.
    """

    audit: list[tuple[Any, ...]]
    answers: list[list[AuditEntry]]
    history: list[Row]
    snapshots: list[tuple[Any, ...]]
    chain: Chain | None

    def last_seq(self, before: int) -> int:
        return self.audit[-1][0] if self.audit else before


def plan_commits(commits: Sequence[Commit], last_audit_seq: int, chain: Chain | None) -> CommitPlan:
    """The audit entries after ``last_audit_seq``; history rows continuing ``chain``."""
    plan = CommitPlan(audit=[], answers=[], history=[], snapshots=[], chain=chain)
    seq = last_audit_seq
    for commit in commits:
        entries: list[AuditEntry] = []
        for draft in commit.audit:
            seq += 1
            plan.audit.append(
                (
                    seq,
                    draft.ts_ms,
                    draft.kind,
                    draft.strategy,
                    _json.encode(draft.old).decode(),
                    _json.encode(draft.new).decode(),
                    draft.reason,
                    draft.actor,
                    _json.encode(draft.data).decode(),
                )
            )
            entries.append(
                AuditEntry(
                    seq=seq,
                    ts_ms=draft.ts_ms,
                    kind=draft.kind,
                    strategy=draft.strategy,
                    old=draft.old,
                    new=draft.new,
                    reason=draft.reason,
                    actor=draft.actor,
                    data=draft.data,
                )
            )
        plan.answers.append(entries)
        if commit.history is not None:
            row, plan.chain = next_row(plan.chain, commit.history)
            plan.history.append(row)
        if commit.snapshot is not None:
            snap = commit.snapshot
            plan.snapshots.append((snap.ts_ms, snap.trade_seq, snap.outcome_seq, seq, snap.state))
    return plan


class Batch(msgspec.Struct, kw_only=True):
    """Every row of one group commit (actors/store_writes.py writes it in one transaction)."""

    trades: list[tuple[Any, ...]]
    trade_ids: list[str]
    outcomes: list[tuple[Any, ...]]
    outcome_ids: list[str]
    signals: list[tuple[Any, ...]]
    audit: list[tuple[Any, ...]]
    history: list[Row]
    history_keep: int
    snapshots: list[tuple[Any, ...]]
    snapshots_keep: int
    # Snapshots a start found that do not restore: deleted with the next snapshot's
    # commit, so that they do not hold places among the kept ones.
    snapshots_drop: list[int] = msgspec.field(default_factory=list)


@dataclass
class BatchPlan:
    """A group commit planned: what to write, and the answers once it is written."""

    trades: Planned[ClosedTrade]
    outcomes: Planned[SignalOutcome]
    commits: CommitPlan
    signals: list[AppendSignal]

    def batch(
        self, *, history_keep: int, snapshots_keep: int, snapshots_drop: list[int] | None = None
    ) -> Batch:
        return Batch(
            trades=self.trades.rows,
            trade_ids=self.trades.keys,
            outcomes=self.outcomes.rows,
            outcome_ids=self.outcomes.keys,
            signals=[msgspec.structs.astuple(s) for s in self.signals],
            audit=self.commits.audit,
            history=self.commits.history,
            history_keep=history_keep,
            snapshots=self.commits.snapshots,
            snapshots_keep=snapshots_keep,
            snapshots_drop=list(snapshots_drop or []),
        )

    def settle(
        self, trades_found: dict[str, Recorded] | None, outcomes_found: dict[str, Recorded] | None
    ) -> None:
        """The batch committed: answer the keys found recorded before (``Planned.settle``)."""
        self.trades.settle(trades_found)
        self.outcomes.settle(outcomes_found)

    @property
    def conflicts(self) -> int:
        return self.trades.conflicts + self.outcomes.conflicts


def plan_batch(
    *,
    trades: Sequence[AppendTrade],
    outcomes: Sequence[AppendOutcome],
    commits: Sequence[Commit],
    signals: list[AppendSignal],
    last_trade_seq: int,
    last_outcome_seq: int,
    last_audit_seq: int,
    chain: Chain | None,
    now_ms: int,
) -> BatchPlan:
    return BatchPlan(
        trades=plan_trades(trades, last_trade_seq, now_ms),
        outcomes=plan_outcomes(outcomes, last_outcome_seq),
        commits=plan_commits(commits, last_audit_seq, chain),
        signals=signals,
    )


# ----------------------------------------------------------------------------- refusals


def signals_to_look_up(
    outcomes: Iterable[AppendOutcome], pending: Iterable[AppendSignal]
) -> set[str]:
    """The signals the journal must know for their outcomes to be recorded: those of the
    outcomes the scorer does not wait for (``pending`` False), less the scored signals
    still waiting to be written with this batch."""
    asked = {outcome.signal_id for outcome in outcomes if not outcome.pending}
    if asked:
        asked -= {row.signal_id for row in pending}
    return asked


def traded_conflict(signal_id: str, trade_id: str, pnl: float, success: bool) -> Conflict:
    """The refusal of an outcome opposite to the one a trade recorded for its signal."""
    return Conflict(
        f"the outcome of signal_id {signal_id!r} is already recorded with success"
        f" {'true' if pnl > 0 else 'false'} (trade {trade_id!r}, pnl {pnl!r}); this one has"
        f" success {'true' if success else 'false'}; nothing was recorded",
    )


def unknown_signal(signal_id: str) -> NotFound:
    """The refusal of an outcome for a signal the journal does not know."""
    return NotFound(
        f"signal {signal_id!r} is not in the signals journal: never scored, older than"
        " it keeps ([store] signals_keep_days), or scored in the second before a kill -9"
        " (rows are written once a second); nothing was recorded",
    )


def _conflict(
    key: str, value: str, names: tuple[str, ...], recorded: tuple[Any, ...], sent: tuple[Any, ...]
) -> Conflict:
    """The refusal of a resend that differs from the record, naming what differs."""
    differ = [i for i, name in enumerate(names) if recorded[i] != sent[i]]
    shown = ", ".join(f"{names[i]} {_shown(recorded[i])}" for i in differ)
    here = ", ".join(f"{names[i]} {_shown(sent[i])}" for i in differ)
    return Conflict(
        f"{key} {value!r} is already recorded with {shown}; this one has {here};"
        " nothing was recorded",
    )


def trade_conflict(trade_id: str, recorded: tuple[Any, ...], sent: tuple[Any, ...]) -> Conflict:
    return _conflict("trade_id", trade_id, TRADE_FIELDS, recorded, sent)


def outcome_conflict(signal_id: str, recorded: tuple[Any, ...], sent: tuple[Any, ...]) -> Conflict:
    return _conflict(
        "the outcome of signal_id",
        signal_id,
        OUTCOME_FIELDS,
        tuple(bool(v) for v in recorded),
        tuple(bool(v) for v in sent),
    )


def _shown(value: Any) -> str:
    # repr: floats exactly as compared, strings quoted, None and booleans by name.
    return repr(value)
