"""The store's sequencing and deduplication, planned without a database: seqs, in-batch
repeats, resends of what an earlier batch recorded, refusals and their text."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from alphad.actors.errors import Conflict, NotFound
from alphad.actors.events import SignalOutcome
from alphad.actors.history_rows import Chain
from alphad.actors.store import (
    AppendOutcome,
    AppendSignal,
    AppendTrade,
    AuditDraft,
    Commit,
    Snapshot,
)
from alphad.actors.store_plan import (
    Recorded,
    plan_batch,
    plan_commits,
    plan_outcomes,
    plan_trades,
    signals_to_look_up,
    unknown_signal,
)
from alphad.protocol.messages import OptimizationState, RecordTrade

NOW = 1_700_000_000_000


def append(trade_id: str, pnl: float = 1.0, **fields: Any) -> AppendTrade:
    detected = fields.pop("detected_regime", None)
    use_detected = fields.pop("use_detected", False)
    request = RecordTrade(
        trade_id=trade_id,
        strategy=fields.pop("strategy", "ema"),
        symbol="BTC/USDT",
        side=fields.pop("side", "buy"),
        pnl=pnl,
        entry_ts_ms=1_000,
        exit_ts_ms=2_000,
        **fields,
    )
    return AppendTrade(request, detected_regime=detected, use_detected=use_detected)


def outcome(signal_id: str, success: bool = True, pending: bool = True) -> AppendOutcome:
    return AppendOutcome(signal_id=signal_id, success=success, ts_ms=5_000, pending=pending)


def signal(signal_id: str) -> AppendSignal:
    return AppendSignal(
        signal_id, 1, "ema", "BTC/USDT", "buy", 0.5, 1, None, 0.5, True, 1.0, 1.0, "ok", ""
    )


def text(answer: Any) -> str:
    assert isinstance(answer, Conflict), answer
    return str(answer)


# ----------------------------------------------------------------------------- trades


def test_new_trades_take_the_next_seqs_in_arrival_order() -> None:
    plan = plan_trades([append("b"), append("a"), append("c")], last_seq=7, now_ms=NOW)
    assert plan.answers == [(False, 8), (False, 9), (False, 10)]
    assert [(t.seq, t.trade_id) for t in plan.new] == [(8, "b"), (9, "a"), (10, "c")]
    assert [row[:2] for row in plan.rows] == [(8, "b"), (9, "a"), (10, "c")]
    assert plan.keys == ["b", "a", "c"]


def test_a_trade_row_holds_the_columns_of_the_trades_table() -> None:
    plan = plan_trades([append("t1", 2.5, regime="trending", size=0.5)], 0, NOW)
    # seq, trade_id, strategy, symbol, side, pnl, entry, exit, regime, size, signal_id,
    # recorded_ms, detected_regime, regime_source, signal_pending, signal_scored
    columns = ("ema", "BTC/USDT", "buy", 2.5, 1_000, 2_000, "trending", 0.5, None)
    assert plan.rows == [(1, "t1", *columns, NOW, None, "bot", None, None)]


def test_a_trade_with_a_signal_keeps_where_it_came_among_the_signals() -> None:
    # Pending in the scorer when it came, after its 41st signal: a start learns it there.
    request = msgspec.structs.replace(append("t1").trade, signal_id="s7")
    plan = plan_trades([AppendTrade(request, signal_mark=(True, 41))], 0, NOW)
    assert plan.rows[0][-2:] == (1, 41)
    assert (plan.new[0].signal_pending, plan.new[0].signal_scored) == (True, 41)
    # A mark without a signal_id is no mark.
    plan = plan_trades([AppendTrade(append("t2").trade, signal_mark=(True, 41))], 0, NOW)
    assert plan.rows[0][-2:] == (None, None) and plan.new[0].signal_pending is None


@pytest.mark.parametrize(
    ("label", "detected", "use_detected", "counts_under", "stored", "source"),
    [
        (None, None, False, "unknown", "unknown", None),  # no label: unknown, no source
        ("trending", None, False, "trending", "trending", "bot"),
        ("trending", "ranging", True, "ranging", "trending", "detected"),
        ("trending", None, True, "unknown", "trending", "detected"),  # no reading
    ],
)
def test_the_regime_a_trade_counts_under(
    label: str | None,
    detected: str | None,
    use_detected: bool,
    counts_under: str,
    stored: str,
    source: str | None,
) -> None:
    trade = append("t1", regime=label, detected_regime=detected, use_detected=use_detected)
    plan = plan_trades([trade], 0, NOW)
    assert plan.new[0].regime == counts_under
    row = plan.rows[0]
    assert (row[8], row[12], row[13]) == (stored, detected, source)


def test_a_repeat_in_the_batch_is_answered_as_the_first_and_written_once() -> None:
    plan = plan_trades([append("t1"), append("t2"), append("t1")], 0, NOW)
    assert plan.answers == [(False, 1), (False, 2), (True, 1)]
    assert len(plan.rows) == 2 and [t.trade_id for t in plan.new] == ["t1", "t2"]


def test_a_repeat_in_the_batch_that_differs_is_refused_naming_what_differs() -> None:
    plan = plan_trades([append("t1", 1.0), append("t1", -2.5, side="sell")], 0, NOW)
    assert plan.answers[0] == (False, 1)
    assert text(plan.answers[1]) == (
        "trade_id 't1' is already recorded with side 'buy', pnl 1.0;"
        " this one has side 'sell', pnl -2.5; nothing was recorded"
    )
    assert plan.conflicts == 1 and len(plan.rows) == 1


def test_a_float_one_bit_off_is_another_pnl() -> None:
    plan = plan_trades([append("t1", 0.1 + 0.2), append("t1", 0.3)], 0, NOW)
    assert text(plan.answers[1]) == (
        "trade_id 't1' is already recorded with pnl 0.30000000000000004;"
        " this one has pnl 0.3; nothing was recorded"
    )


def test_the_detected_regime_is_not_compared() -> None:
    first = append("t1", detected_regime="ranging", use_detected=True)
    plan = plan_trades([first, append("t1")], 0, NOW)
    assert plan.answers == [(False, 1), (True, 1)]


def recorded_trade(seq: int, trade: AppendTrade) -> Recorded:
    """How the database answers for a trade it holds: its seq and compared fields."""
    r = trade.trade
    regime = r.regime or "unknown"
    return seq, (r.strategy, r.symbol, r.side, r.pnl, r.entry_ts_ms, r.exit_ts_ms, regime,
                 r.size, r.signal_id)  # fmt: skip


def test_a_resend_of_a_recorded_trade_is_a_duplicate_with_the_recorded_seq() -> None:
    plan = plan_trades([append("new"), append("old"), append("old")], 10, NOW)
    assert plan.answers == [(False, 11), (False, 12), (True, 12)]
    found = {
        "new": (11, recorded_trade(11, append("new"))[1]),
        "old": recorded_trade(4, append("old")),
    }
    plan.settle(found)
    assert plan.answers == [(False, 11), (True, 4), (True, 4)]
    assert [t.trade_id for t in plan.new] == ["new"]  # the learners see "old" once, already
    assert plan.last_seq(10) == 11 and plan.conflicts == 0


def test_a_resend_that_differs_from_the_record_is_a_conflict() -> None:
    plan = plan_trades([append("old", 5.0)], 10, NOW)
    plan.settle({"old": recorded_trade(3, append("old", 1.0, strategy="rsi"))})
    assert text(plan.answers[0]) == (
        "trade_id 'old' is already recorded with strategy 'rsi', pnl 1.0;"
        " this one has strategy 'ema', pnl 5.0; nothing was recorded"
    )
    assert plan.new == [] and plan.last_seq(10) == 10


def test_nothing_found_recorded_leaves_the_plan_as_it_was() -> None:
    plan = plan_trades([append("t1"), append("t2")], 0, NOW)
    plan.settle(None)
    assert plan.answers == [(False, 1), (False, 2)] and plan.last_seq(0) == 2


# ----------------------------------------------------------------------------- outcomes


def test_outcomes_are_sequenced_and_deduplicated_like_trades() -> None:
    plan = plan_outcomes([outcome("s1"), outcome("s2", False), outcome("s1")], last_seq=3)
    assert plan.answers == [(False, 4), (False, 5), (True, 4)]
    assert plan.rows == [(4, "s1", 1, 5_000, 1, None), (5, "s2", 0, 5_000, 1, None)]
    assert plan.new == [
        SignalOutcome(seq=4, signal_id="s1", success=True, ts_ms=5_000, pending=True),
        SignalOutcome(seq=5, signal_id="s2", success=False, ts_ms=5_000, pending=True),
    ]
    # Where it came: not pending (the scorer had forgotten it), after the 12th signal.
    late = plan_outcomes([AppendOutcome("s3", True, 5_000, False, 12)], last_seq=0)
    assert late.rows == [(1, "s3", 1, 5_000, 0, 12)]
    assert (late.new[0].pending, late.new[0].scored) == (False, 12)


def test_the_other_outcome_of_a_signal_is_refused() -> None:
    plan = plan_outcomes([outcome("s1", True), outcome("s1", False)], 0)
    assert text(plan.answers[1]) == (
        "the outcome of signal_id 's1' is already recorded with success True;"
        " this one has success False; nothing was recorded"
    )
    recorded = plan_outcomes([outcome("s2", True)], 0)
    recorded.settle({"s2": (9, (0,))})  # the database holds 0: a failure
    assert text(recorded.answers[0]) == (
        "the outcome of signal_id 's2' is already recorded with success False;"
        " this one has success True; nothing was recorded"
    )


def test_an_outcome_of_an_unknown_signal_is_looked_up_unless_its_signal_is_pending() -> None:
    outcomes = [outcome("waited", pending=True), outcome("late", pending=False)]
    outcomes += [outcome("scored-now", pending=False)]
    assert signals_to_look_up(outcomes, [signal("scored-now")]) == {"late"}
    assert signals_to_look_up([outcome("waited")], []) == set()
    refusal = unknown_signal("late")
    assert isinstance(refusal, NotFound)
    assert str(refusal) == (
        "signal 'late' is not in the signals journal: never scored, older than it keeps"
        " ([store] signals_keep_days), or scored in the second before a kill -9 (rows are"
        " written once a second); nothing was recorded"
    )


# ----------------------------------------------------------------------------- commits


def draft(kind: str, old: Any = None, new: Any = None) -> AuditDraft:
    return AuditDraft(
        ts_ms=9, kind=kind, strategy="ema", old=old, new=new, reason="r", actor="engine"
    )


def state(cycle: int, weight: float) -> OptimizationState:
    """A cycle of twenty strategies in which only ``s0``'s weight moves."""
    names = [f"s{n}" for n in range(20)]
    return OptimizationState(
        cycle=cycle,
        ts_ms=cycle,
        regime=None,
        weights={name: weight if name == "s0" else 1.0 for name in names},
        statuses=dict.fromkeys(names, "active"),
    )


