"""Compact history rows: a cycle's weights and statuses stored as what changed since the
row before, with a full row (a keyframe) now and then; full states rebuilt when read.

Why deltas and keyframes rather than compressing each row: a cycle usually moves a few
weights of many strategies, so almost every byte of a full row repeats the row before,
and compression of one row alone cannot see that (names and doubles compress ~2×, a
delta is ~100× smaller). Each delta names its keyframe, so a row is rebuilt from that
keyframe and the rows between, never from rows further back, and pruning keeps or drops
whole keyframe groups. A keyframe is written every ``KEYFRAME_EVERY`` rows, or sooner
once the deltas since the last one add up to a full row: rebuilding one row then reads
at most about two full rows' bytes. A rebuilt state is the state bit for bit, the order
of its maps too (a keyframe when a delta could not keep it). The first row after a start
is a keyframe, so the writer needs nothing from the database, and rows of the full form
(every row before schema 4: ``keyframe`` NULL) are keyframes as they stand.
"""

from __future__ import annotations

from collections.abc import Iterable
from math import copysign
from typing import TypeVar

import msgspec

from alphad.protocol.messages import OptimizationState

KEYFRAME_EVERY = 100

_V = TypeVar("_V", float, str)

_encoder = msgspec.msgpack.Encoder()
_full_decoder = msgspec.msgpack.Decoder(OptimizationState)


class Delta(msgspec.Struct, array_like=True):
    """A cycle whose ``state`` holds only the weights and statuses that are new or moved
    since the row before; the names dropped from either map are listed."""

    state: OptimizationState
    dropped_weights: list[str]
    dropped_statuses: list[str]


_delta_decoder = msgspec.msgpack.Decoder(Delta)


class Row(msgspec.Struct, frozen=True, array_like=True):
    """One history row: ``keyframe`` is None for a full state, else the cycle of the
    keyframe its chain starts at; ``full_bytes`` is the size of the full state."""

    cycle: int
    ts_ms: int
    state: bytes
    keyframe: int | None
    full_bytes: int


class Chain(msgspec.Struct, frozen=True):
    """What the next row is written against: the last row's full maps and its group."""

    keyframe: int
    cycle: int
    weights: dict[str, float]
    statuses: dict[str, str]
    rows: int
    delta_bytes: int


def next_row(chain: Chain | None, state: OptimizationState) -> tuple[Row, Chain]:
    """The row that stores ``state`` after ``chain``, and the chain after it."""
    full = _encoder.encode(state)
    weights, statuses = dict(state.weights), dict(state.statuses)
    if (
        chain is not None
        and chain.cycle < state.cycle
        and chain.rows < KEYFRAME_EVERY
        and _same_order(chain.weights, weights)
        and _same_order(chain.statuses, statuses)
    ):
        delta = _encoder.encode(
            Delta(
                state=msgspec.structs.replace(
                    state,
                    weights=_changed(chain.weights, weights),
                    statuses=_changed(chain.statuses, statuses),
                ),
                dropped_weights=[name for name in chain.weights if name not in weights],
                dropped_statuses=[name for name in chain.statuses if name not in statuses],
            )
        )
        if chain.delta_bytes + len(delta) < len(full):
            row = Row(state.cycle, state.ts_ms, delta, chain.keyframe, len(full))
            after = Chain(
                chain.keyframe,
                state.cycle,
                weights,
                statuses,
                chain.rows + 1,
                chain.delta_bytes + len(delta),
            )
            return row, after
    row = Row(state.cycle, state.ts_ms, full, None, len(full))
    return row, Chain(state.cycle, state.cycle, weights, statuses, 1, 0)


def rebuild(rows: Iterable[tuple[int, bytes, int | None]]) -> list[OptimizationState]:
    """Full states of ``(cycle, state, keyframe)`` rows in cycle order, the first of them
    a full row (a keyframe, or a row of the full form)."""
    states: list[OptimizationState] = []
    last: OptimizationState | None = None
    for cycle, blob, keyframe in rows:
        if keyframe is None:
            last = _full_decoder.decode(blob)
        else:
            if last is None:
                raise ValueError(f"history row {cycle} has no keyframe before it")
            delta = _delta_decoder.decode(blob)
            weights, statuses = dict(last.weights), dict(last.statuses)
            for name in delta.dropped_weights:
                weights.pop(name, None)
            for name in delta.dropped_statuses:
                statuses.pop(name, None)
            weights.update(delta.state.weights)
            statuses.update(delta.state.statuses)
            last = msgspec.structs.replace(delta.state, weights=weights, statuses=statuses)
        states.append(last)
    return states


def _changed(before: dict[str, _V], after: dict[str, _V]) -> dict[str, _V]:
    """The entries of ``after`` that ``before`` does not have or has with another value
    (-0.0 and 0.0 are told apart: the rebuilt state is the state, bit for bit)."""
    return {
        name: value
        for name, value in after.items()
        if (old := before.get(name, _MISSING)) != value
        or (value == 0 and copysign(1.0, value) != copysign(1.0, old))  # type: ignore[arg-type]
    }


_MISSING = object()


def _same_order(before: dict[str, _V], after: dict[str, _V]) -> bool:
    """Whether ``after``'s names come in the order a rebuild gives them (the names kept in
    ``before``'s order, then the new ones); a keyframe is written when they do not."""
    kept = [name for name in before if name in after]
    # The names after those are then all new: each name is in a map once.
    return list(after)[: len(kept)] == kept
