"""The engine takes on a strategy at its first recorded trade, in the gateway's callback
(``EngineInline.register``), also while a change of weights or statuses awaits its
journal: a change undone puts back the models as they were before it, and the strategy
taken on meanwhile with them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from alphad.actors.base import Actor, Handle
from alphad.actors.engine import EngineActor
from alphad.actors.performance_actor import PerformanceActor
from alphad.actors.scorer import ScorerActor
from alphad.actors.store import StoreActor
from alphad.daemon.alerts import AlertPublisher
from alphad.daemon.config import Config, build_models
from alphad.daemon.supervisor import Supervisor
from alphad.protocol.messages import GetHealth, GetWeights, StatusReply


def engine_of(
    tmp_path: Path, context: zmq.Context[Any], **engine: Any
) -> tuple[EngineActor, list[Actor]]:
    """The engine (``engine``: its arguments other than these), and the actors it asks
    (to start for a test that runs them)."""
    config = msgspec.convert({"strategies": {"core": {"base_weight": 1.5}}}, Config)
    models = build_models(config, id_prefix="registration")
    store = StoreActor(tmp_path / "alphad.db", synchronous="OFF")
    alerts = AlertPublisher(context, f"ipc://{tmp_path}/alerts.sock", hwm=10, mailbox_size=8)
    performance = PerformanceActor(models.performance)
    scorer = ScorerActor(models.scorer, Handle(store))
    arguments: dict[str, Any] = {
        "update_interval_s": 0,
        "clock": lambda: 1_732_000_000_000,
        **engine,
    }
    engine_actor = EngineActor(
        performance=Handle(performance),
        optimizer=models.optimizer,
        scorer=Handle(scorer),
        store=Handle(store),
        alerts=Handle(alerts),
        snapshot_interval_s=3600,
        snapshot_every_trades=10**9,
        status=lambda: StatusReply(
            version="t", uptime_s=0.0, trades=0, strategies=0, cycle=0, components={}
        ),
        **arguments,
    )
    return engine_actor, [store, performance, scorer, alerts]


async def test_a_strategy_taken_on_while_a_change_fails_stays_taken_on(tmp_path: Path) -> None:
    context: zmq.Context[Any] = zmq.Context()
    try:
        engine, _ = engine_of(tmp_path, context)
        reads = engine.inline()

        async def failing_change() -> None:
            engine.optimizer.weighting.adaptive["core"] = 0.5  # what the change moved
            reads.register("newcomer")  # a trade answered while the change awaits
            raise OSError("disk full")

        with pytest.raises(OSError):
            await engine._all_or_nothing(failing_change())
        weights = reads.weights(GetWeights())
        assert weights.adaptive == {"core": 1.5, "newcomer": 1.0}  # the change undone
        row = reads.health(GetHealth(strategy="newcomer")).rows[0]
        assert (row.status, row.reason, row.since_ms) == (
            "active",
            "new strategy",
            1_732_000_000_000,
        )
        # Outside a change nothing is kept for a put-back.
        reads.register("later")
        assert engine.registered_meanwhile is None
        assert set(reads.weights(GetWeights()).base) == {"core", "newcomer", "later"}
    finally:
        context.term()


async def test_a_report_page_is_of_one_state_while_strategies_are_registered(
    tmp_path: Path,
) -> None:
    # A report of 3 000 strategies takes turns of the event loop; a strategy registered
    # during one of them (its first trade answered meanwhile) is on the page in every
    # table and row or in none, never in the health rows without its weights.
    context: zmq.Context[Any] = zmq.Context()
    engine, actors = engine_of(tmp_path, context)
    supervisor = Supervisor()
    try:
        for actor in [*actors, engine]:
            await supervisor.start(actor)
        for i in range(3000):
            engine.register(f"s{i:04d}")
        seen: set[bool] = set()
        for turns in range(0, 300, 3):
            name = f"a-new-{turns:03d}"
            page = asyncio.create_task(engine.report(None))
            for _ in range(turns):
                await asyncio.sleep(0)
            engine.register(name)
            report = await page
            in_weights = name in report.allocation["base"]
            in_health = any(row.strategy == name for row in report.health)
            assert in_weights == in_health, (turns, in_weights, in_health)
            seen.add(in_weights)
        assert seen == {True, False}  # registered before the page began, and during it
    finally:
        await supervisor.stop(10.0)
        context.destroy(linger=0)
