"""Wiring and serving: startup (recover, start actors, bind) → serve → graceful shutdown.

Start order is store → domain actors → alerts → engine → gateway; stop is the reverse,
all of it within one deadline (``shutdown_grace_s`` from the stop signal). READY=1 is
sent only after recovery and binding.

Each phase is a method of ``Daemon``; what a phase hands to a module of its own is
there: the models rebuilt from the database in daemon/recovery.py, the request routes
and their pages in daemon/routes.py, the socket files and their directories in
daemon/sockets.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import msgspec
import structlog
import zmq

from alphad.actors.admission import Admission
from alphad.actors.base import Actor, Handle
from alphad.actors.engine import EngineActor, wall_clock_ms
from alphad.actors.engine_messages import EngineInline, FinalSnapshot, Tick
from alphad.actors.performance_actor import PerformanceActor
from alphad.actors.scorer import FlushSignals, ScorerActor, ScorerInline
from alphad.actors.sqlite_thread import stop_and_join
from alphad.actors.store import CheckFiles, PruneSignals, StoreActor
from alphad.daemon import sdnotify
from alphad.daemon.alerts import AlertPublisher
from alphad.daemon.config import Config, Paths, build_admission
from alphad.daemon.gateway import Gateway
from alphad.daemon.metrics import Sampler
from alphad.daemon.recovery import Recovered, StartupError, recover
from alphad.daemon.routes import routes, tag_of
from alphad.daemon.security import (
    CLIENTS_REFRESH_S,
    RUNTIME_DIR_FORBIDDEN,
    STATE_DIR_FORBIDDEN,
    Curve,
    SecurityError,
    check_private_file,
    lock_directory,
    needs_curve,
    raise_open_files_limit,
    secure_directory,
)
from alphad.daemon.sockets import bind_requests, endpoints, secure_socket_dirs
from alphad.daemon.supervisor import RELEASE_FLOOR_S, StopWatchdog, Supervisor, time_left
from alphad.protocol.messages import StatusReply

log = structlog.get_logger("alphad")

VERSION = "0.1.0"
FREEZE_EVERY_S = 10.0
"""How often what survived a full collection is moved out of the collector's reach."""


def freeze_survivors() -> None:
    """A full collection, then every object that survived it out of the collector's
    later passes (``gc.freeze``).

    The state a daemon builds after its start (a thousand strategies met in its first
    hour) is walked by every full pass the collector makes, and the allocations of each
    report or cycle bring one on every few seconds: 16 – 80 ms of a stalled event loop
    each time, every bot's request with it. Frozen, the state is walked by no pass
    again, and each collection here walks only what was made since the last, a few
    milliseconds. Frozen objects are still freed when their last reference goes; only a
    reference cycle among them that becomes garbage later stays, as it would have after
    the freeze at the start.
    """
    gc.collect()
    gc.freeze()


STALLED_S = 0.5
"""How long a write may wait on the database before the status calls storage stalled
(a commit takes milliseconds; a lock is refused after [store] busy_timeout_ms, 1 s)."""


class _Parts(msgspec.Struct, kw_only=True):
    """The running daemon's actors, to start and stop, and what everything else holds of
    them: their handles and the synchronous reads the receive path makes."""

    actors: list[Actor]  # in start order
    store: Handle[StoreActor]
    performance: Handle[PerformanceActor]
    scorer: Handle[ScorerActor]
    alerts: Handle[AlertPublisher]
    engine: Handle[EngineActor]
    mailboxes: list[Handle[Actor]]  # every actor's, in start order
    scorer_inline: ScorerInline
    engine_inline: EngineInline
    admission: Admission
    curve_server: Callable[[Any], None] | None


