"""JSON alerts: a subscriber that reads JSON only gets every alert, with the msgpack
socket's topics and seqs, from a plain SUB socket."""

from __future__ import annotations

import json
import time

import msgspec
import zmq

from alphad.protocol.client import Client
from tests.daemon_process import DaemonProcess

T0 = 1_732_000_000_000


def _subscribe(endpoint: str) -> zmq.Socket[bytes]:
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    return sub


def _take(sub: zmq.Socket[bytes], count: int) -> list[tuple[str, bytes]]:
    got = []
    while len(got) < count and sub.poll(10_000):
        topic, payload = sub.recv_multipart()
        got.append((topic.decode(), payload))
    return got


def test_json_alerts_carry_the_same_topics_and_seqs_as_msgpack(daemon: DaemonProcess) -> None:
    as_json, as_msgpack = _subscribe(daemon.alerts_json), _subscribe(daemon.alerts)
    try:
        with Client(daemon.rpc) as rpc, Client(daemon.admin) as admin:
            rpc.record_trade("j1", "jsonbot", "BTC", "buy", 1.0, T0, T0 + 1)
            # Both subscriptions reach the daemon some time after connecting.
            deadline = time.monotonic() + 30
            while not (as_json.poll(100) and as_msgpack.poll(100)):
                assert time.monotonic() < deadline, "no alert on one of the sockets"
                admin.set_component("scorer", True, "probe", "t")  # an alert, changes nothing
                admin.force_status("jsonbot", "degraded", "probe", "t")
                admin.force_status("jsonbot", "active", "probe", "t")
            for sub in (as_json, as_msgpack):  # what came while both were getting ready
                while sub.poll(200):
                    sub.recv_multipart()
            admin.force_status("jsonbot", "suspended", "paper losses", "alice")
            admin.force_status("jsonbot", "active", "back", "alice")
        json_alerts = [(t, json.loads(p)) for t, p in _take(as_json, 2)]
        msgpack_alerts = [(t, msgspec.msgpack.decode(p)) for t, p in _take(as_msgpack, 2)]
    finally:
        as_json.close()
        as_msgpack.close()
    assert [t for t, _ in json_alerts] == ["status.suspended", "status.active"]
    assert json_alerts == msgpack_alerts
    first = json_alerts[0][1]
    assert first["type"] == "alert" and first["strategy"] == "jsonbot"
    assert (first["old"], first["new"], first["actor"]) == ("active", "suspended", "alice")
    assert json_alerts[1][1]["seq"] == first["seq"] + 1
