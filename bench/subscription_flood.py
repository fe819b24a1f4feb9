"""The daemon's memory and scoring latency while one subscriber floods subscriptions.

    python -m bench.subscription_flood                  # 300 000 prefixes on alerts.sock
    python -m bench.subscription_flood --subscriptions 50000 --seconds 10

Starts a real daemon in a temporary directory, takes its resident memory idle, starts a
SUB socket that subscribes to ``--subscriptions`` distinct 47-byte prefixes (and keeps
reading, so that it resends all of them on every reconnection) while an operator
switches a component off and on every half second (an alert each time: a PUB socket
takes in the subscriptions waiting only when it publishes). Memory is sampled every 50
ms for ``--seconds``; then, the flood going on, signals are scored one after another for
``--latency-seconds``. Prints the idle, peak and final memory and the scoring round
trips' median, p99 and maximum.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from alphad.protocol.client import Client
from bench.state import rss_mib
from bench.suite import free_port, percentile
from tests.daemon_process import DaemonProcess
from tests.test_metrics import scrape

# A raw SUB socket with no send limit of its own: every subscription reaches the daemon.
# Prefixes that branch at every byte cost ZeroMQ the most memory per subscription.
FLOOD = """
import random, sys, zmq
sock = zmq.Context().socket(zmq.SUB)
sock.setsockopt(zmq.SNDHWM, 0)
sock.connect(sys.argv[1])
rng = random.Random(7)
for i in range(int(sys.argv[2])):
    sock.setsockopt(zmq.SUBSCRIBE, b"status." + rng.randbytes(40))
print("subscribed", flush=True)
while True:
    sock.poll(100)  # a subscriber that reads: its socket resends everything on reconnect
"""


def flood(subscriptions: int, seconds: float, latency_seconds: float) -> dict[str, float]:
    """Idle, peak and final RSS in MiB, and score_signal's round trips in ms."""
    with tempfile.TemporaryDirectory() as root:
        port = free_port()
        daemon = DaemonProcess(Path(root), f"[metrics]\nport = {port}\n[strategies.ema]\n")
        daemon.start()
        assert daemon.process is not None
        pid = daemon.process.pid
        flooder = None
        done = threading.Event()
        peak = [0.0]

        def operate() -> None:
            with Client(daemon.admin, timeout_s=10.0) as admin:
                ticks = 0
                while not done.wait(0.05):
                    peak[0] = max(peak[0], rss_mib(pid))
                    ticks += 1
                    if ticks % 10 == 0:
                        admin.set_component("scorer", ticks % 20 == 0, "drill", "b")

        operator = threading.Thread(target=operate)
        try:
            with Client(daemon.rpc, timeout_s=10.0, retries=0) as rpc:
                for _ in range(200):
                    rpc.score_signal("ema", "BTC", "buy", 0.7)
                idle = peak[0] = rss_mib(pid)
                operator.start()
                flooder = subprocess.Popen(
                    [sys.executable, "-c", FLOOD, daemon.alerts, str(subscriptions)],
                    stdout=subprocess.PIPE,
                )
                # Memory first, without scoring: its journal of scored signals grows too.
                time.sleep(seconds)
                flooded = peak[0]
                trips: list[float] = []
                until = time.monotonic() + latency_seconds
                while time.monotonic() < until:
                    started = time.perf_counter()
                    rpc.score_signal("ema", "BTC", "buy", 0.7)
                    trips.append((time.perf_counter() - started) * 1000)
                final = rss_mib(pid)
                samples = scrape(port)
        finally:
            done.set()
            if operator.is_alive():
                operator.join()
            if flooder is not None:
                flooder.kill()
                flooder.wait()
            daemon.close()
    return {
        "idle_mib": idle,
        "peak_mib": flooded,
        "final_mib": final,
        "scored": len(trips),
        "p50_ms": percentile(trips, 50),
        "p99_ms": percentile(trips, 99),
        "max_ms": max(trips),
        # (absent where subscriptions are not capped)
        "cut": sum(v for _, v in samples.get("alphad_alert_subscribers_disconnected_total", [])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=300_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="of flood alone")
    parser.add_argument("--latency-seconds", type=float, default=5.0, help="of scoring")
    args = parser.parse_args(argv)
    result = flood(args.subscriptions, args.seconds, args.latency_seconds)
    print(
        f"{args.subscriptions} subscriptions: RSS idle {result['idle_mib']:.0f} MiB, "
        f"peak over {args.seconds:.0f} s of flood {result['peak_mib']:.0f} MiB, "
        f"after {args.latency_seconds:.0f} s more with scoring {result['final_mib']:.0f} MiB; "
        f"score_signal during the flood ({result['scored']:.0f} calls) "
        f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, "
        f"max {result['max_ms']:.1f} ms; the flooder disconnected {result['cut']:.0f} times"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
