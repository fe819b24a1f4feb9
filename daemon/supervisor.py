"""Supervision: start actors in order, restart a crashed loop with backoff, stop in reverse.

Too many crashes of one actor within ``window_s`` mean something is wrong that a
restart of the loop will not fix: the supervisor then sets ``failed`` and the daemon
exits non-zero, so systemd restarts the whole process from its durable state.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from actors.base import Actor

log = structlog.get_logger("alphad.supervisor")


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
        """Stop actors in reverse start order, each within the grace period."""
        for actor in reversed(self.actors):
            task = self.tasks.get(actor.name)
            actor.request_stop()
            if task is not None and not task.done():
                try:
                    await asyncio.wait_for(asyncio.shield(task), grace_s)
                except TimeoutError:
                    log.warning("actor_stop_timeout", actor=actor.name)
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                except Exception as exc:
                    log.error("actor_stop_failed", actor=actor.name, error=str(exc))
            actor.fail_pending()
            try:
                await actor.on_stop()
            except Exception as exc:
                log.error("actor_on_stop_failed", actor=actor.name, error=str(exc))
            actor.state = "stopped"

    def states(self) -> dict[str, str]:
        """Each actor's state, for ``get_status``."""
        return {actor.name: actor.state for actor in self.actors}
