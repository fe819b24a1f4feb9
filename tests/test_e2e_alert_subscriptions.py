"""End to end: alert subscriptions are bounded per subscriber, a subscriber flooding
subscriptions holds up neither the bots nor the other subscribers, and a plain SUB socket
gets the topics it asked for."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import zmq

from alphad.daemon.alert_outlet import SubscriptionBook
from alphad.protocol.client import Client, Subscriber
from bench.state import rss_mib
from bench.subscription_flood import FLOOD
from tests.daemon_process import DaemonProcess
from tests.test_e2e_faults import Samples, scrape_until
from tests.test_metrics import free_port, value


def test_subscription_flood_is_refused_and_ordinary_subscribers_still_get_alerts(
    tmp_path: Path,
) -> None:
    port = free_port()
    daemon = DaemonProcess(
        tmp_path,
        f"[metrics]\nport = {port}\n[daemon]\nmax_alert_subscriptions = 100\n[strategies.ema]\n",
    ).start()
    assert daemon.process is not None
    flooder: subprocess.Popen[bytes] | None = None
    try:
        with (
            Client(daemon.admin) as admin,
            Subscriber(daemon.alerts, ["component"], client=daemon.rpc) as before,
        ):
            assert _component_alert(before, admin) > 0
            idle_rss = rss_mib(daemon.process.pid)
            flooder = subprocess.Popen(
                [sys.executable, "-c", FLOOD, daemon.alerts, "50000"], stdout=subprocess.PIPE
            )
            assert flooder.stdout is not None and flooder.stdout.readline() == b"subscribed\n"

            def flooded(samples: Samples) -> bool:
                # Alerts go out meanwhile, as they would.
                admin.set_component("scorer", False, "flood", "alice")
                admin.set_component("scorer", True, "flood", "alice")
                # Cut, reconnected with all its subscriptions, cut again: the flood goes on.
                return value(samples, "alphad_alert_subscribers_disconnected_total") >= 3

            samples = scrape_until(port, flooded, timeout_s=60)
            assert value(samples, "alphad_alert_subscribers_disconnected_total") >= 3
            assert value(samples, "alphad_alert_subscriptions_refused_total") >= 3
            assert value(samples, "alphad_alerts_dropped_total") == 0
            flooded_rss = rss_mib(daemon.process.pid)
            # Without the cap: +100 MiB for these 50 000 subscriptions, and never given back.
            assert flooded_rss - idle_rss < 32, (idle_rss, flooded_rss)

            with Subscriber(daemon.alerts, ["component"], client=daemon.rpc) as after:
                seq = _component_alert(after, admin)
                deadline = time.monotonic() + 20
                while (before.last_seq or 0) < seq and time.monotonic() < deadline:
                    before.receive(timeout_s=0.5)
                # Subscribed through the whole flood, it missed nothing.
                assert before.last_seq is not None and before.last_seq >= seq
                assert before.gaps == 0
        assert "alert_subscription_refused" in daemon.log()
    finally:
        if flooder is not None:
            flooder.kill()
            flooder.wait()
        daemon.close()


def test_a_subscription_flood_does_not_hold_up_the_bots(tmp_path: Path) -> None:
    # Subscriptions are taken in by the alert sockets' own thread: a subscriber resending
    # 50 000 prefixes leaves scoring as it was (in the event loop it took score_signal's
    # p99 to seconds), and an ordinary subscriber still gets every alert.
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


def test_subscription_book_caps_distinct_prefixes_per_subscriber_and_in_all() -> None:
    book = SubscriptionBook(cap=2, total_cap=3)
    assert book.subscribe("localhost:1:1:10", b"status.")
    assert book.subscribe("localhost:1:1:10", b"status.")  # a second socket, same prefix
    assert book.subscribe("localhost:1:1:10", b"cycle")
    assert not book.subscribe("localhost:1:1:10", b"weights")
    assert book.subscribe("localhost:1:1:11", b"weights")  # another process has its own cap
    assert not book.subscribe("localhost:1:1:12", b"weights")  # but all of them hold 3
    book.unsubscribe("localhost:1:1:10", b"cycle")
    assert book.subscribe("localhost:1:1:10", b"weights")
    book.unsubscribe("localhost:1:1:10", b"status.")
    assert book.peers["localhost:1:1:10"] == {b"status.": 1, b"weights": 1}
    assert book.total == 3
    book.forget(lambda peer: peer.endswith(":11"))
    assert list(book.peers) == ["localhost:1:1:11"] and book.total == 1
    assert book.subscribe("localhost:1:1:12", b"weights")


def _database_locks(pid: int, database: Path) -> list[str]:
    """The POSIX locks ``pid`` holds on the database and its shared-memory file."""
    inodes = {(database.parent / (database.name + s)).stat().st_ino for s in ("", "-shm")}
    held = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        mine = fields[1] == "POSIX" and fields[4] == str(pid)
        if mine and int(fields[5].split(":")[2]) in inodes:
            held.append(" ".join(fields[5:]))
    return sorted(held)


def test_a_subscriber_that_leaves_takes_none_of_the_databases_locks_with_it(
    tmp_path: Path,
) -> None:
    # Finding the connections that had ended, the outlet duplicated and closed every
    # descriptor of the process, SQLite's too: closing any descriptor of a file releases
    # the process's locks on it, so another process (check-db, a backup) then rebuilt the
    # shared memory under the daemon (a SIGBUS) or deleted its write-ahead log.
    daemon = DaemonProcess(tmp_path).start()
    assert daemon.process is not None
    try:
        with Client(daemon.rpc) as bot:
            bot.record_trade("t1", "ema", "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002)
        held = _database_locks(daemon.process.pid, daemon.database)
        assert held, "SQLite holds a lock on its shared memory while the database is open"
        context = zmq.Context()
        try:
            for _ in range(2):
                sub = context.socket(zmq.SUB)
                sub.setsockopt(zmq.SUBSCRIBE, b"status.")
                sub.connect(daemon.alerts)
                time.sleep(0.3)
                sub.close(linger=0)
                time.sleep(1.6)  # the outlet looks for the ended connections after 1 s
                assert _database_locks(daemon.process.pid, daemon.database) == held
        finally:
            context.term()
        with Client(daemon.rpc) as bot:  # and the daemon still records
            bot.record_trade("t2", "ema", "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002)
        assert daemon.stop() == 0
    finally:
        daemon.close()
