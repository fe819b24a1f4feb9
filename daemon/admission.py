"""Admission of names: caps on distinct strategies, symbols and regimes, and registration.

A misbehaving bot that invents a new symbol per request must not exhaust memory, and
with ``auto_register = false`` only configured strategies are served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from protocol.errors import AlphadError


class Admission:
    """Knows every name the daemon has accepted; refuses new ones past the caps."""

    def __init__(
        self,
        *,
        configured: Iterable[str],
        auto_register: bool,
        max_strategies: int,
        max_symbols: int,
        max_regimes: int,
        on_new_strategy: Callable[[str], None] | None = None,
    ) -> None:
        self.configured = frozenset(configured)
        self.auto_register = auto_register
        self.max_strategies = max_strategies
        self.max_symbols = max_symbols
        self.max_regimes = max_regimes
        self.strategies: set[str] = set(self.configured)
        self.symbols: set[str] = set()
        self.regimes: set[str] = set()
        self.on_new_strategy = on_new_strategy

    def learn(
        self, strategies: Iterable[str], symbols: Iterable[str], regimes: Iterable[str]
    ) -> None:
        """Accept names already in the recovered state, whatever the caps (they are history)."""
        self.strategies.update(strategies)
        self.symbols.update(symbols)
        self.regimes.update(regimes)

    def admit(self, strategy: str, symbol: str, regime: str | None) -> None:
        """Raise ``unknown_strategy`` or ``limit`` for a name the daemon must not take on."""
        if strategy not in self.strategies:
            if not self.auto_register:
                raise AlphadError(
                    "unknown_strategy",
                    f"strategy {strategy!r} is not configured and auto_register is off",
                )
            if len(self.strategies) >= self.max_strategies:
                raise AlphadError(
                    "limit",
                    f"{self.max_strategies} strategies already known (limits.max_strategies)",
                )
        if symbol not in self.symbols and len(self.symbols) >= self.max_symbols:
            raise AlphadError(
                "limit", f"{self.max_symbols} symbols already known (limits.max_symbols)"
            )
        if (
            regime is not None
            and regime not in self.regimes
            and len(self.regimes) >= self.max_regimes
        ):
            raise AlphadError(
                "limit", f"{self.max_regimes} regimes already known (limits.max_regimes)"
            )
        if strategy not in self.strategies:
            self.strategies.add(strategy)
            if self.on_new_strategy is not None:
                self.on_new_strategy(strategy)
        self.symbols.add(symbol)
        if regime is not None:
            self.regimes.add(regime)
