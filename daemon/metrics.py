"""Prometheus exposition: the daemon's health where operators already look.

What it shows is the trader's business (every strategy's status, weights and recent
results): it listens on loopback by default, warns when told to listen elsewhere, and
with ``[metrics] token_file`` answers only requests that carry that bearer token.

Nothing here runs on the request path. The gateway, store and engine only increment
counters or add samples; once a second a sampler in the event loop reads them (the
actors' ``stats()`` through their handles, the samples by sequence number, the
gateway's latency samples with ``take_samples``), folds them into this module's own
totals and histograms and takes a consistent copy, and every few seconds it asks the
engine for the report behind the per-strategy gauges, every page of it. The HTTP thread of
prometheus-client only reads the latest copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import math
import os
import socket
import stat
import sys
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import structlog
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import ThreadingWSGIServer

from alphad.actors.base import Actor, Handle, Turns
from alphad.actors.engine import EngineActor
from alphad.actors.engine_messages import EngineStats
from alphad.actors.events import STRICTNESS
from alphad.actors.performance_actor import PerformanceActor
from alphad.actors.scorer import ScorerActor
from alphad.actors.store import StoreActor, StoreStats
from alphad.daemon.alerts import AlertPublisher
from alphad.daemon.config import MetricsConfig
from alphad.daemon.gateway import Gateway
from alphad.daemon.logs import lines_dropped
from alphad.protocol.errors import ErrorCode
from alphad.protocol.messages import STATUSES, GetReport, HealthRow, Report
from alphad.protocol.pages import merge_report

log = structlog.get_logger("alphad.metrics")

LATENCY_BUCKETS = (50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 50e-3, 0.25, 1.0)
COMMIT_BUCKETS = (100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 0.25, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CYCLE_BUCKETS = (1e-3, 5e-3, 10e-3, 50e-3, 0.1, 0.5, 1.0, 5.0)
# The most (strategy, regime) pairs alphad_strategy_regime_status shows: strategies and
# regimes are each bounded ([limits]), their pairs only by the product (64 000 at the
# defaults). Suspended pairs come first; the ones left out are counted.
MAX_REGIME_STATUS_SERIES = 1_000
# The pages of get_report joined for the per-strategy series: far more than the
# strategies of [limits] max_strategies fill (about 200 a page), a bound all the same.
MAX_REPORT_PAGES = 1_000
# A regime never retires a strategy (actors/regime_lifecycle.py).
REGIME_STATUSES = ("active", "degraded", "suspended")


def metrics_findings(config: MetricsConfig) -> tuple[list[str], list[str]]:
    """Errors and warnings about ``[metrics]``, for `check-config` and `run` alike."""
    if not config.enabled:
        return [], []
    errors: list[str] = []
    if os.path.isabs(config.token_file):  # a relative one is refused with the paths
        try:
            read_token(config.token_file)
        except ValueError as exc:
            errors.append(f"key `metrics.token_file`: {exc}")
    try:
        address = ipaddress.ip_address(config.address)
    except ValueError:
        return [*errors, f"key `metrics.address`: {config.address!r} is not an IP address"], []
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address.is_loopback:
        return errors, []
    exposure = (
        "the token crosses the network in clear text (plain HTTP)"
        if config.token_file
        else "anyone who reaches it sees every strategy's status, weights and recent "
        "results; set [metrics] token_file or keep 127.0.0.1"
    )
    return errors, [f"[metrics] address {config.address} is not loopback: {exposure}"]


def read_token(path: str) -> str:
    """The bearer token in ``path``; ValueError (one line) when it cannot serve as one."""
    try:
        info = os.stat(path)
        with open(path, encoding="utf-8") as file:
            token = file.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"cannot read {path} ({reason})") from None
    if stat.S_IMODE(info.st_mode) & 0o007:
        raise ValueError(f"{path} is readable by other users: chmod 600 {path}")
    if len(token) < 16 or any(c.isspace() for c in token):
        raise ValueError(f"{path} must hold one token of at least 16 characters")
    return token


METRICS_CONNECTIONS = 16
"""Connections to the metrics endpoint served at once; one more is closed at once. Each
holds a thread and a descriptor: idle ones without a bound would use up the daemon's
descriptors, and libzmq aborts the process when a bot's connection finds none."""
METRICS_IDLE_S = 5.0
"""How long a metrics connection may wait for its request's next bytes."""


