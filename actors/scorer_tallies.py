"""The scorer's records of outcomes: successes out of a bounded window of outcomes.

Apart from the model because they are plain counters with no view of scoring: the
model keeps one per setup, per strategy and per confluence bucket, the snapshot saves
and restores them, and the quality buckets index its summary and its pending signals.
"""

from __future__ import annotations

from alphad.actors.lifecycle_shapes import PAPER_BATCHES_KEPT, PaperTrades

BUCKETS: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Lower edges of the quality buckets of the summary: 0-0.5, 0.5-0.6, ..., 0.9-1.0."""
PAPER = len(BUCKETS)
"""Added to a pending signal's quality bucket when it was refused because its strategy
was suspended: its outcome is a paper trade, the evidence a suspension ends on."""

SetupKey = tuple[str, str, str, str, int]
"""(strategy, symbol, side, regime, confluence bucket): signals alike enough to share a record."""


class Tally:
    """Successes out of outcomes, remembering about the last ``window`` outcomes."""

    __slots__ = ("outcomes", "significant_from", "successes", "unsure_to")

    def __init__(self, successes: float = 0.0, outcomes: float = 0.0) -> None:
        self.successes = successes
        self.outcomes = outcomes
        # What the exact test has found for the record as it is: significantly short of
        # any strategy rate at or above ``significant_from``, not of any at or below
        # ``unsure_to`` (its p-value falls as the rate rises), so scoring recomputes the
        # tail only for a rate between the two.
        self.significant_from = 2.0
        self.unsure_to = -1.0

    def add(self, success: bool, window: int) -> None:
        """Count one outcome; past ``window`` the oldest ones fade out proportionally."""
        if self.outcomes >= window:
            # Scaling both counts keeps the observed rate and frees room for one outcome:
            # the count stays at ``window`` and the rate becomes an exponential average.
            keep = (window - 1) / self.outcomes
            self.successes *= keep
            self.outcomes = float(window - 1)
        if success:
            self.successes += 1.0
        self.outcomes += 1.0
        self.significant_from, self.unsure_to = 2.0, -1.0

    def shrink_to(self, window: int) -> None:
        """Fit a record kept under a larger window (a config change between restarts)."""
        if self.outcomes > window:
            self.successes *= window / self.outcomes
            self.outcomes = float(window)
            self.significant_from, self.unsure_to = 2.0, -1.0


class SetupTally(Tally):
    """A setup's record; it keeps its key so that pending signals of a known setup share
    its strings instead of each holding copies (most of a pending signal's memory)."""

    __slots__ = ("key",)

    def __init__(self, key: SetupKey, successes: float = 0.0, outcomes: float = 0.0) -> None:
        super().__init__(successes, outcomes)
        self.key = key


class PaperTally:
    """A suspended strategy's paper trades since its suspension: wins, outcomes and the
    (outcomes, wins) at the end of each batch of ``batch`` (``PaperTrades``)."""

    __slots__ = ("batch", "ends", "outcomes", "wins")

    def __init__(
        self,
        batch: int,
        wins: float = 0.0,
        outcomes: float = 0.0,
        ends: list[tuple[float, float]] | None = None,
    ) -> None:
        self.batch = batch
        self.wins = wins
        self.outcomes = outcomes
        self.ends = ends if ends is not None else []

    def add(self, success: bool) -> None:
        """Count one paper trade; a full batch leaves its end."""
        self.wins += success
        self.outcomes += 1.0
        if self.outcomes % self.batch == 0:
            self.ends.append((self.outcomes, self.wins))
            if len(self.ends) > PAPER_BATCHES_KEPT:
                del self.ends[0]

    def record(self) -> PaperTrades:
        """What the lifecycle judges."""
        return PaperTrades(self.wins, self.outcomes, tuple(self.ends))
