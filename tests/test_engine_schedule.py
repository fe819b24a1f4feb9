"""Scheduled cycles and timer snapshots keep their interval when the wall clock is set
back behind the last one (``Since``): counted on the monotonic clock from then on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import zmq

from alphad.actors.engine import wall_clock_ms
from alphad.actors.engine_journal import Since
from alphad.daemon.supervisor import Supervisor
from tests.test_engine_registration import engine_of

YEAR_MS = 365 * 86_400_000


async def test_cycles_go_on_when_the_wall_clock_is_behind_the_last_one(tmp_path: Path) -> None:
    # The last cycle stamped a year ahead (a snapshot made while the clock ran fast, then
    # NTP set it right; or an operator setting it back): every scheduled cycle waited
    # for the wall clock to reach that stamp, for a year, and across restarts.
    context: zmq.Context[Any] = zmq.Context()
    now_ms = time.time_ns() // 1_000_000
    engine, actors = engine_of(
        tmp_path,
        context,
        update_interval_s=0.2,
        clock=wall_clock_ms,
        last_cycle_ms=now_ms + YEAR_MS,  # the daemon's wall clock, a year behind it
    )
    supervisor = Supervisor()
    try:
        for actor in (*actors, engine):
            await supervisor.start(actor)
        samples: list[tuple[float, int]] = []
        started = time.monotonic()
        while engine.cycle < 3 and time.monotonic() - started < 30.0:
            await engine._tick()
            samples.append((time.monotonic() - started, engine.cycle))
            await asyncio.sleep(0.05)
        assert engine.cycle >= 3, samples
        # One an interval (0.2 s) after the stamp was taken, one an interval after each
        # cycle: never more than the schedule allows.
        assert all(cycle <= elapsed / 0.2 + 0.01 for elapsed, cycle in samples), samples
        assert now_ms <= engine.since_cycle.at_ms <= now_ms + 60_000  # the last one's stamp
    finally:
        await supervisor.stop(10.0)
        context.destroy(linger=0)


def test_since_counts_the_wall_clock_where_it_is_ahead() -> None:
    mark = Since(1_000, "cycle")
    assert mark.elapsed_ms(61_000) == 60_000  # a restart an hour later: the wall clock's
    assert mark.elapsed_ms(500) < 1_000  # behind: the monotonic time since the stamp


def test_a_change_put_back_keeps_the_time_since_the_last_cycle() -> None:
    # A failed cycle puts the last one's stamp back: set again, its monotonic start was
    # the moment of the failure, and with the wall clock behind, each retry came a whole
    # interval later instead of a minute.
    now_ms = 1_732_000_000_000
    mark = Since(now_ms + YEAR_MS, "cycle")
    time.sleep(0.05)
    assert mark.copy().elapsed_ms(now_ms) >= 50


def test_an_interval_below_a_millisecond_is_one_not_none(tmp_path: Path) -> None:
    # 0.0005 s passed the config (ge=0) and was truncated to 0 ms: no scheduled cycle at
    # all, where the replay, rounding it up, ran one every millisecond.
    context: zmq.Context[Any] = zmq.Context()
    try:
        intervals = {
            s: engine_of(tmp_path, context, update_interval_s=s)[0].update_interval_ms
            for s in (0, 0.0004, 0.0005, 0.0016, 3600)
        }
    finally:
        context.destroy(linger=0)
    assert intervals == {0: 0, 0.0004: 1, 0.0005: 1, 0.0016: 2, 3600: 3_600_000}
