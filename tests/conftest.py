"""Shared fixtures: a real daemon process in temporary directories, and raw REQ clients."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import aiosqlite
import pytest
import uvloop
from hypothesis import settings

from tests.daemon_process import DaemonProcess, RawClient
from tests.startup_helpers import require_root

# In CI the property tests draw the same examples every run, so a red build is
# reproducible; locally they keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A test that fails before closing its store leaves the connection's thread running
    (aiosqlite's worker is not a daemon thread), and the interpreter would wait for it
    forever instead of reporting the failure: stop every such thread when the run is
    over. Still needed: without it, one failing test with an open store hangs the run."""
    gc.collect()
    for leftover in gc.get_objects():
        if isinstance(leftover, aiosqlite.Connection):
            leftover.stop()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test runs twice: on the standard loop and on uvloop (the daemon's loop)."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user may enter (pytest's own tmp_path is root's alone)."""
    require_root()
    path = Path(tempfile.mkdtemp(prefix="alphad-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    """A running ``alphad run`` with default config (cycles only on request)."""
    process = DaemonProcess(tmp_path, "[engine]\nupdate_interval_s = 0\n").start()
    try:
        yield process
    finally:
        process.close()


@pytest.fixture
def rpc(daemon: DaemonProcess) -> Iterator[RawClient]:
    client = RawClient(daemon.rpc)
    yield client
    client.close()


@pytest.fixture
def admin(daemon: DaemonProcess) -> Iterator[RawClient]:
    client = RawClient(daemon.admin)
    yield client
    client.close()
