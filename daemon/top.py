"""``alphad top``: a live terminal view of a running daemon, for an operator on call.

Refreshes about once a second from ``get_report`` and ``get_status``, and shows alerts
as they arrive. Keys: ``s`` cycles the sort column, ``r`` reverses it, ``q`` quits.
Made for an 80×24 terminal over ssh; when the daemon does not answer it says so and
keeps trying.
"""

from __future__ import annotations

import contextlib
import math
import select
import sys
import termios
import threading
import time
import tty
from collections import deque
from collections.abc import Iterator
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from alphad.daemon.report import alert_change, alert_subject, shown
from alphad.protocol.client import Client, Subscriber
from alphad.protocol.curve import CurveKeys, CurveRefused
from alphad.protocol.errors import AlphadError
from alphad.protocol.messages import Alert, HealthRow, Report, StatusReply
from alphad.protocol.pages import merge_report

STATUS_STYLE = {"active": "green", "degraded": "yellow", "suspended": "red", "retired": "dim"}
SORT_KEYS = ("strategy", "status", "effective", "trades", "expectancy", "win_rate", "drawdown")
SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 12) -> str:
    """Recent pnls as bars; the height is relative to the largest |pnl| shown."""
    values = values[-width:]
    if not values:
        return ""
    top = max(abs(v) for v in values) or 1.0
    return "".join(SPARK[min(7, int((v / top + 1) / 2 * 7.999))] for v in values)


def _num(value: Any, digits: int = 2) -> str:
    """Short numbers for narrow columns: 1.90, 22.4, -1.81, 358, 1.2k."""
    if value is None:
        return "-"
    number = float(value)
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    size = abs(number)
    if size >= 1e4:
        for unit, scale in (("M", 1e6), ("k", 1e3)):
            if size >= scale:
                return (
                    f"{number / scale:.0f}{unit}"
                    if size >= 10 * scale
                    else f"{number / scale:.1f}{unit}"
                )
    if size >= 100:
        return f"{number:.0f}"
    if size >= 10:
        return f"{number:.1f}"
    return f"{number:.{digits}f}"