class _QuietHandler(WSGIRequestHandler):
    timeout = METRICS_IDLE_S  # socketserver sets it on the connection: an idle one ends

    def log_message(self, format: str, *args: Any) -> None:
        """A scrape is not worth a log line."""


def serve_metrics(config: MetricsConfig, registry: CollectorRegistry) -> None:
    """Serve ``registry`` over HTTP from a thread, behind the bearer token if one is set."""
    exposition = make_wsgi_app(registry)
    expected = f"Bearer {read_token(config.token_file)}".encode() if config.token_file else None

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        given = environ.get("HTTP_AUTHORIZATION", "").encode()
        if expected is not None and not hmac.compare_digest(given, expected):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="alphad"')],
            )
            return [b"a bearer token is required\n"]
        return exposition(environ, start_response)

    slots = threading.BoundedSemaphore(METRICS_CONNECTIONS)

    class Server(ThreadingWSGIServer):
        address_family = (
            socket.AF_INET6 if ipaddress.ip_address(config.address).version == 6 else socket.AF_INET
        )

        request_queue_size = 64  # the listen backlog: a burst is closed, not left waiting

        def process_request(self, request: Any, client_address: Any) -> None:
            if not slots.acquire(blocking=False):
                self.shutdown_request(request)  # full: closed, never queued
                return
            try:
                super().process_request(request, client_address)
            except BaseException:
                slots.release()
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                slots.release()

        def handle_error(self, request: Any, client_address: Any) -> None:
            """A connection that ends badly is a JSON line at most, never socketserver's
            traceback on stderr (an idle one, closed after METRICS_IDLE_S, printed 15)."""
            error = sys.exc_info()[1]
            if isinstance(error, OSError):  # idle, reset, cut: ordinary for an endpoint
                return
            log.warning("metrics_request_failed", error=repr(error))

    httpd = make_server(config.address, config.port, app, Server, handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True).start()


