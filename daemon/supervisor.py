"""Supervision: start actors in order, restart a crashed loop with backoff, stop in reverse.

Too many crashes of one actor within ``window_s`` mean something is wrong that a
restart of the loop will not fix: the supervisor then sets ``failed`` and the daemon
exits non-zero, so systemd restarts the whole process from its durable state.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable

import structlog

from alphad.actors.base import Actor
from alphad.daemon.logs import flush_logs

log = structlog.get_logger("alphad.supervisor")

# At least this long for each actor's on_stop, even past the stop's deadline.
RELEASE_FLOOR_S = 0.2
# After the stop's deadline, how long the watchdog lets the graceful stop finish the
# steps it timed out of before ending the process; then at most DATABASE_CLOSE_S to
# close the database and LOG_FLUSH_S to write the last lines. The whole stop is thus
# within shutdown_grace_s + 3.5 s (systemd's TimeoutStopSec= must leave room for it).
OVERRUN_S = 2.0
DATABASE_CLOSE_S = 1.0
LOG_FLUSH_S = 0.5
# The exit status of a stop that overran (a second signal exits with 128 + its number).
EXIT_OVERRUN = 1


class Supervisor:
    """Runs each actor's loop as a task and keeps it running."""

    def __init__(
        self,
        *,
        max_restarts: int = 5,
        window_s: float = 60.0,
        backoff_s: float = 0.05,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.actors: list[Actor] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.crashes: dict[str, list[float]] = {}
        self.failed = asyncio.Event()
        self.failure: str | None = None

    async def start(self, actor: Actor) -> None:
        """Open the actor's resources and start its loop; in start order."""
        await actor.on_start()
        self.actors.append(actor)
        self.crashes[actor.name] = []
        self.tasks[actor.name] = asyncio.create_task(
            self._supervise(actor), name=f"actor:{actor.name}"
        )
        # Let its loop begin (its state "running") before the next start, and so before
        # READY=1: a get_status read at once showed every actor "new".
        await asyncio.sleep(0)

    async def _supervise(self, actor: Actor) -> None:
        backoff = self.backoff_s
        while True:
            try:
                await actor.run()
                actor.state = "stopped"
                return
            except asyncio.CancelledError:
                actor.state = "stopped"
                raise
            except Exception as exc:
                now = time.monotonic()
                recent = [t for t in self.crashes[actor.name] if now - t < self.window_s]
                recent.append(now)
                self.crashes[actor.name] = recent
                log.error(
                    "actor_crashed",
                    actor=actor.name,
                    error=f"{type(exc).__name__}: {exc}",
                    crashes_in_window=len(recent),
                    exc_info=exc,
                )
                if len(recent) > self.max_restarts:
                    actor.state = "failed"
                    self.failure = (
                        f"actor {actor.name} crashed {len(recent)} times in {self.window_s:.0f}s"
                    )
                    self.failed.set()
                    return
                actor.state = "restarting"
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def stop(self, grace_s: float) -> None:
        """Stop actors in reverse start order, all of them within ``grace_s``.

        One deadline for the whole stop: each actor gets what the ones before it left.
        Releasing an actor's resources (``on_stop``: the store closes the database) gets at
        least ``RELEASE_FLOOR_S`` even past the deadline, since it is what makes the exit
        clean; the ``StopWatchdog`` bounds what that may add.
        """
        deadline = time.monotonic() + grace_s
        for actor in reversed(self.actors):
            task = self.tasks.get(actor.name)
            actor.request_stop()
            if task is not None and not task.done():
                try:
                    await asyncio.wait_for(asyncio.shield(task), time_left(deadline))
                except TimeoutError:
                    log.warning("actor_stop_timeout", actor=actor.name)
                    await _cancel(task)
                except Exception as exc:
                    log.error("actor_stop_failed", actor=actor.name, error=str(exc))
            actor.fail_pending()
            try:
                await asyncio.wait_for(actor.on_stop(), max(time_left(deadline), RELEASE_FLOOR_S))
            except TimeoutError:
                log.error("actor_on_stop_timeout", actor=actor.name)
            except Exception as exc:
                log.error("actor_on_stop_failed", actor=actor.name, error=str(exc))
            actor.state = "stopped"

    def states(self) -> dict[str, str]:
        """Each actor's state, for ``get_status``."""
        return {actor.name: actor.state for actor in self.actors}


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel an actor's loop, waiting at most ``RELEASE_FLOOR_S`` for it to end.

    Once is not always enough: asyncio.wait_for (Python 3.11) swallows a cancellation
    that arrives together with the answer it waits for, and the loop then goes on to its
    next await (the engine's final snapshot, on to a stuck database).
    """
    give_up = time.monotonic() + RELEASE_FLOOR_S
    while not task.done() and time.monotonic() < give_up:
        task.cancel()
        await asyncio.wait({task}, timeout=0.02)
    if not task.done():
        log.error("actor_not_stopped", task=task.get_name())


def time_left(deadline: float) -> float:
    """Seconds until ``deadline`` (monotonic), 0 once it has passed."""
    return max(0.0, deadline - time.monotonic())


class StopWatchdog:
    """The last resort behind the graceful stop: it ends the process when the stop overruns.

    Armed when the stop begins, with the stop's deadline. A thread of its own, so it acts
    whatever the event loop is stuck in, and also when the interpreter, at exit, waits
    forever for a thread that was never told to stop. ``OVERRUN_S`` after the deadline,
    or at once on ``end_now`` (a second stop signal), it logs why, tries to close the
    database (``close_database`` waits at most the seconds it is given) and exits
    non-zero without further cleanup.

    Nothing acknowledged is lost by such an exit: a bot's trade is acknowledged only
    after its commit, and SQLite in WAL mode keeps every committed transaction across an
    abrupt end of the process (the next open replays the -wal file); a transaction still
    open is rolled back, as it was never acknowledged.
    """

    def __init__(self, close_database: Callable[[float], bool]) -> None:
        self.close_database = close_database
        self.deadline: float | None = None
        self._wake = threading.Event()
        self._reason = ""
        self._code = EXIT_OVERRUN

    def arm(self, deadline: float) -> None:
        """Start watching a stop that must be over by ``deadline`` (monotonic seconds)."""
        if self.deadline is not None:
            return
        self.deadline = deadline
        threading.Thread(target=self._watch, name="alphad-stop-watchdog", daemon=True).start()

    def end_now(self, reason: str, code: int) -> None:
        """End the process at once (the watchdog must be armed)."""
        self._reason, self._code = reason, code
        self._wake.set()

    def _watch(self) -> None:
        assert self.deadline is not None
        if not self._wake.wait(time_left(self.deadline) + OVERRUN_S):
            self._reason = f"the stop overran its deadline by {OVERRUN_S:.0f}s"
        log.error("alphad_forced_exit", reason=self._reason, exit_code=self._code)
        try:
            closed = self.close_database(DATABASE_CLOSE_S)
        except Exception as exc:
            log.error("database_not_closed", error=f"{type(exc).__name__}: {exc}")
        else:
            if not closed:
                log.error("database_not_closed", waited_s=DATABASE_CLOSE_S)
        flush_logs(LOG_FLUSH_S)
        os._exit(self._code)
