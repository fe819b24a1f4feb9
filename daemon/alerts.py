"""The alert publisher: a PUB socket fed from a mailbox, two frames per alert."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
import zmq

from actors.base import Actor
from daemon.gateway import bind_with_mode
from protocol.codec import msgpack_encoder
from protocol.endpoints import alert_topic
from protocol.messages import Alert

log = structlog.get_logger("alphad.alerts")


class AlertPublisher(Actor):
    """Publishes ``[topic, payload]``; ``seq`` lets subscribers find what PUB dropped."""

    name = "alerts"

    def __init__(
        self,
        context: zmq.Context[Any],
        endpoint: str,
        *,
        hwm: int,
        mailbox_size: int,
        curve: Callable[[Any], None] | None = None,
    ) -> None:
        super().__init__(mailbox_size)
        self.context = context
        self.endpoint = endpoint
        self.hwm = hwm
        self.socket: zmq.Socket[Any] | None = None
        self.published = 0
        self.curve = curve

    async def on_start(self) -> None:
        sock = self.context.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)
        # A cycle can change many strategies at once: the burst must fit the HWM, and a
        # subscriber that still misses some sees the gap in seq and backfills.
        sock.setsockopt(zmq.SNDHWM, self.hwm)
        if not self.endpoint.startswith("ipc://"):
            if self.curve is None:
                raise ValueError(f"{self.endpoint}: a tcp endpoint needs CURVE keys")
            self.curve(sock)
        bind_with_mode(sock, self.endpoint, 0o660)
        self.socket = sock

    async def on_stop(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None

    async def handle(self, message: Any) -> None:
        alerts: list[Alert] = message if isinstance(message, list) else [message]
        sock = self.socket
        if sock is None:
            return
        for alert in alerts:
            topic = alert_topic(alert.kind, alert.new).encode()
            try:
                sock.send_multipart([topic, msgpack_encoder.encode(alert)], zmq.NOBLOCK)
                self.published += 1
            except zmq.ZMQError as exc:
                log.warning("alert_not_published", seq=alert.seq, error=str(exc))
