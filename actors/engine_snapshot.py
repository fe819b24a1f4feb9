"""The state snapshot's format: the parts the engine writes and a start reads back.

A snapshot is one msgpack map with a part per stateful model, each part that model's
``to_state`` (or its actor's answer to ``TAKE_STATE``), in pieces (``msgpack_pieces``)
never copied into one buffer on the event loop. Apart from the engine's journal
(actors/engine_journal.py), which decides when to take one, because this is a format
with two sides: the engine encodes it, the daemon's recovery (daemon/recovery.py)
decodes it and refuses one without a part every snapshot has.
"""

from __future__ import annotations

from typing import Any

import msgspec

from alphad.actors.base import msgpack_pieces
from alphad.actors.optimizer import Optimizer
from alphad.actors.store import Snapshot

SNAPSHOT_PARTS = frozenset({"performance", "weighting", "lifecycle", "scorer", "engine"})
"""The parts every snapshot has; a newer one (``regime_lifecycle``) may be missing from an
older snapshot and then starts empty."""

_decoder = msgspec.msgpack.Decoder(dict[str, Any])
_encoder = msgspec.msgpack.Encoder()


def encode_snapshot(
    *,
    performance: dict[str, Any],
    scorer: dict[str, Any],
    optimizer: Optimizer,
    engine: dict[str, Any],
    ts_ms: int,
) -> Snapshot:
    """The snapshot of the performance and scorer actors' states (as they answered
    ``TAKE_STATE``), the optimizer's models and the engine's own counters."""
    # The optimizer's parts are plain data of many small maps: encoded whole here (in C,
    # the same bytes), not walked map by map in Python by ``msgpack_pieces``, which held
    # the loop for half a second with a per-regime lifecycle of 1 000 × 64.
    encode = _encoder.encode
    state = {
        "performance": performance,
        "scorer": scorer,
        "weighting": msgspec.Raw(encode(optimizer.weighting.to_state())),
        "lifecycle": msgspec.Raw(encode(optimizer.lifecycle.snapshot_state())),
        "regime_lifecycle": msgspec.Raw(encode(optimizer.regimes.snapshot_state())),
        "engine": engine,
    }
    return Snapshot(
        ts_ms=ts_ms,
        trade_seq=min(performance["last_seq"], scorer["last_trade_seq"]),
        outcome_seq=scorer["last_outcome_seq"],
        state=msgpack_pieces(state),
    )


def decode_snapshot(snapshot: Snapshot) -> dict[str, Any]:
    """The parts of a snapshot; raises on one that does not decode or lacks a part."""
    state = _decoder.decode(snapshot.encoded())
    missing = SNAPSHOT_PARTS - set(state)
    if missing:
        raise ValueError(f"the snapshot lacks {', '.join(sorted(missing))}")
    return state
