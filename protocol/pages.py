"""The pages of ``get_report`` joined into the one report they were cut from.

A page carries the status, the signal quality and the top strategies whole (the first
page's are kept) and a slice of every other table, in key order: the lists are joined,
the weight maps merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alphad.protocol.messages import Report

WEIGHTS = ("base", "adaptive", "effective", "normalized")


def merge_report(pages: Sequence[Report]) -> Report:
    """One report from its pages, in the order they were read."""
    first = pages[0]
    allocation: dict[str, Any] = {name: {} for name in WEIGHTS}
    allocation |= {"frozen": first.allocation.get("frozen", False), "regimes": {}}
    regimes: dict[str, dict[str, dict[str, float]]] = {}
    for page in pages:
        for name in WEIGHTS:
            allocation[name].update(page.allocation.get(name, {}))
        for regime, maps in page.allocation.get("regimes", {}).items():
            joined = regimes.setdefault(regime, {})
            for name, weights in maps.items():
                joined.setdefault(name, {}).update(weights)
    allocation["regimes"] = {regime: regimes[regime] for regime in sorted(regimes)}
    return Report(
        status=first.status,
        strategies=[entry for page in pages for entry in page.strategies],
        allocation=allocation,
        health=[row for page in pages for row in page.health],
        regime_effectiveness=[row for page in pages for row in page.regime_effectiveness],
        signal_quality=first.signal_quality,
        top_strategies=first.top_strategies,
        top_metric=first.top_metric,
        top_min_trades=first.top_min_trades,
        request_id=first.request_id,
    )
