"""The peers: simple risk rules other trading software ships, on the same trades.

Each peer runs per strategy, in bar time, on the trades of that strategy in order of
entry: before a trade it says take or skip, and it learns only from the trades it took
(as the software learns only from its own closed trades). Taken trades are at size 1,
so a peer's exposure is the share of the trades it took. A trade closes before any
trade entered on the same bar is judged, as in the replay.

- **freqtrade protections** (freqtrade/plugins/protections, docs/includes/protections.md):
  the example settings of its documentation, the only ones given in candles, each
  evaluated when a trade closes and locking the strategy's entries; freqtrade rounds a
  lock's end up to the next candle, so a lock of N candles from a trade that closed at
  the open of bar c refuses entries on bars c to c + N, and a lock of M minutes those
  on bars c to c + ⌊M / bar minutes⌋.
  * `StoplossGuard` (lookback 24 candles, trade_limit 4, stop 4 candles,
    required_profit 0): 4 stop-losses with a loss among the trades closed in the last
    24 candles lock it. These strategies exit on their own signals, not on stops: every
    losing trade counts as a stop-loss.
  * `LowProfitPairs` (lookback 6 candles, trade_limit 2, stop 60 minutes,
    required_profit 0.02): at least 2 trades closed in the last 6 candles whose profit
    ratios sum below 0.02.
  * `CooldownPeriod` (stop 2 candles): after every close.
  * `freqtrade_all`: the three together, each judging the same taken trades.
- **drawdown kill switch** at 10, 20, 30 and 50 %: the strategy's equity is a capital
  of 100 plus the cumulative pnl of the trades it took (pnl is in percent of a
  notional of 100, not compounded); once equity is that share below its running peak
  after a close, the strategy takes no further trade, ever. The trade that breaches is
  taken (it had already closed).
- **bbgo circuit breaker** (pkg/risk/circuitbreaker/basic.go, `NewBasicCircuitBreaker`
  defaults): 8 consecutive losing trades halt the strategy for 1 hour, counted in bars
  like freqtrade's minutes (halted while now ≤ halt + 1 h: the bar of the halt and the
  next ⌊60 / bar minutes⌋ bars); when the halt ends the counters reset. Its other
  limits are off by default, and `maximumHaltTimes` 3 only matters with the panic
  option, off by default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from bench.markets.strategies import NOTIONAL, Trade

CAPITAL = 100.0
KILL_LEVELS = (0.10, 0.20, 0.30, 0.50)


class Guard:
    """A rule that says, before each trade of one strategy, whether to take it."""

    def allows(self, entry_bar: int) -> bool:
        raise NotImplementedError

    def closed(self, trade: Trade) -> None:
        """A trade it took has closed (at the open of ``trade.exit_bar``)."""
        raise NotImplementedError


@dataclass
class _Lock:
    until_bar: int = 0  # entries on bars before it are refused

    def extend(self, until_bar: int) -> None:
        self.until_bar = max(self.until_bar, until_bar)


def _ratio(trade: Trade) -> float:
    """freqtrade's close_profit: the trade's profit as a ratio of its stake."""
    return trade.row.pnl / NOTIONAL


@dataclass
class StoplossGuard(Guard):
    lookback_candles: int = 24
    trade_limit: int = 4
    stop_candles: int = 4
    required_profit: float = 0.0
    taken: list[Trade] = field(default_factory=list)
    lock: _Lock = field(default_factory=_Lock)

    def allows(self, entry_bar: int) -> bool:
        return entry_bar >= self.lock.until_bar

    def closed(self, trade: Trade) -> None:
        self.taken.append(trade)
        now = trade.exit_bar
        stops = [
            t
            for t in self.taken
            if t.exit_bar > now - self.lookback_candles
            and _ratio(t)
            and _ratio(t) < self.required_profit
        ]
        if len(stops) >= self.trade_limit:
            self.lock.extend(max(t.exit_bar for t in stops) + self.stop_candles + 1)


@dataclass
class LowProfitPairs(Guard):
    bar_minutes: int
    lookback_candles: int = 6
    trade_limit: int = 2
    stop_minutes: int = 60
    required_profit: float = 0.02
    taken: list[Trade] = field(default_factory=list)
    lock: _Lock = field(default_factory=_Lock)

    def allows(self, entry_bar: int) -> bool:
        return entry_bar >= self.lock.until_bar

    def closed(self, trade: Trade) -> None:
        self.taken.append(trade)
        now = trade.exit_bar
        recent = [t for t in self.taken if t.exit_bar > now - self.lookback_candles]
        if len(recent) < self.trade_limit:
            return
        if sum(_ratio(t) for t in recent) < self.required_profit:
            last = max(t.exit_bar for t in recent)
            self.lock.extend(last + self.stop_minutes // self.bar_minutes + 1)


@dataclass
class CooldownPeriod(Guard):
    stop_candles: int = 2
    lock: _Lock = field(default_factory=_Lock)

    def allows(self, entry_bar: int) -> bool:
        return entry_bar >= self.lock.until_bar

    def closed(self, trade: Trade) -> None:
        self.lock.extend(trade.exit_bar + self.stop_candles + 1)


@dataclass
class AllOf(Guard):
    guards: list[Guard]

    def allows(self, entry_bar: int) -> bool:
        return all(g.allows(entry_bar) for g in self.guards)

    def closed(self, trade: Trade) -> None:
        for g in self.guards:
            g.closed(trade)


@dataclass
class DrawdownKill(Guard):
    level: float
    equity: float = CAPITAL
    peak: float = CAPITAL
    killed: bool = False

    def allows(self, entry_bar: int) -> bool:
        return not self.killed

    def closed(self, trade: Trade) -> None:
        self.equity += trade.row.pnl
        self.peak = max(self.peak, self.equity)
        if (self.peak - self.equity) / self.peak >= self.level:
            self.killed = True


@dataclass
class CircuitBreaker(Guard):
    bar_minutes: int
    max_consecutive_losses: int = 8
    halt_minutes: int = 60
    losses: int = 0
    halted_through: int = -1  # the last bar on which entries are halted

    def allows(self, entry_bar: int) -> bool:
        return entry_bar > self.halted_through

    def closed(self, trade: Trade) -> None:
        if trade.row.pnl < 0:
            self.losses += 1
        else:
            self.losses = 0
        if self.losses >= self.max_consecutive_losses:
            self.halted_through = trade.exit_bar + self.halt_minutes // self.bar_minutes
            # The halt's expiry resets the counters; no trade is taken before then.
            self.losses = 0


def peer_factories(bar_minutes: int) -> dict[str, Callable[[], Guard]]:
    """Every peer by name, each a fresh guard per strategy."""
    factories: dict[str, Callable[[], Guard]] = {
        "freqtrade_stoploss_guard": StoplossGuard,
        "freqtrade_low_profit_pairs": lambda: LowProfitPairs(bar_minutes),
        "freqtrade_cooldown_period": CooldownPeriod,
        "freqtrade_all": lambda: AllOf(
            [StoplossGuard(), LowProfitPairs(bar_minutes), CooldownPeriod()]
        ),
    }
    for level in KILL_LEVELS:
        factories[f"drawdown_kill_{round(level * 100)}"] = partial(DrawdownKill, level)
    factories["bbgo_circuit_breaker"] = lambda: CircuitBreaker(bar_minutes)
    return factories


PEERS = tuple(peer_factories(60))


def taken_by(trades: Sequence[Trade], make: Callable[[], Guard]) -> list[bool]:
    """Which trades a peer takes: each strategy's trades in order of entry, through a
    guard of its own. ``trades`` may mix strategies; the answer is in their order."""
    guards: dict[str, Guard] = {}
    order = sorted(range(len(trades)), key=lambda i: (trades[i].entry_bar, i))
    # Closes are applied lazily: a strategy's taken trade has closed by the time its
    # next trade is judged (one position at a time), at or before that trade's entry.
    pending: dict[str, Trade] = {}
    taken = [False] * len(trades)
    for i in order:
        trade = trades[i]
        strategy = trade.row.strategy
        guard = guards.get(strategy)
        if guard is None:
            guard = guards[strategy] = make()
        previous = pending.pop(strategy, None)
        if previous is not None:
            if previous.exit_bar > trade.entry_bar:
                raise ValueError(f"{strategy}: two positions open at bar {trade.entry_bar}")
            guard.closed(previous)
        if guard.allows(trade.entry_bar):
            taken[i] = True
            pending[strategy] = trade
    return taken
