"""Admission of a new strategy's trades: held under the cap while the store reads them,
taken on only by one the store recorded as new (actors/admission.py)."""

from __future__ import annotations

import pytest

from alphad.actors.admission import Admission
from alphad.actors.errors import LimitReached


def admission(seen: list[str], max_strategies: int = 2) -> Admission:
    return Admission(
        configured=["core"],
        auto_register=True,
        max_strategies=max_strategies,
        max_symbols=10,
        max_regimes=10,
        on_new_strategy=seen.append,
    )


def test_a_pending_trade_holds_its_place_and_a_resend_takes_nothing_on() -> None:
    seen: list[str] = []
    names = admission(seen)
    names.admit_trade("a", "BTC", None)
    with pytest.raises(LimitReached):
        names.admit_trade("b", "BTC", None)  # "a" holds the last place
    names.settle_trade("a", recorded=False)  # a resend: nothing recorded
    assert (names.strategies, names.pending, seen) == ({"core"}, {}, [])
    names.admit_trade("b", "BTC", None)
    names.settle_trade("b", recorded=True)
    assert (names.strategies, names.pending, seen) == ({"core", "b"}, {}, ["b"])
    with pytest.raises(LimitReached):
        names.admit_trade("a", "BTC", None)


def test_two_trades_of_one_new_strategy_in_flight_take_it_on_once() -> None:
    seen: list[str] = []
    names = admission(seen, max_strategies=3)
    for _ in range(2):
        names.admit_trade("a", "BTC", None)
    assert names.pending == {"a": 2}
    names.settle_trade("a", recorded=False)
    assert names.pending == {"a": 1} and "a" not in names.strategies
    names.settle_trade("a", recorded=True)
    names.settle_trade("a", recorded=True)  # no longer pending: nothing more happens
    assert (names.strategies, names.pending, seen) == ({"core", "a"}, {}, ["a"])