class Histogram:
    """Cumulative histogram in base units."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def exposition(self) -> tuple[list[tuple[str, float]], float]:
        cumulative = 0
        out = []
        for bound, count in zip(self.bounds, self.counts, strict=False):
            cumulative += count
            out.append((repr(bound), float(cumulative)))
        out.append(("+Inf", float(cumulative + self.counts[-1])))
        return out, self.total


class Sampler:
    """Folds the daemon's counters once a second; serves the copy to Prometheus."""

    def __init__(
        self,
        *,
        config: MetricsConfig,
        gateway: Gateway,
        store: Handle[StoreActor],
        scorer: Handle[ScorerActor],
        engine: Handle[EngineActor],
        alerts: Handle[AlertPublisher],
        performance: Handle[PerformanceActor],
        mailboxes: Iterable[Handle[Actor]],
        tag_of: Callable[[type | None], str],
    ) -> None:
        self.config = config
        self.gateway = gateway
        self.gateway_stats = gateway.stats
        self.store = store
        self.scorer = scorer
        self.engine = engine
        self.alerts = alerts
        self.performance = performance
        self.mailboxes = list(mailboxes)
        self.tag_of = tag_of
        # The sequence numbers of the last commit and cycle samples folded.
        self.commits_read = 0
        self.cycles_read = 0
        self.latency: dict[str, Histogram] = {}
        self.commit = Histogram(COMMIT_BUCKETS)
        self.batch = Histogram(BATCH_BUCKETS)
        self.cycle = Histogram(CYCLE_BUCKETS)
        self.snapshot: list[Metric] = []
        # The per-strategy series of the last report, made once per report (not at each
        # fold), a slice at a time.
        self.strategy_series: list[Metric] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._task: asyncio.Task[None] | None = None

    # Prometheus calls this from its HTTP thread: hand over the last copy, nothing else.
    def collect(self) -> list[Metric]:
        return self.snapshot

    def start(self) -> None:
        """Serve HTTP and start folding."""
        # A scrape right after the start gets the counters, not an empty page; the
        # per-strategy series follow with the first report.
        self.fold()
        serve_metrics(self.config, self.registry)
        self.gateway.time_sampled_requests()
        self._task = asyncio.create_task(self._run(), name="metrics")
        log.info("metrics_serving", address=self.config.address, port=self.config.port)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        every = max(1, round(self.config.strategy_refresh_s))
        tick = 0
        while True:
            if tick % every == 0:
                try:
                    # The report itself is not kept: a thousand strategies' worth of
                    # objects for the cyclic collector to walk until the next one.
                    self.strategy_series = await self._strategies(await self._whole_report())
                except Exception as exc:
                    log.debug("metrics_report_failed", error=str(exc))
            self.fold()
            tick += 1
            await asyncio.sleep(1.0)

    async def _whole_report(self) -> Report:
        """Every page of ``get_report`` joined: every strategy's series, not only those of
        the first page (about 200 strategies in three regimes)."""
        pages: list[Report] = []
        after: list[str] | None = None
        while True:
            page = await self.engine.ask(GetReport(after=after), timeout=10.0)
            if not isinstance(page, Report):
                raise TypeError(f"get_report answered {type(page).__name__}")
            pages.append(page)
            if page.next is None or len(pages) >= MAX_REPORT_PAGES:
                return merge_report(pages)
            after = page.next

    def fold(self) -> None:
        """Move samples into histograms and rebuild the exposed copy (in the event loop)."""
        for kind, ns in self.gateway_stats.take_samples():
            tag = self.tag_of(kind)
            histogram = self.latency.get(tag)
            if histogram is None:
                histogram = self.latency[tag] = Histogram(LATENCY_BUCKETS)
            histogram.observe(ns / 1e9)
        store, engine = self.store.stats(), self.engine.stats()
        self.commits_read, commits = store.commit_samples.since(self.commits_read)
        for seconds, size in commits:
            self.commit.observe(seconds)
            self.batch.observe(size)
        self.cycles_read, cycles = engine.cycle_samples.since(self.cycles_read)
        for seconds in cycles:
            self.cycle.observe(seconds)
        self.snapshot = self._build(store, engine)

    def _build(self, store: StoreStats, engine: EngineStats) -> list[Metric]:
        stats = self.gateway_stats
        metrics: list[Metric] = []
        requests = CounterMetricFamily(
            "alphad_requests", "Requests answered, by type and outcome (ok or error code).",
            labels=["type", "outcome"],
        )  # fmt: skip
        errors = CounterMetricFamily("alphad_errors", "Error replies by code.", labels=["code"])
        by_code: dict[ErrorCode, int] = {}
        for (kind, outcome), count in sorted(
            stats.outcomes.items(), key=lambda item: (self.tag_of(item[0][0]), item[0][1])
        ):
            requests.add_metric([self.tag_of(kind), outcome], count)
            if outcome != "ok":
                by_code[outcome] = by_code.get(outcome, 0) + count
        for code, count in sorted(by_code.items()):
            errors.add_metric([code], count)
        metrics += [requests, errors]
        dropped = CounterMetricFamily(
            "alphad_dropped_frames", "Frames without an envelope to answer."
        )
        dropped.add_metric([], stats.dropped_frames)
        metrics.append(dropped)
        undelivered = CounterMetricFamily(
            "alphad_replies_undelivered",
            "Replies given up: the peer was gone or had 1000 replies queued unread.",
        )
        undelivered.add_metric([], stats.undelivered)
        metrics.append(undelivered)
        latency = HistogramMetricFamily(
            "alphad_request_latency_seconds",
            "Receive-to-reply time of one request in 8, by type.",
            labels=["type"],
        )
        for tag, histogram in sorted(self.latency.items()):
            buckets, total = histogram.exposition()
            latency.add_metric([tag], buckets, total)
        metrics.append(latency)
        trades = CounterMetricFamily("alphad_trades_recorded", "Trades committed to the database.")
        trades.add_metric([], store.trades_committed)
        metrics.append(trades)
        for name, doc, histogram in (
            ("alphad_store_commit_seconds", "Time of one group commit.", self.commit),
            ("alphad_store_batch_trades", "Trades per group commit.", self.batch),
            ("alphad_cycle_duration_seconds", "Time of one optimization cycle.", self.cycle),
        ):
            family = HistogramMetricFamily(name, doc)
            buckets, total = histogram.exposition()
            family.add_metric([], buckets, total)
            metrics.append(family)
        storage = GaugeMetricFamily("alphad_storage_healthy", "1 while the database is writable.")
        storage.add_metric([], 1.0 if store.healthy else 0.0)
        metrics.append(storage)
        failed = CounterMetricFamily(
            "alphad_store_failed_commits",
            "Group commits the database refused; their writes were answered storage_unavailable.",
        )
        failed.add_metric([], store.failed_batches)
        metrics.append(failed)
        # Scored signals whose journal rows were given up: the scorer could not hand them to
        # a full store mailbox, or the store's backlog outgrew its bound while storage failed.
        unjournaled = CounterMetricFamily(
            "alphad_signals_not_journaled",
            "Scored signals answered but never written to the signals table.",
        )
        not_journaled = store.dropped_signals + self.scorer.stats().signals_not_kept
        unjournaled.add_metric([], not_journaled)
        metrics.append(unjournaled)
        lost = CounterMetricFamily(
            "alphad_log_lines_dropped", "Log lines not written: stdout stalled or broken."
        )
        lost.add_metric([], lines_dropped())
        metrics.append(lost)

        conflicts = CounterMetricFamily(
            "alphad_conflicts",
            "Resends of a recorded trade_id or signal outcome that differed from the record;"
            " answered conflict, nothing recorded.",
        )
        conflicts.add_metric([], store.conflicts)
        metrics.append(conflicts)
        pruned = CounterMetricFamily(
            "alphad_signals_pruned", "Journaled signals deleted by [store] signals_keep_days."
        )
        pruned.add_metric([], store.signals_pruned)
        metrics.append(pruned)
        depth = GaugeMetricFamily(
            "alphad_mailbox_depth", "Messages waiting per actor.", labels=["actor"]
        )
        for mailbox in self.mailboxes:
            depth.add_metric([mailbox.name], mailbox.depth())
        metrics.append(depth)
        full = CounterMetricFamily(
            "alphad_mailbox_full", "Messages refused by a full mailbox.", labels=["actor"]
        )
        for mailbox in self.mailboxes:
            full.add_metric([mailbox.name], mailbox.refused())
        metrics.append(full)
        alerts = self.alerts.stats()
        for name, text, count in (
            ("alerts_published", "Alerts sent on the alerts socket.", alerts.published),
            (
                "alerts_dropped",
                "Alerts not published: the alert thread was alerts_hwm alerts behind.",
                alerts.dropped,
            ),
            (
                "alert_subscriptions_refused",
                "Alert subscriptions refused by [daemon] max_alert_subscriptions.",
                alerts.subscriptions_refused,
            ),
            (
                "alert_subscribers_disconnected",
                "Alert subscriber connections shut down for going over max_alert_subscriptions.",
                alerts.subscribers_disconnected,
            ),
        ):
            counter = CounterMetricFamily(f"alphad_{name}", text)
            counter.add_metric([], count)
            metrics.append(counter)
        not_kept = CounterMetricFamily(
            "alphad_performance_groups_not_kept",
            "New strategy×symbol, symbol×regime and strategy×symbol×regime groups not kept "
            "beyond [limits] max_groups.",
        )
        not_kept.add_metric([], self.performance.stats().groups_not_kept)
        metrics.append(not_kept)
        cycle = GaugeMetricFamily("alphad_cycle", "Number of the last optimization cycle.")
        cycle.add_metric([], engine.cycle)
        metrics.append(cycle)
        enabled = GaugeMetricFamily(
            "alphad_component_enabled", "1 when the component is on.", labels=["component"]
        )
        for name, on in sorted(engine.switches.items()):
            enabled.add_metric([name], 1.0 if on else 0.0)
        metrics.append(enabled)
        metrics += self.strategy_series
        return metrics

    async def _strategies(self, report: Report) -> list[Metric]:
        """The per-strategy series of a report, giving the event loop its turns
        (``Turns``: a thousand strategies' series take milliseconds)."""
        status = GaugeMetricFamily(
            "alphad_strategy_status", "1 for the strategy's current status.",
            labels=["strategy", "status"],
        )  # fmt: skip
        turns = Turns()
        for row in report.health:
            for name in STATUSES:
                status.add_metric([row.strategy, name], 1.0 if row.status == name else 0.0)
            await turns.take()
        weight = GaugeMetricFamily(
            "alphad_strategy_weight", "Strategy weight by kind.", labels=["strategy", "kind"]
        )
        allocation = report.allocation
        for kind in ("base", "adaptive", "effective", "normalized"):
            for strategy, value in sorted(allocation.get(kind, {}).items()):
                weight.add_metric([strategy, kind], value)
                await turns.take()
        families = {
            "expectancy": "Recent-window expectancy (pnl per trade).",
            "win_rate": "Recent-window win rate.",
            "profit_factor": (
                "Recent-window profit factor (+Inf with gains and no loss; absent when undefined)."
            ),
            "max_drawdown": "Recent-window max drawdown (pnl units).",
        }
        figures: list[Metric] = []
        for key, doc in families.items():
            family = GaugeMetricFamily(f"alphad_strategy_recent_{key}", doc, labels=["strategy"])
            for entry in report.strategies:
                recent = entry.get("recent") or {}
                value = recent.get(key)
                if key == "profit_factor" and recent.get("profit_factor_infinite"):
                    value = math.inf  # the best strategies, not a gap in the dashboard
                if value is not None:
                    family.add_metric([entry["strategy"]], float(value))
                await turns.take()
            figures.append(family)
        return [status, weight, *figures, *regime_status_metrics(report.health)]


