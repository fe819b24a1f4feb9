"""The engine takes on a strategy at its first recorded trade, in the gateway's callback
(``EngineInline.register``), also while a change of weights or statuses awaits its
journal: a change undone puts back the models as they were before it, and the strategy
taken on meanwhile with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from alphad.actors.base import Handle
from alphad.actors.engine import EngineActor
from alphad.actors.performance_actor import PerformanceActor
from alphad.actors.scorer import ScorerActor
from alphad.actors.store import StoreActor
from alphad.daemon.alerts import AlertPublisher
from alphad.daemon.config import Config, build_models
from alphad.protocol.messages import GetHealth, GetWeights, StatusReply


def engine_of(tmp_path: Path, context: zmq.Context[Any]) -> EngineActor:
    config = msgspec.convert({"strategies": {"core": {"base_weight": 1.5}}}, Config)
    models = build_models(config, id_prefix="registration")
    store = StoreActor(tmp_path / "alphad.db", synchronous="OFF")
    alerts = AlertPublisher(context, f"ipc://{tmp_path}/alerts.sock", hwm=10, mailbox_size=8)
    return EngineActor(
        performance=Handle(PerformanceActor(models.performance)),
        optimizer=models.optimizer,
        scorer=Handle(ScorerActor(models.scorer, Handle(store))),
        store=Handle(store),
        alerts=Handle(alerts),
        update_interval_s=0,
        snapshot_interval_s=3600,
        snapshot_every_trades=10**9,
        status=lambda: StatusReply(
            version="t", uptime_s=0.0, trades=0, strategies=0, cycle=0, components={}
        ),
        clock=lambda: 1_732_000_000_000,
    )


async def test_a_strategy_taken_on_while_a_change_fails_stays_taken_on(tmp_path: Path) -> None:
    context: zmq.Context[Any] = zmq.Context()
    try:
        engine = engine_of(tmp_path, context)
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
