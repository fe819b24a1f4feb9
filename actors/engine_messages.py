"""What the daemon sends the engine and reads of it: its tells and asks, its counters and
its synchronous reads.

Apart from the actor (actors/engine.py) because these are its interface: the daemon's
wiring, timers and metrics (daemon/app.py, daemon/metrics.py) hold these shapes, not
the engine's internals.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from alphad.actors.base import Ask, SampleReader
from alphad.protocol.messages import GetHealth, GetWeights, Health, Weights


class Tick(msgspec.Struct, frozen=True):
    """Tell: the timer fired; run a cycle or take a snapshot if one is due."""


class FinalSnapshot(Ask[None], frozen=True):
    """Ask: write a snapshot now (at shutdown)."""


class EngineStats(msgspec.Struct, frozen=True, kw_only=True):
    """The engine's counters, as ``EngineActor.stats()`` took them."""

    cycle: int  # the number of the last optimization cycle
    switches: dict[str, bool]  # which optimization components are on
    switched_ms: dict[str, int]  # when each was last switched
    cycle_samples: SampleReader[float]  # the durations of the latest cycles, seconds


class EngineInline(msgspec.Struct, frozen=True, kw_only=True):
    """The engine's synchronous calls, made in the gateway's receive callback.

    ``get_weights`` and ``get_health`` only read the optimizer's tables, which change
    only while the engine handles a message or in ``register``: on the daemon's one event
    loop a read between two awaits sees them whole, as an ask would, without the
    mailbox's wait. ``register`` takes on a strategy the admission has just counted
    (its first recorded trade), before the reply that acknowledges it: a ``get_weights``
    or ``get_health`` the bot sends next lists it.
    """

    weights: Callable[[GetWeights], Weights]
    health: Callable[[GetHealth], Health]
    register: Callable[[str], None]
