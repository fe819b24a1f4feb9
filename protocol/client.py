"""Clients for bots: ``Client`` (blocking) and ``AsyncClient`` (asyncio), one typed
method per request (``protocol.requests``), with the retry rules of ``protocol.core``.
The alert subscribers and the pandas frames are importable from here too.

Both take ``curve=CurveKeys(...)`` for a tcp:// daemon (``protocol.curve``).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, TypeVar

import zmq
import zmq.asyncio

from alphad.protocol.core import (
    SENT_ONCE,
    AsyncClosing,
    Attempts,
    Call,
    Closing,
    Encoding,
    Transport,
)
from alphad.protocol.curve import CurveKeys, CurveRefused
from alphad.protocol.errors import AlphadError
from alphad.protocol.frames import report_frames
from alphad.protocol.messages import Reply, Report, Request
from alphad.protocol.pages import merge_report
from alphad.protocol.requests import Requests
from alphad.protocol.subscriber import BACKFILL_PAGE, AsyncSubscriber, Subscriber

if TYPE_CHECKING:
    import pandas

__all__ = [
    "BACKFILL_PAGE",
    "SENT_ONCE",
    "AsyncClient",
    "AsyncSubscriber",
    "Client",
    "CurveKeys",
    "CurveRefused",
    "Encoding",
    "Subscriber",
    "report_frames",
]

R = TypeVar("R", bound=Reply)


class Client(Requests, Transport[zmq.Socket[Any]], Closing):
    """A blocking client on a REQ socket, one typed method per request.

    Not thread-safe: use one per thread. ``timeout_s`` is per attempt and can be given
    per call; see ``protocol.core`` for which requests are resent.
    """

    awaited = False

    def default_context(self) -> zmq.Context[zmq.Socket[Any]]:
        return zmq.Context.instance()

    def call(
        self,
        request: Request,
        expected: type[R],
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> R:
        """Send any request and return its reply of type ``expected`` (``timeout_s`` and
        ``retries`` for this call only; None: the client's)."""
        attempts = Attempts(self, Call(request, expected, timeout_s, retries))
        while True:
            sock = self._socket()
            try:
                sock.send(attempts.payload)
                answer = sock.recv() if sock.poll(attempts.timeout_ms, zmq.POLLIN) else None
            except BaseException:
                # Interrupted mid-request (Ctrl-C, a zmq error): the REQ socket is stuck
                # waiting for a reply, so the next call must start on a fresh one.
                self.close()
                raise
            if answer is not None:
                try:
                    return attempts.answer(answer)
                except AlphadError as refused:
                    pause = attempts.resend_after(refused)
                    if pause is None:
                        raise
                time.sleep(pause)
                continue
            attempts.lost()

    def report(self, *, timeout_s: float | None = None) -> Report:
        """Every page of ``get_report``, joined into one report (``protocol.pages``)."""
        pages = [self.get_report(timeout_s=timeout_s)]
        while pages[-1].next is not None:
            pages.append(self.get_report(after=pages[-1].next, timeout_s=timeout_s))
        return merge_report(pages)

    def report_frames(self, *, timeout_s: float | None = None) -> dict[str, pandas.DataFrame]:
        """The whole report as pandas DataFrames, one per table (needs ``alphad[pandas]``)."""
        return report_frames(self.report(timeout_s=timeout_s))


class AsyncClient(Requests, Transport[zmq.asyncio.Socket], AsyncClosing):
    """The asyncio twin of ``Client``: same methods, same retry rules, awaited.

    Calls on one client are serialized (a REQ socket carries one request at a time);
    open several clients for requests in parallel.
    """

    awaited = True

    def default_context(self) -> zmq.asyncio.Context:
        return zmq.asyncio.Context.instance()

    _locked: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @property
    def _lock(self) -> asyncio.Lock:
        """The lock of the running loop: made at first use inside it, and again in the
        next loop (``asyncio.run`` after ``asyncio.run``: a lock is bound to one loop)."""
        loop = asyncio.get_running_loop()
        if self._locked is None or self._locked[0] is not loop:
            self._locked = (loop, asyncio.Lock())
        return self._locked[1]

    async def call(
        self,
        request: Request,
        expected: type[R],
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> R:
        """Send any request and return its reply of type ``expected`` (``Client.call``)."""
        attempts = Attempts(self, Call(request, expected, timeout_s, retries))
        async with self._lock:
            while True:
                sock = self._socket()
                try:
                    await sock.send(attempts.payload)
                    answer = await sock.recv() if await sock.poll(attempts.timeout_ms) else None
                except BaseException:
                    # Cancelled or failed mid-request: this REQ socket awaits a reply
                    # that will never be read, so it cannot be used again.
                    self.close()
                    raise
                if answer is not None:
                    try:
                        return attempts.answer(answer)
                    except AlphadError as refused:
                        pause = attempts.resend_after(refused)
                        if pause is None:
                            raise
                    await asyncio.sleep(pause)
                    continue
                attempts.lost()

    async def report(self, *, timeout_s: float | None = None) -> Report:
        """Every page of ``get_report``, joined into one report (``protocol.pages``)."""
        pages = [await self.get_report(timeout_s=timeout_s)]
        while pages[-1].next is not None:
            pages.append(await self.get_report(after=pages[-1].next, timeout_s=timeout_s))
        return merge_report(pages)
