"""Admission of names: caps on distinct strategies, symbols and regimes, and registration.

A misbehaving bot that invents a new symbol per request must not exhaust memory, and
with ``auto_register = false`` only configured strategies are served.

A strategy counts against ``max_strategies`` once it is configured or records a trade,
a symbol or a regime against ``max_symbols`` or ``max_regimes`` once a trade records it.
A name that is only scored is served (as a new strategy, symbol or regime) but neither
counted nor registered: a bot scoring signals under a thousand passing names must not
use up a cap until the next restart (which would forget them), refusing the trades of
names a restart would then take, nor leave those names in the weights and the
lifecycle. Scoring keeps nothing by symbol or regime: the pending signals it holds are
capped on their own (``[scorer] max_pending_signals``).

In the daemon a trade is admitted before the store has read it (``admit_trade``) and
its new names (strategy, symbol, regime) taken on only once the store has recorded it as
new (``settle_trade``): a resend of a trade already recorded (a lost reply's retry, after
a ``forget_strategy`` or a restart) records nothing, and so must not bring back a
strategy an operator forgot, nor may a refused one (a conflicting resend under a new
symbol) use up a place that a real trade is then refused. Until then each new name holds
its place under its cap.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import NamedTuple

from alphad.actors.errors import LimitReached, UnknownStrategy
from alphad.actors.events import UNKNOWN_REGIME


class Hold(NamedTuple):
    """The new names a trade on its way to the store holds places for (None: a name
    already counted), for ``Admission.settle_trade``."""

    strategy: str | None
    symbol: str | None
    regime: str | None


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
        # New strategies, symbols and regimes whose trades are with the store: how many
        # each, held under their caps.
        self.pending: dict[str, int] = {}
        self.pending_symbols: dict[str, int] = {}
        self.pending_regimes: dict[str, int] = {}
        # Names scored lately that never traded, newest last; as many as the cap, the
        # oldest forgotten first, none kept across a restart.
        self.scored_only: OrderedDict[str, None] = OrderedDict()
        # The same for regimes (the last max_regimes scored, never traded), so that a
        # regime a bot only scores in is still one alphad has seen (``regime_seen``).
        self.scored_regimes: OrderedDict[str, None] = OrderedDict()

    def learn(
        self, strategies: Iterable[str], symbols: Iterable[str], regimes: Iterable[str]
    ) -> None:
        """Accept names already in the recovered state, whatever the caps (they are history)."""
        self.strategies.update(strategies)
        self.symbols.update(symbols)
        self.regimes.update(regimes)

    def admit_scored(self, strategy: str, symbol: str, regime: str | None) -> None:
        """``admit`` for a signal to score: a new strategy is served but not taken on, and
        new symbols and regimes are served but not counted."""
        self._refuse_unconfigured(strategy)
        if strategy not in self.strategies:
            _remember(self.scored_only, strategy, self.max_strategies)
        if regime is not None and regime not in self.regimes:
            _remember(self.scored_regimes, regime, self.max_regimes)

    def _refuse_unconfigured(self, strategy: str) -> None:
        """With ``auto_register`` off only configured strategies are served (scored): one
        known from the recovered state but no longer in the config (an operator removed
        it) was served still, at a size it had not learned. Its trades are recorded."""
        if not self.auto_register and strategy not in self.configured:
            known = " (its record is kept)" if strategy in self.strategies else ""
            raise UnknownStrategy(
                f"strategy {strategy!r} is not configured and auto_register is off{known}",
            )

    def regime_seen(self, regime: str) -> bool:
        """Whether a trade recorded the regime, or a signal was scored in it lately."""
        return regime in self.regimes or regime in self.scored_regimes

    def seen(self, strategy: str) -> bool:
        """Whether the strategy is counted, or was scored lately."""
        return strategy in self.strategies or strategy in self.scored_only

    def forget(self, strategy: str) -> Callable[[], None]:
        """Stop counting a strategy that is not configured (``forget_strategy``); returns
        what puts it back (a forget whose journal commit failed)."""
        counted = strategy in self.strategies and strategy not in self.configured
        scored = strategy in self.scored_only
        if counted:
            self.strategies.discard(strategy)
        self.scored_only.pop(strategy, None)

        def undo() -> None:
            if counted:
                self.strategies.add(strategy)
            if scored:
                self.scored_only[strategy] = None

        return undo

    def admit(self, strategy: str, symbol: str, regime: str | None) -> None:
        """Raise ``unknown_strategy`` or ``limit`` for a name the daemon must not take on."""
        new = self._new_names(strategy, symbol, regime)
        if regime == UNKNOWN_REGIME:
            self.regimes.add(regime)  # never counted: taken as it always was
        self._take_on(new)

    def admit_trade(self, strategy: str, symbol: str, regime: str | None) -> Hold:
        """``admit`` for a trade on its way to the store: its new names are held under
        their caps (``pending``) but taken on only by ``settle_trade``."""
        hold = self._new_names(strategy, symbol, regime)
        places = (self.pending, self.pending_symbols, self.pending_regimes)
        for name, pending in zip(hold, places, strict=True):
            if name is not None:
                pending[name] = pending.get(name, 0) + 1
        if regime == UNKNOWN_REGIME:
            self.regimes.add(regime)  # never counted: taken as it always was
        return hold

    def settle_trade(self, hold: Hold, recorded: bool) -> None:
        """The store's answer to a trade ``admit_trade`` let through: ``recorded`` when it
        was a new trade (its names are taken on, as ``admit`` takes them on), not when it
        was a resend or failed (their places are given back)."""
        # A name taken on holds no place any more, whatever else of it is in flight: it
        # is counted once, as known (counted twice, a trade under the cap was refused).
        # A trade recorded takes its names on whatever held them (a forget between two of
        # a new strategy's trades in flight let the second's go untaken).
        places = (self.pending, self.pending_symbols, self.pending_regimes)
        for name, pending in zip(hold, places, strict=True):
            if name is not None:
                _release(pending, name, recorded)
        if recorded:
            self._take_on(hold)

    def _new_names(self, strategy: str, symbol: str, regime: str | None) -> Hold:
        """The names of a trade not counted yet (None: counted), once it is sure they may
        be taken on; raises ``unknown_strategy`` or ``limit``. A name held for a trade
        with the store (``pending``) counts under its cap, and may be held again."""
        new_strategy = strategy not in self.strategies
        if new_strategy and not self.auto_register:
            # One known from the record but no longer configured is still recorded: the
            # closing trades of positions opened before it was removed, a resend.
            raise UnknownStrategy(
                f"strategy {strategy!r} is not configured and auto_register is off",
            )
        if (
            new_strategy
            and strategy not in self.pending
            and len(self.strategies) + len(self.pending) >= self.max_strategies
        ):
            raise LimitReached(
                f"{self.max_strategies} strategies already known (limits.max_strategies)",
            )
        new_symbol = symbol not in self.symbols
        if (
            new_symbol
            and symbol not in self.pending_symbols
            and len(self.symbols) + len(self.pending_symbols) >= self.max_symbols
        ):
            raise LimitReached(f"{self.max_symbols} symbols already known (limits.max_symbols)")
        # ``unknown`` (a trade without a regime, or one that says so) is no regime: it is
        # never refused and never counted, however it is spelled or was learned.
        new_regime = regime is not None and regime != UNKNOWN_REGIME and regime not in self.regimes
        counted = len(self.regimes) - (UNKNOWN_REGIME in self.regimes)
        if (
            new_regime
            and regime not in self.pending_regimes
            and counted + len(self.pending_regimes) >= self.max_regimes
        ):
            raise LimitReached(f"{self.max_regimes} regimes already known (limits.max_regimes)")
        return Hold(
            strategy if new_strategy else None,
            symbol if new_symbol else None,
            regime if new_regime else None,
        )

    def _take_on(self, new: Hold) -> None:
        """Count a trade's new names (``_new_names``); a strategy is registered."""
        if new.symbol is not None:
            self.symbols.add(new.symbol)
        if new.regime is not None:
            self.regimes.add(new.regime)
            self.scored_regimes.pop(new.regime, None)
        strategy = new.strategy
        if strategy is not None and strategy not in self.strategies:
            self.strategies.add(strategy)
            self.scored_only.pop(strategy, None)
            if self.on_new_strategy is not None:
                self.on_new_strategy(strategy)


def _remember(names: OrderedDict[str, None], name: str, most: int) -> None:
    """Keep ``name`` as the newest of at most ``most`` names, forgetting the oldest."""
    if name in names:
        names.move_to_end(name)
        return
    if len(names) >= most:
        names.popitem(last=False)
    names[name] = None


def _release(pending: dict[str, int], name: str, taken: bool) -> None:
    """Give back one of ``name``'s held places, or all of them when it is ``taken`` on."""
    waiting = pending.get(name)
    if waiting is None:
        return
    if waiting > 1 and not taken:
        pending[name] = waiting - 1
    else:
        del pending[name]