def test_audit_entries_continue_the_audit_seq_across_the_commits_of_a_batch() -> None:
    snap = Snapshot(ts_ms=1, trade_seq=40, outcome_seq=41, state=[b"ab", b"c"])
    commits = [
        Commit(audit=[draft("weight", 0.5, 0.25), draft("status", "active", "paused")]),
        Commit(snapshot=snap),
        Commit(audit=[draft("weight", {"a": 1}, None)]),
    ]
    plan = plan_commits(commits, last_audit_seq=20, chain=None)
    assert [[e.seq for e in entries] for entries in plan.answers] == [[21, 22], [], [23]]
    assert plan.audit[0] == (21, 9, "weight", "ema", "0.5", "0.25", "r", "engine", "{}")
    assert plan.audit[2][4:6] == ('{"a":1}', "null")
    # The snapshot includes the entries committed before it in the batch, not after.
    assert plan.snapshots == [(1, 40, 41, 22, [b"ab", b"c"])]
    assert plan.last_seq(20) == 23


def test_history_rows_chain_on_from_the_last_row_written() -> None:
    plan = plan_commits([Commit(history=state(1, 0.5)), Commit(history=state(2, 0.6))], 0, None)
    first, second = plan.history
    assert first.keyframe is None  # the first row after a start is a full state
    assert second.keyframe == 1 and plan.chain is not None and plan.chain.cycle == 2
    after: Chain = plan.chain
    assert plan_commits([Commit(audit=[draft("x")])], 0, after).chain is after
    assert plan_commits([Commit(history=state(3, 0.7))], 0, after).history[0].keyframe == 1


