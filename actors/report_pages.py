"""One page of ``get_report``, bounded like every reply however many strategies and regimes.

The report's rows are walked by key: ``(strategy,)`` holds the strategy's own rows (its
figures, its global weights, its health), ``(strategy, regime)`` its weights in that
regime's table and its regime effectiveness row; keys sort so that a strategy comes with
its regimes. A page takes the keys after the cursor until the next would pass
``PAGE_ROWS`` list rows or ``PAGE_BYTES`` (it takes at least one); the status, the signal
quality and the top strategies, a few KB, are on every page.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from alphad.actors.base import Turns
from alphad.actors.weighting_tables import WeightTable
from alphad.protocol.messages import PAGE_BYTES, PAGE_ROWS, HealthRow, Report, StatusReply

Key = tuple[str, ...]
WEIGHTS = ("base", "adaptive", "effective", "normalized")
REGIME_WEIGHTS = WEIGHTS[1:]


class ReportParts(msgspec.Struct, kw_only=True):
    """Everything a report page is cut from; ``tables`` is the performance actor's
    ``ReportTables`` answer (its strategies start after the cursor's strategy)."""

    status: StatusReply
    weights: WeightTable
    regime_weights: dict[str, WeightTable]
    frozen: bool
    health: list[HealthRow]
    tables: dict[str, Any]
    signal_quality: dict[str, Any]


async def report_page(parts: ReportParts, after: Sequence[str] | None) -> Report:
    """The page of the report after the key ``after`` (from the start when None), giving
    the event loop its turns while it cuts a page of a thousand strategies (``Turns``)."""
    cursor: Key = tuple(after or ())
    tables = parts.tables
    page = Report(
        status=parts.status,
        strategies=[],
        allocation={name: {} for name in WEIGHTS} | {"frozen": parts.frozen, "regimes": {}},
        health=[],
        regime_effectiveness=[],
        signal_quality=parts.signal_quality,
        top_strategies=tables["top_strategies"],
    )
    entries = {entry["strategy"]: entry for entry in tables["strategies"]}
    # A strategy past the last one the performance actor sent may have figures unsent.
    horizon = tables["strategies"][-1]["strategy"] if tables["more_strategies"] else None
    health = {row.strategy: row for row in parts.health}
    regime_rows: dict[Key, dict[str, Any]] = {
        (r["strategy"], r["regime"]): r for r in tables["regime_effectiveness"]
    }
    names = sorted({*parts.weights.base, *health, *entries, *(k[0] for k in regime_rows)})
    budget = PAGE_BYTES - _size(page)
    rows = size = 0
    last: Key | None = None
    turns = Turns()
    for key in _keys(names, parts.regime_weights, regime_rows, cursor):
        pieces = _pieces(key, parts, entries, health, regime_rows)
        key_rows = sum(1 for kind, _ in pieces if kind in ("strategies", "health", "regime"))
        key_size = sum(
            len(value) * (len(key[0]) + 28) if kind == "weights" else _size(value)
            for kind, value in pieces
        )
        full = last is not None and (rows + key_rows > PAGE_ROWS or size + key_size > budget)
        if full or (horizon is not None and key[0] > horizon):
            page.next = list(last) if last is not None else None
            return page
        _add(page, key, pieces)
        rows, size, last = rows + key_rows, size + key_size, key
        await turns.take()
    return page


def _keys(
    names: list[str],
    tables: dict[str, WeightTable],
    regime_rows: dict[Key, dict[str, Any]],
    cursor: Key,
) -> Iterator[Key]:
    """Every key after ``cursor``, in order, made only as far as they are taken."""
    start = bisect_right(names, cursor[0]) - 1 if cursor else 0
    rows_of: dict[str, set[str]] = {}
    for strategy, regime in regime_rows:
        rows_of.setdefault(strategy, set()).add(regime)
    for name in names[max(start, 0) :]:
        regimes = {r for r, table in tables.items() if name in table.adaptive}
        regimes.update(rows_of.get(name, ()))
        for key in ((name,), *((name, r) for r in sorted(regimes))):
            if key > cursor:
                yield key


def _pieces(
    key: Key,
    parts: ReportParts,
    entries: dict[str, dict[str, Any]],
    health: dict[str, HealthRow],
    regime_rows: dict[Key, dict[str, Any]],
) -> list[tuple[str, Any]]:
    """What the report holds under one key, as (kind, value) pairs."""
    name = key[0]
    pieces: list[tuple[str, Any]] = []
    if len(key) == 1:
        table = parts.weights
        if name in entries:
            pieces.append(("strategies", entries[name]))
        if name in table.base:
            pieces.append(("weights", {w: getattr(table, w)[name] for w in WEIGHTS}))
        if name in health:
            pieces.append(("health", health[name]))
        return pieces
    regime_table = parts.regime_weights.get(key[1])
    if regime_table is not None and name in regime_table.adaptive:
        pieces.append(("weights", {w: getattr(regime_table, w)[name] for w in REGIME_WEIGHTS}))
    if key in regime_rows:
        pieces.append(("regime", regime_rows[key]))
    return pieces


def _add(page: Report, key: Key, pieces: list[tuple[str, Any]]) -> None:
    allocation = page.allocation
    for kind, value in pieces:
        if kind == "strategies":
            page.strategies.append(value)
        elif kind == "health":
            page.health.append(value)
        elif kind == "regime":
            page.regime_effectiveness.append(value)
        else:
            maps = (
                allocation
                if len(key) == 1
                else allocation["regimes"].setdefault(key[1], {w: {} for w in REGIME_WEIGHTS})
            )
            for weight, number in value.items():
                maps[weight][key[0]] = number


# A weight in a map takes its strategy's name and a float: at most 28 bytes more in JSON
# (quotes, colon, comma, 24 characters of a float), fewer in msgpack.


def _size(value: Any) -> int:
    """Encoded bytes, in the larger of the two encodings a reply may be sent in."""
    return max(len(msgspec.msgpack.encode(value)), len(msgspec.json.encode(value)))
