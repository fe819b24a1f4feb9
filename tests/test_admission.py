"""Admission of a new strategy's trades: held under the cap while the store reads them,
taken on only by one the store recorded as new (actors/admission.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphad.actors.admission import Admission
from alphad.actors.errors import LimitReached
from alphad.protocol.client import Client
from alphad.protocol.errors import AlphadError
from tests.daemon_process import DaemonProcess


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
    hold = names.admit_trade("a", "BTC", None)
    with pytest.raises(LimitReached):
        names.admit_trade("b", "BTC", None)  # "a" holds the last place
    names.settle_trade(hold, recorded=False)  # a resend: nothing recorded
    assert (names.strategies, names.pending, seen) == ({"core"}, {}, [])
    names.settle_trade(names.admit_trade("b", "BTC", None), recorded=True)
    assert (names.strategies, names.pending, seen) == ({"core", "b"}, {}, ["b"])
    with pytest.raises(LimitReached):
        names.admit_trade("a", "BTC", None)


def test_two_trades_of_one_new_strategy_in_flight_take_it_on_once() -> None:
    seen: list[str] = []
    names = admission(seen, max_strategies=3)
    first, second = (names.admit_trade("a", "BTC", None) for _ in range(2))
    assert names.pending == {"a": 2}
    names.settle_trade(first, recorded=False)
    assert names.pending == {"a": 1} and "a" not in names.strategies
    names.settle_trade(second, recorded=True)
    names.settle_trade(second, recorded=True)  # no longer pending: nothing more happens
    assert (names.strategies, names.pending, seen) == ({"core", "a"}, {}, ["a"])


def test_symbols_and_regimes_of_a_refused_trade_give_their_places_back() -> None:
    # A resend of a recorded trade_id under a new symbol and regime is refused as a
    # conflict: it used up max_symbols and max_regimes until a restart, and a real trade
    # in a new symbol was then refused with limit.
    names = Admission(
        configured=["core"], auto_register=True, max_strategies=5, max_symbols=2, max_regimes=2
    )
    names.settle_trade(names.admit_trade("core", "BTC", "trend"), recorded=True)
    for i in range(5):
        refused = names.admit_trade("core", f"X{i}", f"r{i}")
        with pytest.raises(LimitReached, match="max_regimes"):
            names.admit_trade("core", "BTC", "range")  # r{i} holds the last place
        names.settle_trade(refused, recorded=False)
    assert (names.symbols, names.regimes) == ({"BTC"}, {"trend"})
    assert (names.pending_symbols, names.pending_regimes) == ({}, {})
    names.settle_trade(names.admit_trade("core", "ETH", "trend"), recorded=True)
    assert names.symbols == {"BTC", "ETH"}
    with pytest.raises(LimitReached, match="max_symbols"):
        names.admit_trade("core", "SOL", None)
    # "unknown" is no regime: never held, never refused.
    names.settle_trade(names.admit_trade("core", "BTC", "unknown"), recorded=False)
    assert names.pending_regimes == {}


def test_a_name_taken_on_is_counted_once_while_more_of_its_trades_are_in_flight() -> None:
    # The first of two trades in a new symbol recorded: the symbol was known and still
    # held for the second, counted twice, and a trade in another one refused under the cap.
    seen: list[str] = []
    names = Admission(
        configured=["core"],
        auto_register=True,
        max_strategies=3,
        max_symbols=3,
        max_regimes=3,
        on_new_strategy=seen.append,
    )
    names.settle_trade(names.admit_trade("core", "BTC", "trend"), recorded=True)
    first, second = (names.admit_trade("a", "ETH", "range") for _ in range(2))
    names.settle_trade(first, recorded=True)
    assert (names.pending, names.pending_symbols, names.pending_regimes) == ({}, {}, {})
    names.settle_trade(names.admit_trade("b", "SOL", "calm"), recorded=True)
    names.settle_trade(second, recorded=False)
    assert names.symbols == {"BTC", "ETH", "SOL"} and names.regimes == {"trend", "range", "calm"}
    assert names.strategies == {"core", "a", "b"} and seen == ["a", "b"]


def test_a_trade_recorded_after_a_forget_takes_its_strategy_on_again() -> None:
    # Two trades of a new strategy in flight, the first recorded, then a forget: the
    # second, recorded after it, held no place any more and went untaken (uncounted
    # under max_strategies, never registered).
    seen: list[str] = []
    names = admission(seen, max_strategies=3)
    first, second = (names.admit_trade("y", "BTC", None) for _ in range(2))
    names.settle_trade(first, recorded=True)
    names.forget("y")
    names.settle_trade(second, recorded=True)
    assert "y" in names.strategies and seen == ["y", "y"]


def test_a_strategy_removed_from_the_config_is_not_served_after_a_restart(
    tmp_path: Path,
) -> None:
    # With auto_register off, a strategy that traded and was then removed from
    # [strategies] was served after the restart (its record made it known), at a size it
    # had never learned, and its trades recorded: only configured strategies are served.
    config = "[weighting]\nauto_register = false\n[strategies.a]\n[strategies.c]\n"
    daemon = DaemonProcess(tmp_path, config).start()
    try:
        with Client(daemon.rpc) as bot:
            for i in range(5):
                for name in ("a", "c"):
                    bot.record_trade(
                        f"{name}{i}", name, "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002
                    )
        assert daemon.stop() == 0
        daemon.config_path.write_text(
            "[metrics]\nenabled = false\n" + config.replace("[strategies.c]\n", "")
        )
        daemon.start()
        with Client(daemon.rpc, retries=0) as bot:
            assert bot.score_signal("a", "BTC", "buy", 0.8, confluence=3).execute
            with pytest.raises(AlphadError) as refused:
                bot.score_signal("c", "BTC", "buy", 0.8, confluence=3)
            assert refused.value.code == "unknown_strategy"
            assert "is not configured and auto_register is off" in refused.value.message
            # Its trades are still recorded (positions opened before it was removed close
            # after), a resend is a duplicate, and its record is kept.
            closing = ("c9", "c", "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002)
            assert bot.record_trade(*closing).duplicate is False
            again = ("c0", "c", "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002)
            assert bot.record_trade(*again).duplicate is True
            rows = bot.get_performance(["strategy"]).rows
            assert {row["strategy"]: row["trades"] for row in rows} == {"a": 5, "c": 6}
            # A strategy never configured nor recorded is refused as ever.
            with pytest.raises(AlphadError) as refused:
                bot.record_trade(
                    "n1", "new", "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002
                )
            assert refused.value.code == "unknown_strategy"
        assert daemon.stop() == 0
    finally:
        daemon.close()
