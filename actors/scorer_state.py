"""The scorer's summary and snapshot: what its counters report, and its state saved,
checked and restored.

Apart from the model because none of it is on the scoring path: the summary answers
``get_report``, the snapshot is taken a slice at a time between requests and read
once at a start. The layout, ``ScorerState``, is the snapshot format; a change to it
is a new ``STATE_VERSION``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import Meta

from alphad.actors.lifecycle_shapes import PAPER_BATCHES_KEPT
from alphad.actors.scorer_config import Factor, ScorerConfig
from alphad.actors.scorer_tallies import BUCKETS, PAPER, PaperTally, SetupKey, SetupTally, Tally

if TYPE_CHECKING:
    from alphad.actors.scorer_model import ScorerModel

NonNegative = Annotated[float, Meta(ge=0.0)]
Positive = Annotated[float, Meta(gt=0.0)]
NonNegativeInt = Annotated[int, Meta(ge=0)]
StoredSetup = tuple[str, str, str, str, NonNegativeInt]

STATE_VERSION = 3
"""2 added the records by confluence bucket, 3 the batch ends of the paper records; an
older snapshot restores without them (a paper record's outcomes so far are then judged
as one batch)."""


class ScorerState(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The snapshot layout of ``ScorerModel.to_state``, validated on load."""

    version: int
    enabled: bool
    counter: int
    statuses: dict[str, str]
    weights: dict[str, float]
    multipliers: dict[str, float]
    regime_multipliers: dict[str, dict[str, float]]
    regime_fit: dict[str, dict[str, Factor]]
    # [setup, successes, outcomes], least recently updated first
    setups: list[tuple[StoredSetup, NonNegative, Positive]]
    # [strategy, successes, outcomes], least recently updated first
    strategies: list[tuple[str, NonNegative, Positive]]
    # [strategy, confluence bucket, successes, outcomes] (version 2)
    confluence: list[tuple[str, NonNegativeInt, NonNegative, Positive]] = []
    # [signal_id, [setup, quality bucket (+ PAPER for a paper trade)]], oldest first
    pending: list[tuple[str, tuple[StoredSetup, NonNegativeInt]]]
    # strategy -> [wins, outcomes] of its paper trades since it was last suspended
    paper: dict[str, tuple[NonNegative, NonNegative]] = {}
    # regime -> strategy -> status in the regime, where not active (per_regime), and
    # [strategy, regime, wins, outcomes] of the paper trades of those suspended there
    regime_statuses: dict[str, dict[str, str]] = {}
    regime_paper: list[tuple[str, str, NonNegative, NonNegative]] = []
    # (outcomes, wins) at the end of each batch of the paper records above (version 3):
    # strategy -> ends, and [strategy, regime, ends]
    paper_ends: dict[str, list[tuple[NonNegative, NonNegative]]] = {}
    regime_paper_ends: list[tuple[str, str, list[tuple[NonNegative, NonNegative]]]] = []
    scored: int
    executed: int
    quality_sum: float
    evicted_signals: int
    bucket_scored: list[int]
    bucket_executed: list[int]
    bucket_outcomes: list[int]
    bucket_successes: list[int]


def summary_of(model: ScorerModel) -> dict[str, Any]:
    """Scored, executed, mean quality, outcomes and success rate by quality bucket."""
    buckets = []
    for i, low in enumerate(BUCKETS):
        high = BUCKETS[i + 1] if i + 1 < len(BUCKETS) else 1.0
        outcomes = model.bucket_outcomes[i]
        buckets.append(
            {
                "bucket": f"{low:.1f}-{high:.1f}",
                "scored": model.bucket_scored[i],
                "executed": model.bucket_executed[i],
                "outcomes": outcomes,
                "success_rate": model.bucket_successes[i] / outcomes if outcomes else None,
            }
        )
    outcomes = sum(model.bucket_outcomes)
    return {
        "enabled": model.enabled,
        "scored": model.scored,
        "executed": model.executed,
        "mean_quality": model.quality_sum / model.scored if model.scored else None,
        "outcomes": outcomes,
        "success_rate": sum(model.bucket_successes) / outcomes if outcomes else None,
        "pending": len(model.pending),
        "evicted": model.evicted_signals,
        "setups": len(model.setups),
        "buckets": buckets,
    }


def state_header(model: ScorerModel) -> dict[str, Any]:
    """``ScorerModel.to_state`` without its two long lists, setups and pending signals."""
    return {
        "version": STATE_VERSION,
        "enabled": model.enabled,
        "counter": model.counter,
        "statuses": dict(model.statuses),
        "weights": dict(model.weights),
        "multipliers": dict(model.multipliers),
        "regime_multipliers": {k: dict(v) for k, v in model.regime_multipliers.items()},
        # A cycle's fits, staged for the commit this snapshot is part of, are the ones a
        # restart from it must serve.
        "regime_fit": {
            k: dict(v)
            for k, v in (
                model.staged_fit[0] if model.staged_fit is not None else model.regime_fit
            ).items()
        },
        "strategies": [(s, t.successes, t.outcomes) for s, t in model.strategy_tallies.items()],
        "confluence": [
            (s, b, t.successes, t.outcomes) for (s, b), t in model.confluence_tallies.items()
        ],
        "scored": model.scored,
        "executed": model.executed,
        "quality_sum": model.quality_sum,
        "evicted_signals": model.evicted_signals,
        "bucket_scored": list(model.bucket_scored),
        "bucket_executed": list(model.bucket_executed),
        "bucket_outcomes": list(model.bucket_outcomes),
        "bucket_successes": list(model.bucket_successes),
        "paper": {s: (p.wins, p.outcomes) for s, p in model.paper.items()},
        "regime_statuses": {k: dict(v) for k, v in model.regime_statuses.items()},
        "regime_paper": [(s, r, p.wins, p.outcomes) for (s, r), p in model.regime_paper.items()],
        "paper_ends": {s: list(p.ends) for s, p in model.paper.items() if p.ends},
        "regime_paper_ends": [
            (s, r, list(p.ends)) for (s, r), p in model.regime_paper.items() if p.ends
        ],
    }


