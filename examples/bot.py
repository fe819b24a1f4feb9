"""A complete bot with three simulated strategies, run against a live alphad.

    ./dev example                   # against a temporary daemon of its own, stopped after
    ./dev run &                     # or: your daemon, which then journals these trades
    .venv/bin/python examples/bot.py --trades 600

Each strategy emits signals; the bot asks alphad whether to take each one and at what
size, "trades" it (a simulated pnl), reports the closed trade, runs an optimization
cycle every 50 trades, and prints alerts (status and weight changes) as they arrive.
`mean_reversion` loses its edge halfway through: watch alphad suspend it, try it again
on probation (degraded) and suspend it again.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from alphad.protocol.client import Client, Subscriber
from alphad.protocol.endpoints import default_endpoint
from alphad.protocol.errors import AlphadError

STRATEGIES = {
    # name: (edge per trade before, edge after the halfway point, symbol)
    "ema_trend": (0.25, 0.25, "BTC/USDT"),
    "breakout": (0.10, 0.10, "ETH/USDT"),
    "mean_reversion": (0.20, -0.60, "SOL/USDT"),
}
REGIMES = ("trending", "ranging", "volatile")


def print_alerts(stop: threading.Event) -> None:
    """Print every alert as it is published (the Subscriber backfills gaps by seq)."""
    with Client() as client, Subscriber(default_endpoint("alerts"), [""], client=client) as sub:
        for topic, alert in sub.iter(timeout_s=0.5, stop=stop):
            who = alert.strategy or "-"
            regime = alert.data.get("regime")
            where = f" [{regime}]" if regime else ""
            print(
                f"  ALERT #{alert.seq} {topic:<17} {who:<15}{where} "
                f"{_show(alert.old)} -> {_show(alert.new)}: {alert.reason}"
            )


def _show(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@contextlib.contextmanager
def own_daemon() -> Iterator[None]:
    """A daemon in a temporary directory for the length of the run, then stopped."""
    with tempfile.TemporaryDirectory(prefix="alphad-example-") as tmp:
        root = Path(tmp)
        config = root / "alphad.toml"
        config.write_text("[metrics]\nenabled = false\n", encoding="utf-8")
        log = open(root / "alphad.log", "wb")  # noqa: SIM115 - closed below
        command = [sys.executable, "-m", "alphad.daemon.cli", "run", "--config", str(config)]
        command += ["--state-dir", str(root / "state"), "--runtime-dir", str(root / "run")]
        daemon = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        os.environ["ALPHAD_RPC"] = f"ipc://{root / 'run' / 'rpc.sock'}"
        os.environ["ALPHAD_ALERTS"] = f"ipc://{root / 'run' / 'alerts.sock'}"
        try:
            with Client(timeout_s=30.0) as client:
                client.get_status()  # waits until the daemon has bound its sockets
            print(f"alphad started for this run (pid {daemon.pid}, in {root})")
            yield
        except AlphadError as exc:
            log.flush()
            tail = (root / "alphad.log").read_text(errors="replace")[-2000:]
            raise SystemExit(f"the example's daemon did not answer ({exc}):\n{tail}") from None
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--own-daemon",
        action="store_true",
        help="start a temporary daemon of its own and stop it at the end",
    )
    args = parser.parse_args()
    with own_daemon() if args.own_daemon else contextlib.nullcontext():
        trade(args)


def trade(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    stop = threading.Event()
    threading.Thread(target=print_alerts, args=(stop,), daemon=True).start()
    time.sleep(0.3)  # let the subscription settle before the first alert
    run_id = f"{int(time.time())}"
    pnl_with = pnl_without = 0.0
    with Client() as alphad:
        for i in range(args.trades):
            name = rng.choice(sorted(STRATEGIES))
            before, after, symbol = STRATEGIES[name]
            edge = before if i < args.trades // 2 else after
            regime = rng.choice(REGIMES)
            confidence = min(1.0, max(0.0, rng.gauss(0.7, 0.1)))
            side = rng.choice(("buy", "sell"))
            verdict = alphad.score_signal(
                strategy=name, symbol=symbol, side=side,
                confidence=confidence, confluence=rng.randint(1, 4), regime=regime,
            )  # fmt: skip
            pnl = rng.gauss(edge, 1.0) * 100  # what the trade makes at size 1.0
            pnl_without += pnl
            if verdict.execute:
                pnl_with += pnl * verdict.size_multiplier
                now = int(time.time() * 1000)
                alphad.record_trade(
                    trade_id=f"{run_id}-{i}", strategy=name, symbol=symbol, side=side,
                    pnl=pnl * verdict.size_multiplier, entry_ts_ms=now - 60_000, exit_ts_ms=now,
                    regime=regime, size=verdict.size_multiplier, signal_id=verdict.signal_id,
                )  # fmt: skip
            if (i + 1) % 50 == 0:
                try:
                    state = alphad.update_optimization()
                except AlphadError as exc:
                    if exc.code != "overloaded":
                        raise
                    # Cycles on the rpc socket are paced ([limits] optimization_interval_s).
                    time.sleep(1.0)
                    state = alphad.update_optimization()
                weights = ", ".join(f"{k}={v:.2f}" for k, v in sorted(state.weights.items()))
                statuses = ", ".join(f"{k}={v}" for k, v in sorted(state.statuses.items()))
                print(f"cycle {state.cycle}: weights {weights}; {statuses}")
        try:
            health = alphad.get_health()
        except AlphadError as exc:
            print(f"get_health failed: {exc}")
        else:
            for row in health.rows:
                print(f"{row.strategy:<15} {row.status:<10} {row.reason}")
    print(f"pnl without alphad {pnl_without:,.0f}; with alphad {pnl_with:,.0f}")
    stop.set()
    time.sleep(0.6)


if __name__ == "__main__":
    main()