def regime_status_metrics(
    health: Sequence[HealthRow], most: int = MAX_REGIME_STATUS_SERIES
) -> list[Metric]:
    """The per-regime lifecycle ([lifecycle] per_regime) from the health rows: per regime,
    how many strategies are in each status there, and each strategy not active in a
    regime, suspended ones first, at most ``most`` of them."""
    counts: dict[str, dict[str, int]] = {}
    off: list[tuple[int, str, str, str]] = []
    for row in health:
        for there in row.regimes:
            tally = counts.setdefault(there.regime, dict.fromkeys(REGIME_STATUSES, 0))
            tally[there.status] = tally.get(there.status, 0) + 1
            if there.status != "active":  # the most severe first, then by name
                off.append((-STRICTNESS[there.status], there.regime, row.strategy, there.status))
    strategies = GaugeMetricFamily(
        "alphad_regime_strategies",
        "Strategies in each status in a regime, of those judged in it (per_regime).",
        labels=["regime", "status"],
    )
    for regime, tally in sorted(counts.items()):
        for name, count in tally.items():
            strategies.add_metric([regime, name], count)
    status = GaugeMetricFamily(
        "alphad_strategy_regime_status",
        "1 for a strategy not active in a regime, with its status there (per_regime).",
        labels=["strategy", "regime", "status"],
    )
    off.sort()
    for _, regime, strategy, name in off[:most]:
        status.add_metric([strategy, regime, name], 1.0)
    omitted = GaugeMetricFamily(
        "alphad_strategy_regime_status_omitted",
        "Strategies not active in a regime left out of alphad_strategy_regime_status"
        f" (beyond its {most} series).",
    )
    omitted.add_metric([], max(0, len(off) - most))
    return [strategies, status, omitted]
