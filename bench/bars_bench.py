"""What a bar of ``market_bars`` costs the event loop, against the rule set alone.

The daemon answers ``market_bars`` in the gateway's receive callback: decoding the
request, checking the batch, running the rule set and keeping the readings all hold
the event loop. The floor is the rule set's own update on the same bars, prebuilt.
"""

from __future__ import annotations

import time

from alphad.actors.market import MarketRegimes, RegimesConfig
from alphad.actors.regimes_rules import RuleDetector
from alphad.actors.regimes_sim import simulate
from alphad.protocol.client import Client
from alphad.protocol.codec import encode, request_decoder
from alphad.protocol.messages import MarketBar, MarketBars

BATCH = 500


def bar_cost(quick: bool) -> tuple[float, float]:
    """(µs of CPU per bar through decode and the book, µs per bar of the rule set alone),
    each the best of a few passes over the same simulated bars in batches of 500."""
    count = 3_000 if quick else 20_000
    bars, _ = simulate(count, seed=7)
    payloads = [
        encode(
            MarketBars(
                symbol="BTC/USDT",
                bar_size="1d",
                bars=[
                    MarketBar(ts_ms=b.ts_ms, open=b.open, high=b.high, low=b.low, close=b.close)
                    for b in bars[start : start + BATCH]
                ],
            )
        )
        for start in range(0, count, BATCH)
    ]
    ours, floor = [], []
    for _ in range(3):
        # The simulated bars run years past today: a clock past their end keeps the
        # daemon's check of each batch's newest bar in the measured path.
        book = MarketRegimes(RegimesConfig(), clock=lambda: 2**62)
        started = time.process_time()
        for payload in payloads:
            book.add(request_decoder.decode(payload))
        ours.append((time.process_time() - started) / count * 1e6)
        detector = RuleDetector()
        started = time.process_time()
        for bar in bars:
            detector.update(bar)
        floor.append((time.process_time() - started) / count * 1e6)
    return min(ours), min(floor)


def hold_bars(endpoint: str, symbol: str) -> None:
    """Give the daemon at ``endpoint`` 1 000 daily bars of ``symbol`` (it reads regimes
    from the 65th on)."""
    bars, _ = simulate(1_000, seed=8)
    client = Client(endpoint, retries=0)
    try:
        for start in range(0, len(bars), BATCH):
            client.market_bars(
                symbol,
                "1d",
                [
                    MarketBar(ts_ms=b.ts_ms, open=b.open, high=b.high, low=b.low, close=b.close)
                    for b in bars[start : start + BATCH]
                ],
            )
    finally:
        client.close()