def test_a_batch_names_its_rows_for_the_database() -> None:
    plan = plan_batch(
        trades=[append("t1"), append("t1")],
        outcomes=[outcome("s1")],
        commits=[Commit(audit=[draft("x")])],
        signals=[signal("s9")],
        last_trade_seq=1,
        last_outcome_seq=2,
        last_audit_seq=3,
        chain=None,
        now_ms=NOW,
    )
    batch = plan.batch(history_keep=10, snapshots_keep=3)
    assert batch.trade_ids == ["t1"] and [row[0] for row in batch.trades] == [2]
    assert batch.outcome_ids == ["s1"] and batch.outcomes[0][0] == 3
    assert batch.audit[0][0] == 4 and (batch.history_keep, batch.snapshots_keep) == (10, 3)
    assert batch.signals == [msgspec.structs.astuple(signal("s9"))]
    plan.settle(None, {"s1": (1, (0,))})
    assert plan.conflicts == 1 and plan.outcomes.new == []


# ----------------------------------------------------------------------------- property

KEYS = st.sampled_from(["a", "b", "c"])
PNLS = st.sampled_from([1.0, 2.0])


@given(
    sent=st.lists(st.tuples(KEYS, PNLS), max_size=8),
    before=st.dictionaries(KEYS, st.tuples(st.integers(1, 5), PNLS)),
)
@example(sent=[("a", 1.0), ("a", 1.0)], before={"a": (3, 1.0)})
@example(sent=[("a", 2.0), ("b", 1.0), ("a", 2.0), ("b", 2.0)], before={"a": (5, 1.0)})
# The first resend differs from the record, the second repeats it: a duplicate.
@example(sent=[("a", 2.0), ("a", 1.0)], before={"a": (3, 1.0)})
def test_every_answer_is_the_record_or_the_first_of_the_batch(
    sent: list[tuple[str, float]], before: dict[str, tuple[int, float]]
) -> None:
    """Against a database holding ``before`` (key: seq, pnl): a message of a key recorded
    before is answered by the record; one of a new key by that key's first message in the
    batch, which takes a seq after ``last_seq`` (new keys in the order first seen)."""
    last_seq = 5
    plan = plan_trades([append(key, pnl) for key, pnl in sent], last_seq, NOW)
    # The database: INSERT OR IGNORE keeps what it held and takes the rows of new keys;
    # the record of every key is read back when some insert was ignored.
    held = {row[1]: (row[0], row[5]) for row in plan.rows} | before
    ignored = any(key in before for key in plan.keys)
    found = {key: recorded_trade(seq, append(key, pnl)) for key, (seq, pnl) in held.items()}
    plan.settle(found if ignored else None)

    first: dict[str, float] = {}
    seq_of: dict[str, int] = {}
    for (key, pnl), answer in zip(sent, plan.answers, strict=True):
        seen = key in first
        reference = before[key][1] if key in before else first.setdefault(key, pnl)
        first.setdefault(key, pnl)
        if pnl != reference:
            assert text(answer) == (
                f"trade_id {key!r} is already recorded with pnl {reference!r};"
                f" this one has pnl {pnl!r}; nothing was recorded"
            )
        elif key in before:
            assert answer == (True, before[key][0])
        else:
            assert isinstance(answer, tuple) and answer[0] is seen
            assert seq_of.setdefault(key, answer[1]) == answer[1]
    new_keys = [key for key in first if key not in before]
    assert [(t.trade_id, t.seq) for t in plan.new] == [(k, seq_of[k]) for k in new_keys]
    seqs = [last_seq, *(seq_of[k] for k in new_keys)]
    assert seqs == sorted(set(seqs))  # increasing, after last_seq
    assert plan.last_seq(last_seq) == seqs[-1]
