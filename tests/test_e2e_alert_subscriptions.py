"""End to end: a subscriber flooding subscriptions holds up neither the bots nor the
other subscribers, and a plain SUB socket gets the topics it asked for."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import zmq

from protocol.client import Client, Subscriber
from tests.daemon_process import DaemonProcess

# A raw SUB socket with no send limit of its own: every subscription reaches the daemon.
# Prefixes that branch at every byte cost ZeroMQ the most memory per subscription.
FLOOD = """
import random, sys, time, zmq
sock = zmq.Context().socket(zmq.SUB)
sock.setsockopt(zmq.SNDHWM, 0)
sock.connect(sys.argv[1])
rng = random.Random(7)
for i in range(int(sys.argv[2])):
    sock.setsockopt(zmq.SUBSCRIBE, b"status." + rng.randbytes(40))
print("subscribed", flush=True)
while True:
    sock.poll(100)  # a subscriber that reads: its socket resends everything on reconnect
"""


def test_a_subscription_flood_does_not_hold_up_the_bots(tmp_path: Path) -> None:
    # Subscriptions are ZeroMQ's, in its own thread: a subscriber resending 50 000
    # prefixes leaves scoring as it was (in the event loop it took score_signal's p99 to
    # seconds), and an ordinary subscriber still gets every alert.
    daemon = DaemonProcess(tmp_path, "[strategies.ema]\n").start()
    flooder: subprocess.Popen[bytes] | None = None
    try:
        with (
            Client(daemon.admin) as admin,
            Client(daemon.rpc, timeout_s=2.0, retries=0) as rpc,
            Subscriber(daemon.alerts, ["component"], client=daemon.rpc) as before,
        ):
            assert _component_alert(before, admin) > 0
            flooder = subprocess.Popen(
                [sys.executable, "-c", FLOOD, daemon.alerts, "50000"], stdout=subprocess.PIPE
            )
            assert flooder.stdout is not None and flooder.stdout.readline() == b"subscribed\n"
            time.sleep(0.5)  # the subscriptions are on their way
            slowest, scored = 0.0, 0
            until = time.monotonic() + 4.0  # several of the flooder's reconnections
            while time.monotonic() < until:
                started = time.monotonic()
                rpc.score_signal("ema", "BTC", "buy", 0.7)  # raises after 2 s
                slowest = max(slowest, time.monotonic() - started)
                scored += 1
            assert slowest < 1.0 and scored > 100, (slowest, scored)
            seq = _component_alert(before, admin)
            assert before.last_seq is not None and before.last_seq >= seq
    finally:
        if flooder is not None:
            flooder.kill()
            flooder.wait()
        daemon.close()


def _component_alert(sub: Subscriber, admin: Client) -> int:
    """The seq of the first ``component`` alert ``sub`` receives. A subscriber connected
    just now misses what is published before its subscription is in, so the scorer is
    switched off and on until one arrives."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        admin.set_component("scorer", False, "test", "alice")
        admin.set_component("scorer", True, "test", "alice")
        for topic, alert in sub.receive(timeout_s=0.5):
            if topic == "component":
                return alert.seq
    raise AssertionError("no component alert")


def test_a_plain_sub_socket_receives_alerts_on_its_topics_only(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, "[strategies.ema]\n").start()
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    try:
        sub.setsockopt(zmq.SUBSCRIBE, b"component")
        sub.connect(daemon.alerts)
        with Client(daemon.admin) as admin:
            topics: list[bytes] = []
            deadline = time.monotonic() + 20
            while not topics and time.monotonic() < deadline:
                admin.force_status("ema", "suspended", "not wanted", "alice")
                admin.set_component("scorer", False, "wanted", "alice")
                admin.set_component("scorer", True, "wanted", "alice")
                while sub.poll(200):
                    topics.append(sub.recv_multipart()[0])
        assert topics and set(topics) == {b"component"}
    finally:
        sub.close(linger=0)
        context.term()
        daemon.close()
