"""Log lines of one kind at most once a second, the rest counted: a flood of failures (a
bot retrying against a full disk, a peer sending garbage) must not flood the journal."""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic


class LogThrottle:
    """At most one line per kind of event every ``every_s`` seconds; the lines held back
    are counted and reported with the next one let through."""

    def __init__(self, every_s: float = 1.0, clock: Callable[[], float] = monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def admit(self, kind: str) -> int | None:
        """None to hold this line back, else how many lines of ``kind`` were held."""
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.every_s:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._held.pop(kind, 0)

    def held(self, kind: str) -> int:
        """How many lines of ``kind`` are held back now, counted as reported: a flood that
        ended reports them with the line that says so, not with a next one that may
        never come."""
        return self._held.pop(kind, 0)
