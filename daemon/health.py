"""``alphad health``: each strategy's lifecycle status and, with ``[lifecycle]
per_regime``, its status in each regime it traded in, from ``get_health``
(docs/operations.md). The names asked for are checked here, before the daemon is asked,
so that a typo is one line, not a wire error."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from alphad.daemon.config import NAME_RULE, is_name
from alphad.daemon.report import health_tables, render_tables
from alphad.protocol.messages import HealthRow


def name_problem(what: str, name: str | None) -> str:
    """Why ``name`` cannot name a strategy or a regime (``what``); empty when it can."""
    if name is None or is_name(name):
        return ""
    return f"{name!r} is not a {what} name: a {what} is {NAME_RULE}"


def in_regime(
    rows: Sequence[HealthRow], regime: str, strategy: str | None = None
) -> list[HealthRow]:
    """The strategies that have a state in ``regime``, each with that state alone;
    ``ValueError`` (one line) when none has (of the rows of ``strategy``, when given): a
    misspelt regime must not read as one where every strategy is active."""
    kept = [
        msgspec.structs.replace(row, regimes=[r for r in row.regimes if r.regime == regime])
        for row in rows
    ]
    kept = [row for row in kept if row.regimes]
    if kept:
        return kept
    held = ", ".join(sorted({r.regime for row in rows for r in row.regimes}))
    off = "[lifecycle] per_regime is off, or nothing has been judged in a regime yet"
    if strategy is None:
        hint = f"the regimes with states: {held}" if held else f"none has one anywhere: {off}"
        raise ValueError(f"no strategy has a state in regime {regime!r} ({hint})")
    hint = f"it has states in: {held}" if held else f"it has none anywhere: {off}"
    raise ValueError(f"{strategy!r} has no state in regime {regime!r} ({hint})")


def render_health(rows: Sequence[HealthRow], regime: str | None, now_ms: int | None = None) -> str:
    """The strategies' states and their states in each regime (only the regime's with
    ``regime``), as ``alphad report`` shows them; times in UTC with their age."""
    tables = health_tables(rows)
    if regime is not None:
        del tables["health"]
    return "\n".join(render_tables(tables, now_ms)).removesuffix("\n")
