"""Logging: JSON lines for journald when stdout is not a terminal, readable on a terminal.

The daemon's lines go to stdout through a thread of their own, so that the event loop
never waits on whoever reads stdout: a pager that stopped scrolling, a slow journald, a
``tee`` that Ctrl-C killed together with the daemon. A line that cannot be written is
dropped and counted (``alphad_log_lines_dropped_total``), never raised to the code that
logged it: a queue already holding ``QUEUE_LINES`` lines (the reader has stalled) drops
the new line; an error from the sink (EPIPE: the reader is gone, and will not come back)
drops that line and every later one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from queue import SimpleQueue
from typing import TextIO

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# About a minute of a busy daemon's lines, a few MB at most.
QUEUE_LINES = 10_000
# Lines taken from the queue for one write.
_BATCH_LINES = 256


class LineSink:
    """A structlog logger that hands each rendered line to a writer thread."""

    def __init__(self, fd: int, queue_lines: int = QUEUE_LINES) -> None:
        self.fd = fd
        self.queue_lines = queue_lines
        # Counted apart by the threads that drop: += from two threads could lose a count.
        self._refused = 0  # by ``msg``: broken sink or full queue
        self._lost = 0  # by the writer: the sink failed
        # The error that broke the sink (``None`` while lines get through).
        self.broken: str | None = None
        self._queue: SimpleQueue[str | threading.Event] = SimpleQueue()
        self._writer = threading.Thread(target=self._write_lines, name="alphad-log", daemon=True)
        self._writer.start()

    @property
    def dropped(self) -> int:
        """Lines not written: refused while the sink was broken or stalled, or lost by it."""
        return self._refused + self._lost

    def msg(self, message: str) -> None:
        """Queue one line; drop it when the sink is broken or its queue is full."""
        if self.broken is not None or self._queue.qsize() >= self.queue_lines:
            self._refused += 1
            return
        self._queue.put(message)

    # The method names structlog's bound loggers call, as on ``structlog.PrintLogger``.
    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg

    def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the lines queued so far; False if they are not out."""
        written = threading.Event()
        self._queue.put(written)
        return written.wait(timeout_s)

    def _write_lines(self) -> None:
        get, get_nowait, qsize = self._queue.get, self._queue.get_nowait, self._queue.qsize
        while True:
            items = [get()]
            while qsize() and len(items) < _BATCH_LINES:
                items.append(get_nowait())
            lines = [item for item in items if isinstance(item, str)]
            if lines:
                self._write(lines)
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()

    def _write(self, lines: list[str]) -> None:
        if self.broken is not None:
            self._lost += len(lines)
            return
        data = memoryview(("\n".join(lines) + "\n").encode("utf-8", "replace"))
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError as exc:
            # os.write on the descriptor, not sys.stdout: no buffered bytes are left for the
            # interpreter to fail on again at exit.
            self.broken = exc.strerror or type(exc).__name__
            self._lost += bytes(data).count(b"\n")
            # One line on stderr, which may be the same broken pipe.
            with contextlib.suppress(OSError):
                os.write(2, f"alphad: log output lost ({self.broken}); lines dropped\n".encode())


_sink: LineSink | None = None


def configure_logging(
    level: str = "info", *, force_json: bool | None = None, stream: TextIO | None = None
) -> LineSink:
    """Configure structlog once for the process; its lines go to ``stream`` (stdout)."""
    global _sink
    stream = stream or sys.stdout
    as_json = not stream.isatty() if force_json is None else force_json
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if as_json:
        processors += [
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors.append(structlog.dev.ConsoleRenderer())
    with contextlib.suppress(OSError):
        stream.flush()  # what was printed before goes out before the first line
    sink = _sink = LineSink(stream.fileno())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *_: sink,
        cache_logger_on_first_use=True,
    )
    return sink


def lines_dropped() -> int:
    """Log lines dropped so far (a stalled or broken stdout)."""
    return _sink.dropped if _sink is not None else 0


def flush_logs(timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for the queued lines to be written (at exit)."""
    return _sink.flush(timeout_s) if _sink is not None else True