def state_pending(model: ScorerModel, signal_ids: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """The pending signals of ``ScorerModel.to_state`` among ``signal_ids``, each made
    when asked.

    A signal evicted since the ids were listed is left out, as it would be from the
    next snapshot; a signal scored since then is not among them.
    """
    pending = model.pending
    for signal_id in signal_ids:
        entry = pending.get(signal_id)
        if entry is not None:
            yield signal_id, entry


def state_setups(model: ScorerModel) -> Iterator[tuple[SetupKey, float, float]]:
    """The setups of ``ScorerModel.to_state``, each made when asked. Scoring only reads
    them; only an outcome changes them."""
    for key, tally in model.setups.items():
        yield key, tally.successes, tally.outcomes


def read_state(state: dict[str, Any]) -> ScorerState:
    """A snapshot of ``ScorerModel.to_state`` checked; ``ValueError`` if it cannot be read."""
    try:
        saved = msgspec.convert(state, ScorerState)
    except msgspec.ValidationError as exc:
        raise ValueError(f"scorer state: {exc}") from None
    if saved.version not in (1, 2, STATE_VERSION):
        raise ValueError(f"scorer state: version {saved.version}, expected {STATE_VERSION}")
    if any(len(b) != len(BUCKETS) for b in _buckets_of(saved)):
        raise ValueError(f"scorer state: quality buckets are not {len(BUCKETS)} long")
    if (
        any(row[1] > row[2] for row in (*saved.setups, *saved.strategies))
        or any(row[2] > row[3] for row in saved.confluence)
        or any(wins > outcomes for wins, outcomes in saved.paper.values())
        or any(row[2] > row[3] for row in saved.regime_paper)
        or any(wins > n for ends in _paper_ends_of(saved) for n, wins in ends)
    ):
        raise ValueError("scorer state: a record has more successes than outcomes")
    if any(entry[1] >= PAPER + len(BUCKETS) for _, entry in saved.pending):
        raise ValueError("scorer state: a pending signal has no quality bucket")
    return saved


def restore(model: ScorerModel, config: ScorerConfig, saved: ScorerState) -> None:
    """Fill a model just made from ``config`` with a checked snapshot; records beyond the
    config's current caps or windows are trimmed, newest kept."""
    model.enabled = saved.enabled
    model.counter = saved.counter
    model.set_allocation(
        saved.statuses,
        saved.weights,
        saved.multipliers,
        saved.regime_multipliers,
        saved.regime_statuses,
    )
    model.regime_fit = saved.regime_fit
    batch = model.paper_batch
    for strategy, (wins, outcomes) in saved.paper.items():
        if strategy in model.paper:
            ends = _ends_within(saved.paper_ends.get(strategy, []), outcomes)
            model.paper[strategy] = PaperTally(batch, wins, outcomes, ends)
    regime_ends = {(s, r): ends for s, r, ends in saved.regime_paper_ends}
    for strategy, regime, wins, outcomes in saved.regime_paper:
        if (strategy, regime) in model.regime_paper:
            ends = _ends_within(regime_ends.get((strategy, regime), []), outcomes)
            model.regime_paper[(strategy, regime)] = PaperTally(batch, wins, outcomes, ends)
    for key, successes, outcomes in saved.setups[-config.max_setups :]:
        tally = model.setups[key] = SetupTally(key, successes, outcomes)
        tally.shrink_to(config.setup_window)
    for strategy, successes, outcomes in saved.strategies[-config.max_strategies :]:
        overall = model.strategy_tallies[strategy] = Tally(successes, outcomes)
        overall.shrink_to(config.strategy_window)
    for strategy, bucket, successes, outcomes in saved.confluence:
        if strategy in model.strategy_tallies and bucket <= config.confluence_target:
            by_confluence = model.confluence_tallies[(strategy, bucket)] = Tally(
                successes, outcomes
            )
            by_confluence.shrink_to(config.strategy_window)
    for sid, (setup, bucket_q) in saved.pending[-config.max_pending_signals :]:
        known = model.setups.get(setup)
        model.pending[sid] = (setup if known is None else known.key, bucket_q)
    model.scored = saved.scored
    model.executed = saved.executed
    model.quality_sum = saved.quality_sum
    model.evicted_signals = saved.evicted_signals
    (
        model.bucket_scored,
        model.bucket_executed,
        model.bucket_outcomes,
        model.bucket_successes,
    ) = _buckets_of(saved)


def _buckets_of(saved: ScorerState) -> tuple[list[int], list[int], list[int], list[int]]:
    return (
        saved.bucket_scored,
        saved.bucket_executed,
        saved.bucket_outcomes,
        saved.bucket_successes,
    )


def _paper_ends_of(saved: ScorerState) -> Iterator[list[tuple[float, float]]]:
    yield from saved.paper_ends.values()
    yield from (ends for _, _, ends in saved.regime_paper_ends)


def _ends_within(ends: list[tuple[float, float]], outcomes: float) -> list[tuple[float, float]]:
    """A paper record's saved batch ends, in order, none past its outcomes: the latest
    ``PAPER_BATCHES_KEPT``."""
    kept = sorted((n, wins) for n, wins in ends if n <= outcomes)
    return kept[-PAPER_BATCHES_KEPT:]