class TopView:
    """The state of the screen: last report, rates, alerts, sort order."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.report: Report | None = None
        self.status: StatusReply | None = None
        # When the last status was read and its request count; the requests this view
        # made since (the report's pages after it), which the rate leaves out.
        self.previous: tuple[float, int] | None = None
        self.own_requests = 0
        self.rate: float | None = None  # None: not known yet (first refresh, a failure)
        self.latency_ms: float | None = None
        self.error: str | None = None
        self.alerts: deque[tuple[str, Alert]] = deque(maxlen=50)
        self.sort = 0
        self.reverse = False

    def refresh(self, client: Client) -> None:
        started = time.perf_counter()
        try:
            status = client.get_status(timeout_s=1.0)
            self.latency_ms = (time.perf_counter() - started) * 1000
            pages = [client.get_report(timeout_s=2.0)]  # every page: it sorts them all
            while pages[-1].next is not None:
                pages.append(client.get_report(after=pages[-1].next, timeout_s=2.0))
        except CurveRefused as exc:
            self.error = f"{exc.message}; retrying"
            self.previous = None  # its own requests unknown: no rate from this one
            return
        except AlphadError as exc:
            self.previous = None
            self.error = (
                f"alphad is not answering at {self.endpoint}; retrying"
                if exc.code == "timeout"
                else f"{exc.code}: {exc.message}"
            )
            return
        now = time.monotonic()
        self.rate = None
        if self.previous is not None and now > self.previous[0]:
            # The count includes the status request that read it; one that went back is
            # a restarted daemon's.
            others = status.requests - self.previous[1] - self.own_requests - 1
            if others >= 0:
                self.rate = others / (now - self.previous[0])
        self.previous = (now, status.requests)
        self.own_requests = len(pages)
        self.report = merge_report(pages)
        self.status = status
        self.error = None

    def rows(self) -> list[dict[str, Any]]:
        report = self.report
        if report is None:
            return []
        health = {h.strategy: h for h in report.health}
        allocation = report.allocation
        rows = []
        for entry in report.strategies:
            name = entry["strategy"]
            recent = entry.get("recent") or {}
            rows.append(
                {
                    "strategy": name,
                    "status": status_of(health.get(name)),
                    "base": allocation.get("base", {}).get(name),
                    "adaptive": allocation.get("adaptive", {}).get(name),
                    "effective": allocation.get("effective", {}).get(name),
                    "trades": recent.get("trades"),
                    "expectancy": recent.get("expectancy"),
                    "win_rate": recent.get("win_rate"),
                    "profit_factor": shown(recent, "profit_factor"),
                    "drawdown": recent.get("max_drawdown"),
                    "pnls": entry.get("recent_pnls", []),
                }
            )
        key = SORT_KEYS[self.sort]
        rows.sort(
            key=lambda r: (r[key] is None, r[key] if r[key] is not None else 0),
            reverse=self.reverse,
        )
        return rows

    def render(self, height: int) -> Group:
        parts: list[Any] = []
        status = self.status
        head = Text("alphad top", style="bold")
        if status is not None:
            on = " ".join(f"{k}:{'on' if v else 'OFF'}" for k, v in sorted(status.enabled.items()))
            head.append(
                f"  up {status.uptime_s:.0f}s  trades {status.trades}  cycle {status.cycle}  {on}"
            )
        parts.append(head)
        if self.error is not None:
            parts.append(Text(self.error, style="bold red"))
        if status is not None:
            boxes = " ".join(f"{k}={v}" for k, v in sorted(status.mailboxes.items()) if v)
            latency = f"{self.latency_ms:.1f}ms" if self.latency_ms is not None else "-"
            parts.append(
                Text(
                    f"req/s {'-' if self.rate is None else f'{self.rate:,.0f}'}  "
                    f"errors {status.errors}  rpc latency {latency}"
                    f"  mailboxes {boxes or 'empty'}"
                )
            )
        table = Table(
            box=None,
            pad_edge=False,
            header_style="bold",
            expand=False,
            padding=(0, 1),
            collapse_padding=True,
        )
        for column, justify in (
            ("strategy", "left"),
            ("status", "left"),
            ("base", "right"),
            ("adapt", "right"),
            ("eff", "right"),
            ("n", "right"),
            ("expect", "right"),
            ("win%", "right"),
            ("pf", "right"),
            ("dd", "right"),
            ("recent pnl", "left"),
        ):
            table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        alert_lines = 4
        room = max(1, height - len(parts) - 3 - alert_lines)
        for row in self.rows()[:room]:
            table.add_row(
                row["strategy"][:14],
                Text(row["status"], style=STATUS_STYLE.get(row["status"].split()[0], "")),
                _num(row["base"]),
                _num(row["adaptive"]),
                _num(row["effective"]),
                str(row["trades"] or 0),
                _num(row["expectancy"]),
                _num((row["win_rate"] or 0) * 100, 0),
                _num(row["profit_factor"]),
                _num(row["drawdown"], 1),
                sparkline(row["pnls"], 10),
            )
        parts.append(table)
        sort = SORT_KEYS[self.sort] + (" desc" if self.reverse else "")
        parts.append(Text(f"sort: {sort}   [s]ort [r]everse [q]uit", style="dim"))
        for topic, alert in list(self.alerts)[-alert_lines:]:
            who = alert_subject(alert)
            if alert.regime is not None and alert.kind == "status":
                who += f" in {alert.regime}"
            old, new = alert_change(alert)
            parts.append(
                Text(
                    f"#{alert.seq} {topic} {who} {old}->{new} {alert.reason}"[:79],
                    style=_alert_style(topic),
                )
            )
        return Group(*parts)


def status_of(health: HealthRow | None) -> str:
    """The strategy's status, then each regime it is not active in (per_regime):
    ``active trending_high_vol:suspended``."""
    if health is None:
        return "active"
    off = [f"{r.regime}:{r.status}" for r in health.regimes if r.status != "active"]
    return " ".join([health.status, *off])


def _alert_style(topic: str) -> str:
    return STATUS_STYLE.get(topic.removeprefix("status."), "cyan")


def _listen(
    view: TopView, alerts_endpoint: str, rpc: str, curve: CurveKeys | None, stop: threading.Event
) -> None:
    while not stop.is_set():
        try:
            with (
                Client(rpc, timeout_s=1.0, retries=0, curve=curve) as client,
                Subscriber(alerts_endpoint, [""], client=client, curve=curve) as subscriber,
            ):
                for topic, alert in subscriber.iter(timeout_s=0.5, stop=stop):
                    view.alerts.append((topic, alert))
        except Exception:
            time.sleep(1.0)


@contextlib.contextmanager
def _keys() -> Iterator[bool]:
    """Single keypresses from a terminal; False when stdin is not one."""
    if not sys.stdin.isatty():
        yield False
        return
    saved = termios.tcgetattr(sys.stdin)
    try:
        tty.setcbreak(sys.stdin.fileno())
        yield True
    finally:
        termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)


def run_top(
    rpc: str, alerts: str, interval_s: float = 1.0, *, curve: CurveKeys | None = None
) -> int:
    """Run until ``q``; returns the exit code."""
    view = TopView(rpc)
    stop = threading.Event()
    listener = threading.Thread(target=_listen, args=(view, alerts, rpc, curve, stop), daemon=True)
    listener.start()
    console = Console()
    try:
        with (
            _keys() as interactive,
            Client(rpc, timeout_s=1.0, retries=0, curve=curve) as client,
            Live(console=console, screen=True, auto_refresh=False) as live,
        ):
            while True:
                view.refresh(client)
                live.update(view.render(console.size.height), refresh=True)
                deadline = time.monotonic() + interval_s
                while (wait := deadline - time.monotonic()) > 0:
                    ready = select.select([sys.stdin], [], [], wait)[0] if interactive else []
                    if not ready:
                        if not interactive:
                            time.sleep(wait)
                        break
                    key = sys.stdin.read(1)
                    if key in ("q", "Q"):
                        return 0
                    if key == "s":
                        view.sort = (view.sort + 1) % len(SORT_KEYS)
                    elif key == "r":
                        view.reverse = not view.reverse
                    live.update(view.render(console.size.height), refresh=True)
    except KeyboardInterrupt:
        return 0
    finally:
        stop.set()