class Daemon:
    """One running alphad: its actors, its sockets and its lifecycle."""

    def __init__(self, config: Config, paths: Paths) -> None:
        self.config = config
        self.paths = paths
        self.started = time.monotonic()
        self.stop_requested = asyncio.Event()
        self.supervisor = Supervisor(
            max_restarts=config.daemon.max_restarts, window_s=config.daemon.restart_window_s
        )
        self.context: zmq.Context[Any] | None = None
        self.gateway: Gateway | None = None
        self._lock_file: IO[str] | None = None
        self._runtime_lock: IO[str] | None = None  # released when the process ends
        self._database_lock: IO[str] | None = None  # a database linked from elsewhere
        self._timers: list[asyncio.TimerHandle] = []
        self.sampler: Sampler | None = None
        # Why the metrics endpoint is not served, when it is enabled and could not be.
        self.metrics_problem: str | None = None
        self.parts: _Parts | None = None  # once wired
        self.curve: Curve | None = None
        # The stop's one deadline (monotonic), from the first stop signal or the start of
        # the shutdown, and the watchdog that holds the process to it.
        self.stop_deadline: float | None = None
        self.watchdog = StopWatchdog(self._close_database_now)

    # ------------------------------------------------------------------ startup

    def _lock(self) -> None:
        """Make the directories the daemon's own and hold both, before the database is
        touched: a second daemon on either would replace the sockets or share the file."""
        # The database, its WAL and its shared memory are the trader's record and figures;
        # nothing the daemon creates is for other users (the sockets get their own modes).
        os.umask(0o077)
        paths = self.paths
        try:
            secure_directory(paths.state_dir, "state directory", STATE_DIR_FORBIDDEN)
            secure_directory(paths.runtime_dir, "runtime directory", RUNTIME_DIR_FORBIDDEN)
            secure_socket_dirs(paths)
            self._lock_file = lock_directory(paths.state_dir, "state directory")
            self._runtime_lock = lock_directory(paths.runtime_dir, "runtime directory")
            # A database that is a link into another directory (another daemon's state
            # directory, say) is held there too: two daemons never share one file.
            home = paths.database.resolve().parent
            if home != paths.state_dir.resolve():
                self._database_lock = lock_directory(home, "database directory")
            for suffix in ("", "-wal", "-shm"):
                check_private_file(Path(f"{paths.database}{suffix}"), "database file")
        except SecurityError as exc:
            raise StartupError(str(exc)) from None

    async def start(self) -> None:
        """Recover state, start the actors, bind the sockets, tell systemd we are ready.

        In phases, each of its own: the directories made ours and locked, the state
        recovered from the database, the actors wired and started, the sockets bound,
        the metrics and timers started; only then READY=1.
        """
        # The database thread must get the GIL back promptly after each fsync: with the
        # default 5 ms switch interval a busy event loop holds every commit hostage.
        sys.setswitchinterval(0.0001)
        old_files, open_files = raise_open_files_limit()
        if open_files != old_files:
            log.info("open_files_limit_raised", soft=old_files, now=open_files)
        self._lock()
        sdnotify.status("recovering state")
        recovered = await self._recover()
        parts = self._wire(recovered)
        for actor in parts.actors:
            await self.supervisor.start(actor)
        self._bind(parts)
        self._start_metrics(parts)
        self._start_timers(parts)
        # The recovered state lives as long as the process: keep it out of the cyclic
        # collector's full passes, which would otherwise walk all of it (tens of ms with
        # a million trades) in the middle of some bot's request. So does the state made
        # since (freeze_survivors, every FREEZE_EVERY_S).
        freeze_survivors()
        self._every(FREEZE_EVERY_S, freeze_survivors)
        shown = [_status_line(parts)]
        sdnotify.ready(shown[0])

        def show_status() -> None:
            # What `systemctl status` shows, kept up to date (it read the counts of the
            # start for as long as the daemon ran, "storage failing" never).
            line = _status_line(parts)
            if line != shown[0] and sdnotify.status(line):
                shown[0] = line

        self._every(1.0, show_status)
        log.info(
            "alphad_ready",
            version=VERSION,
            rpc=self.paths.rpc,
            admin=self.paths.admin,
            alerts=self.paths.alerts,
            alerts_json=self.paths.alerts_json,
            database=str(self.paths.database),
        )

    async def _recover(self) -> Recovered:
        """Open the database and rebuild every model from its snapshot and committed tail."""
        cfg = self.config
        store = StoreActor(
            self.paths.database,
            synchronous=cfg.store.synchronous,
            batch_max=cfg.store.batch_max,
            busy_timeout_ms=cfg.store.busy_timeout_ms,
            history_keep=cfg.store.history_keep,
            snapshots_keep=cfg.store.snapshots_keep,
            mailbox_size=cfg.daemon.mailbox_size,
        )
        self.store = store
        return await recover(
            store,
            cfg,
            self.paths.database,
            # A detected label counts as a regime seen (get_weights' notes), whatever the cap.
            on_label=lambda label: self.admission.learn((), (), (label,)),
        )

    def _wire(self, recovered: Recovered) -> _Parts:
        """The actors around the recovered models, connected to each other."""
        cfg = self.config
        mailbox = cfg.daemon.mailbox_size
        store, scorer = recovered.store, recovered.scorer
        performance = PerformanceActor(recovered.performance, mailbox)
        to_store, to_scorer, to_performance = Handle(store), Handle(scorer), Handle(performance)
        self.context = zmq.Context()
        curve_server = None
        if needs_curve(endpoints(self.paths)):
            try:
                self.curve = Curve(self.context, cfg.security)
            except SecurityError as exc:
                raise StartupError(str(exc)) from None
            curve_server = self.curve.serve
        alerts = AlertPublisher(
            self.context,
            self.paths.alerts,
            json_endpoint=self.paths.alerts_json,
            hwm=cfg.daemon.alerts_hwm,
            mailbox_size=mailbox,
            max_subscriptions=cfg.daemon.max_alert_subscriptions,
            curve=curve_server,
        )
        to_alerts = Handle(alerts)
        engine = EngineActor(
            performance=to_performance,
            optimizer=recovered.optimizer,
            scorer=to_scorer,
            store=to_store,
            alerts=to_alerts,
            update_interval_s=cfg.engine.update_interval_s,
            snapshot_interval_s=cfg.store.snapshot_interval_s,
            snapshot_every_trades=cfg.store.snapshot_every_trades,
            status=self.status,
            seen=lambda strategy: self.admission.seen(strategy),
            forgotten=lambda strategy: self.admission.forget(strategy),
            regime_seen=lambda regime: self.admission.regime_seen(regime),
            inputs_taken=lambda: scorer.market.bars_taken + scorer.model.scored,
            last_cycle_ms=recovered.last_cycle_ms,
            mailbox_size=mailbox,
        )
        to_engine = Handle(engine)
        store.subscribe(trades=[to_performance, to_scorer], outcomes=[to_scorer], commits=to_engine)

        # A strategy's first recorded trade registers it before the trade's reply.
        admission = build_admission(cfg, on_new_strategy=engine.register)
        # Counted: the strategies that traded (and the configured ones); names a snapshot
        # kept from being scored only do not use up the cap.
        model = recovered.performance
        admission.learn(model.strategies(), model.symbols(), model.regimes())
        self.admission = admission
        actors: list[Actor] = [store, performance, scorer, alerts, engine]
        self.parts = _Parts(
            actors=actors,
            store=to_store,
            performance=to_performance,
            scorer=to_scorer,
            alerts=to_alerts,
            engine=to_engine,
            mailboxes=[Handle(actor) for actor in actors],
            scorer_inline=scorer.inline(),
            engine_inline=engine.inline(),
            admission=admission,
            curve_server=curve_server,
        )
        return self.parts

    def _bind(self, parts: _Parts) -> None:
        """The request sockets, once every actor behind them runs."""
        assert self.context is not None
        request_routes = routes(
            store=parts.store,
            performance=parts.performance,
            engine=parts.engine,
            scorer=parts.scorer_inline,
            engine_reads=parts.engine_inline,
            admission=parts.admission,
            status=self.status,
            optimization_interval_s=self.config.limits.optimization_interval_s,
        )
        self.gateway = Gateway(
            self.context,
            request_routes,
            max_message_size=self.config.daemon.max_message_size,
            request_timeout_s=self.config.daemon.request_timeout_s,
        )
        try:
            bind_requests(self.gateway, self.paths, parts.curve_server)
        except zmq.ZMQError as exc:
            raise StartupError(f"cannot bind sockets in {self.paths.runtime_dir}: {exc}") from exc

    def _start_metrics(self, parts: _Parts) -> None:
        config = self.config.metrics
        if not config.enabled or self.gateway is None:
            return
        self.sampler = Sampler(
            config=config,
            gateway=self.gateway,
            store=parts.store,
            scorer=parts.scorer,
            engine=parts.engine,
            alerts=parts.alerts,
            performance=parts.performance,
            mailboxes=parts.mailboxes,
            tag_of=tag_of,
        )
        try:
            self.sampler.start()
        except OSError as exc:
            # Metrics are for watching, not trading: serve bots without them.
            log.error("metrics_not_served", port=config.port, error=str(exc))
            self.sampler = None
            reason = exc.strerror or str(exc)
            self.metrics_problem = f"not served: {config.address} port {config.port}: {reason}"

    def _start_timers(self, parts: _Parts) -> None:
        """Stop signals, the cycle and flush ticks, the journal's pruning, systemd's watchdog."""
        loop = asyncio.get_running_loop()
        # SIGHUP too: a closed terminal or a `kill -HUP` stops the daemon as SIGTERM does,
        # with its final snapshot, rather than at once by the default action.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda signum, _frame: self._on_stop_signal(loop, signum))
        engine, scorer, store = parts.engine, parts.scorer, parts.store
        self._every(1.0, lambda: _tell_quietly(engine, Tick()))
        self._every(1.0, lambda: _tell_quietly(scorer, FlushSignals()))
        self._every(1.0, lambda: _tell_quietly(store, CheckFiles()))
        self._every(1.0, sdnotify.resend_held)  # a READY=1 that met a full queue
        keep_days = self.config.store.signals_keep_days
        if keep_days is not None:
            keep_ms = round(keep_days * 86_400_000)

            def prune() -> None:
                now = wall_clock_ms()
                _tell_quietly(store, PruneSignals(before_ms=now - keep_ms, now_ms=now))

            prune()
            self._every(3600.0, prune)
        if self.curve is not None:
            curve = self.curve
            reading: list[asyncio.Future[None]] = []

            def done(future: asyncio.Future[None]) -> None:
                if not future.cancelled() and future.exception() is not None:
                    log.error("curve_clients_not_read", error=repr(future.exception()))

            def refresh_keys() -> None:
                # Listed and read in a thread (20 000 key files took the loop about
                # 100 ms); one read at a time.
                if reading and not reading[0].done():
                    return
                reading[:] = [loop.run_in_executor(None, curve.refresh)]
                reading[0].add_done_callback(done)

            self._every(CLIENTS_REFRESH_S, refresh_keys)
        watchdog = sdnotify.watchdog_interval_s()
        if watchdog:
            # Pinged from the event loop itself: a wedged loop stops the pings.
            self._every(watchdog, sdnotify.watchdog)

    def _every(self, interval_s: float, action: Callable[[], Any]) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            # Armed again first: an action that raises once must not end its timer.
            self._timers.append(loop.call_later(interval_s, fire))
            try:
                action()
            except Exception as exc:
                log.error("timer_action_failed", action=repr(action), error=repr(exc))
            if len(self._timers) > 16:
                del self._timers[:-8]

        self._timers.append(loop.call_later(interval_s, fire))

    # ------------------------------------------------------------------ serving

    def status(self) -> StatusReply:
        """The daemon's status, answered inline."""
        parts = self.parts
        assert parts is not None
        store, engine = parts.store.stats(), parts.engine.stats()
        components = self.supervisor.states()
        # The weights and the lifecycle run inside the engine: they are in its state.
        for part in ("weighting", "lifecycle"):
            components[part] = components.get("engine", "new")
        components["storage"] = "ok" if store.healthy else "failing"
        if store.writing_since is not None:
            waited = time.monotonic() - store.writing_since
            if waited >= STALLED_S:
                # Nothing is acknowledged while a write waits (a lock another program
                # holds, a slow disk): "ok" would hide it until the write fails.
                components["storage"] = f"stalled: a write has waited {waited:.1f} s"
        if self.config.metrics.enabled:
            components["metrics"] = self.metrics_problem or "ok"
        return StatusReply(
            version=VERSION,
            uptime_s=round(time.monotonic() - self.started, 3),
            trades=store.trades_committed,
            strategies=len(self.admission.strategies),
            cycle=engine.cycle,
            components=components,
            enabled=engine.switches,
            switched_ms=engine.switched_ms,
            requests=self.gateway.stats.requests if self.gateway is not None else 0,
            errors=self.gateway.stats.errors if self.gateway is not None else 0,
            mailboxes={mailbox.name: mailbox.depth() for mailbox in parts.mailboxes},
            audit_seq=store.audit_seq,
        )

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT or an unrecoverable actor failure."""
        try:
            await self.start()
        except BaseException:
            await self._abandon_start()
            raise
        stop = asyncio.create_task(self.stop_requested.wait())
        failed = asyncio.create_task(self.supervisor.failed.wait())
        await asyncio.wait({stop, failed}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        failed.cancel()
        code = 1 if self.supervisor.failed.is_set() else 0
        if code:
            log.error("alphad_failing", reason=self.supervisor.failure)
        await self.shutdown(final_snapshot=not code)
        return code

    def _on_stop_signal(self, loop: asyncio.AbstractEventLoop, signum: int) -> None:
        # A handler of the signal module, not loop.add_signal_handler: it runs in the main
        # thread even while the event loop is stuck, so a second signal always ends the
        # process. It only starts things: the stop itself runs in the loop.
        if self.stop_deadline is None:
            self._begin_stop()
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self.stop_requested.set)
        else:
            name = signal.Signals(signum).name
            self.watchdog.end_now(f"a second {name} during the stop", 128 + signum)

    def _begin_stop(self) -> float:
        """The stop's deadline, set and watched from the first call on."""
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + self.config.daemon.shutdown_grace_s
            self.watchdog.arm(self.stop_deadline)
        return self.stop_deadline

    def _close_database_now(self, timeout_s: float) -> bool:
        """From the watchdog's thread: let the database thread close the connection after
        the work already queued to it, and wait up to ``timeout_s`` for that."""
        store = getattr(self, "store", None)
        db = store.db if store is not None else None
        if db is None:
            return True
        return stop_and_join(db, timeout_s)

    async def _release_database(self, deadline: float) -> None:
        # The store's on_stop did not get to close the connection (it overran the deadline):
        # still have the database thread close it and end, after the work queued to it.
        # The interpreter waits for that thread at exit; the watchdog bounds the wait.
        store = getattr(self, "store", None)
        if store is None or store.db is None:
            return
        closed = store.db.stop()
        if closed is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.shield(closed), max(time_left(deadline), RELEASE_FLOOR_S)
                )

    async def _abandon_start(self) -> None:
        """Release what a failed start opened, so the process can exit with its error."""
        deadline = self._begin_stop()
        try:
            if self.gateway is not None:
                await self.gateway.close(0.1)
            await self.supervisor.stop(time_left(deadline))
            store = getattr(self, "store", None)
            if store is not None and store.db is not None:
                await asyncio.wait_for(store.on_stop(), max(time_left(deadline), RELEASE_FLOOR_S))
        finally:
            await self._release_database(deadline)
            if self.curve is not None:
                self.curve.stop()
            if self.context is not None:
                self.context.destroy(linger=0)
            if self._lock_file is not None:
                self._lock_file.close()

    async def shutdown(self, *, final_snapshot: bool = True) -> None:
        """Answer what is in flight, write the final snapshot, stop in reverse order.

        All of it within one deadline, ``shutdown_grace_s`` from the stop signal (or from
        now): each step gets what the steps before it left, and the ``StopWatchdog`` ends
        the process if the stop overruns anyway.
        """
        deadline = self._begin_stop()
        sdnotify.stopping()
        log.info("alphad_stopping", within_s=round(time_left(deadline), 3))
        # A STOPPING=1 that met a full queue goes again while the stop lasts (the timers,
        # resend_held's among them, end here).
        resending = asyncio.get_running_loop().create_task(_resend_held_notifications())
        try:
            for timer in self._timers:
                timer.cancel()
            if self.sampler is not None:
                await self.sampler.stop()
            if self.gateway is not None:
                await self.gateway.close(time_left(deadline))
            if final_snapshot and self.parts is not None:
                try:
                    await self.parts.engine.ask(FinalSnapshot(), timeout=time_left(deadline))
                except Exception as exc:
                    log.error("final_snapshot_failed", error=str(exc) or type(exc).__name__)
            await self.supervisor.stop(time_left(deadline))
        finally:
            resending.cancel()
            await self._release_database(deadline)
            if self.curve is not None:
                self.curve.stop()
            if self.context is not None:
                self.context.term()
            if self._lock_file is not None:
                self._lock_file.close()
        log.info("alphad_stopped")


async def _resend_held_notifications() -> None:
    while True:
        await asyncio.sleep(0.25)
        sdnotify.resend_held()


def _status_line(parts: _Parts) -> str:
    """The daemon's ``STATUS=``: trades recorded, the last cycle, storage when failing."""
    store = parts.store.stats()
    line = f"serving {store.trades_committed} trades, cycle {parts.engine.stats().cycle}"
    return line if store.healthy else line + ", storage failing"


def _tell_quietly(actor: Handle[Actor], message: Any) -> None:
    with contextlib.suppress(Exception):
        actor.tell(message)
