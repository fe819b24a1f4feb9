"""What the weighting model hands out and keeps: the table of weights a reader sees
(``WeightTable``, the ``weights`` reply), the record of a weight that moved
(``WeightUpdate``, journaled as an audit entry) and the weights a rollback sets back
(``WeightsBefore``).

Apart from the model (actors/weighting.py) because the optimizer, the engine, the report
and the replay read these shapes without holding a model.
"""

from __future__ import annotations

from typing import Any

import msgspec

from alphad.protocol.messages import Weights

INACTIVE = frozenset(("suspended", "retired"))
"""Statuses whose effective weight is 0."""


class WeightUpdate(msgspec.Struct, kw_only=True):
    """One weight that moved, with what drove it (journaled as an audit entry)."""

    strategy: str
    regime: str | None  # None: the global table
    old: float
    new: float
    target: float | None  # target multiplier of an update; None for a reset or rollback
    reason: str
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)


class WeightTable(msgspec.Struct, kw_only=True):
    """Weights of every strategy, globally (``regime`` None) or for one regime."""

    regime: str | None
    base: dict[str, float]
    adaptive: dict[str, float]
    effective: dict[str, float]
    normalized: dict[str, float]

    def reply(self, frozen: bool) -> Weights:
        """The ``weights`` reply showing this table."""
        return Weights(
            regime=self.regime,
            base=self.base,
            adaptive=self.adaptive,
            effective=self.effective,
            normalized=self.normalized,
            frozen=frozen,
        )


class WeightsBefore(msgspec.Struct, array_like=True):
    """The weights one change moved, as they were before it; a rollback sets them back.

    ``cycle`` is the cycle whose weights they were (after it and any operator change
    before the next cycle); None when read from a snapshot older than the history.
    Each weight is (regime or None for the global table, strategy, weight), the weight
    None where the regime had no weight of its own for the strategy.
    """

    cycle: int | None
    weights: list[tuple[str | None, str, float | None]]
