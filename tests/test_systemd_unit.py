"""The systemd files verify, keep their hardening, and the daemon runs under its seccomp rules.

Every check that needs systemd's tools is skipped, with that reason, only where the tool
is not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alphad.protocol.client import Client, Subscriber
from alphad.protocol.codec import decode_reply, encode
from alphad.protocol.messages import GetStatus, StatusReply
from tests.daemon_process import DaemonProcess
from tests.test_security import curve_client, free_port, keygen

SYSTEMD = Path(__file__).parent.parent / "systemd"
UNIT = SYSTEMD / "alphad.service"
README = SYSTEMD.parent / "README.md"
INSTALLED = "/opt/alphad/bin/alphad"  # where the README's deployment installs the command
ANALYZE = shutil.which("systemd-analyze")
SYSUSERS = shutil.which("systemd-sysusers")
TMPFILES = shutil.which("systemd-tmpfiles")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def installed_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's alphad, as a package would."""
    alphad = Path(sys.executable).parent / "alphad"
    assert alphad.exists(), f"the alphad console script is not installed next to {sys.executable}"
    unit = tmp_path / "alphad.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(alphad)))
    return unit


def unit_settings() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, values in file order (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_readmes_install_puts_the_command_where_the_unit_runs_it() -> None:
    # A plain ``pip install .`` puts it in /usr/local/bin (or is refused as an externally
    # managed environment): the deployment makes the environment the unit names.
    deployment = README.read_text().split("## Deployment with systemd", 1)[1]
    venv = str(Path(INSTALLED).parent.parent)
    assert f"python3 -m venv {venv} && {venv}/bin/pip install ." in deployment
    assert unit_settings()["ExecStart"] == [f"{INSTALLED} run --config /etc/alphad/alphad.toml"]


def test_unit_declares_notify_watchdog_directories_and_hardening() -> None:
    settings = unit_settings()
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "Restart": "always",  # a SIGHUP's clean exit is restarted too
        "StateDirectory": "alphad",
        "RuntimeDirectory": "alphad",
        "RuntimeDirectoryPreserve": "yes",
        "User": "alphad",
        "Group": "alphad",
        "ExecStart": f"{INSTALLED} run --config /etc/alphad/alphad.toml",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "IPAddressDeny": "any",
        "IPAddressAllow": "localhost",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallArchitectures": "native",
    }
    assert {key: settings.get(key, [None])[-1] for key in expected} == expected
    assert settings["SystemCallFilter"][0] == "@system-service"
    assert re.fullmatch(r"\d+s", settings["WatchdogSec"][0])
    assert "ExecReload" not in settings  # a reload that stops the daemon is not restarted


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    result = subprocess.run(
        [ANALYZE or "", "verify", str(installed_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings, with returncode 0.
    assert "alphad.service" not in result.stderr, result.stderr


@needs_analyze
def test_security_exposure_is_ok_or_better(tmp_path: Path) -> None:
    result = subprocess.run(
        [ANALYZE or "", "security", "--offline=yes", str(installed_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "offline" in result.stderr and result.returncode != 0:
        pytest.skip(f"this systemd-analyze has no --offline: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for alphad.service: ([\d.]+) (\w+)", result.stdout)
    assert match is not None, result.stdout[-500:]
    exposure, level = float(match.group(1)), match.group(2)
    # systemd's scale: below 1.0 SAFE, below 5.0 OK, then MEDIUM, EXPOSED, UNSAFE.
    assert exposure < 5.0 and level in ("PERFECT", "SAFE", "OK"), match.group(0)


@pytest.mark.skipif(SYSUSERS is None, reason="systemd-sysusers is not installed")
def test_sysusers_creates_the_static_alphad_user_and_group(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        [SYSUSERS or "", f"--root={tmp_path}", str(SYSTEMD / "alphad.sysusers.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    user = (tmp_path / "etc" / "passwd").read_text().split(":")
    group = (tmp_path / "etc" / "group").read_text().split(":")
    assert (user[0], user[3], user[5], user[6].strip()) == (
        "alphad",
        group[2],
        "/var/lib/alphad",
        "/usr/sbin/nologin",
    )
    assert group[0] == "alphad"


@pytest.mark.skipif(
    SYSUSERS is None or TMPFILES is None, reason="systemd-sysusers or systemd-tmpfiles missing"
)
def test_tmpfiles_makes_the_config_dir_readable_by_group_alphad_only(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    for tool, conf in ((SYSUSERS, "alphad.sysusers.conf"), (TMPFILES, "alphad.tmpfiles.conf")):
        args = [tool or "", f"--root={tmp_path}", str(SYSTEMD / conf)]
        if tool == TMPFILES:
            args.insert(1, "--create")
        result = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    config_dir = (tmp_path / "etc" / "alphad").stat()
    alphad_gid = int((tmp_path / "etc" / "group").read_text().split(":")[2])
    assert (config_dir.st_mode & 0o777, config_dir.st_uid, config_dir.st_gid) == (
        0o750,
        0,
        alphad_gid,
    )


# ------------------------------------------------------------------ the unit's seccomp rules

# Loaded into the daemon at interpreter start through sitecustomize: the seccomp part of
# what systemd applies before exec. libseccomp is the library systemd itself uses.
SECCOMP_LOADER = """
import ctypes, ctypes.util, errno, json, os

def _load(rules):
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]

    class Cmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                    ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]

    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(Cmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    allow, eq, masked_eq = 0x7FFF0000, 4, 7
    ctx = lib.seccomp_init(0x00050000 | errno.EPERM)  # SystemCallErrorNumber=EPERM

    def add(name, *cmps):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        arr = (Cmp * max(1, len(cmps)))(*[Cmp(*c) for c in cmps])
        lib.seccomp_rule_add_array(ctx, allow, nr, len(cmps), arr)

    conditional = {"mmap", "mprotect", "pkey_mprotect", "shmat", "socket"}
    for name in rules["allow"]:
        if not (name in conditional and (rules["mdwe"] or name == "socket")):
            add(name)
    if rules["mdwe"]:  # MemoryDenyWriteExecute, as systemd words it in seccomp
        write, execute, shm_exec = 0x2, 0x4, 0o100000
        for prot in (0, write, execute):
            add("mmap", (2, masked_eq, write | execute, prot))
        add("mprotect", (2, masked_eq, execute, 0))
        add("pkey_mprotect", (2, masked_eq, execute, 0))
        add("shmat", (2, masked_eq, shm_exec, 0))
    for family in rules["families"]:  # RestrictAddressFamilies
        add("socket", (0, eq, family, 0))
    # Any other family, as systemd refuses it: EAFNOSUPPORT, not SystemCallErrorNumber.
    socket_nr = lib.seccomp_syscall_resolve_name(b"socket")
    for family in range(64):
        if family not in rules["families"]:
            arr = (Cmp * 1)(Cmp(0, eq, family, 0))
            lib.seccomp_rule_add_array(ctx, 0x00050000 | errno.EAFNOSUPPORT, socket_nr, 1, arr)
    if lib.seccomp_load(ctx) != 0:
        raise SystemExit("seccomp_load failed")

_load(json.loads(open(os.environ["ALPHAD_TEST_SECCOMP"]).read()))
"""


def syscall_groups() -> dict[str, list[str]]:
    """systemd's syscall groups (``@system-service`` ...), as this systemd defines them."""
    out = subprocess.run(
        [ANALYZE or "", "syscall-filter"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        item = line.strip()
        if line.startswith("@"):
            current = groups.setdefault(item, [])
        elif item and not item.startswith("#"):
            current.append(item)
    return groups


def allowed_syscalls(filters: list[str], groups: dict[str, list[str]]) -> set[str]:
    """The allow list that ``SystemCallFilter=`` lines build: first sets, ``~`` removes."""

    def expand(name: str) -> set[str]:
        if not name.startswith("@"):
            return {name}
        return set().union(*(expand(item) for item in groups[name]))

    allowed: set[str] = set()
    for value in filters:
        remove = value.startswith("~")
        names = set().union(*(expand(n) for n in value.lstrip("~").split()))
        allowed = allowed - names if remove else allowed | names
    return allowed


def unit_seccomp(tmp_path: Path) -> tuple[dict[str, str], Path, dict[str, object], list[str]]:
    """The environment that loads the unit's seccomp rules into a Python process at its
    start, the folder and the rules it loads them from, and the syscalls they allow."""
    settings = unit_settings()
    allow = sorted(allowed_syscalls(settings["SystemCallFilter"], syscall_groups()))
    rules: dict[str, object] = {
        "allow": allow,
        "mdwe": settings["MemoryDenyWriteExecute"] == ["yes"],
        "families": [
            int(getattr(socket, f)) for f in settings["RestrictAddressFamilies"][0].split()
        ],
    }
    loader = tmp_path / "seccomp"
    loader.mkdir()
    (loader / "sitecustomize.py").write_text(SECCOMP_LOADER)
    (loader / "rules.json").write_text(json.dumps(rules))
    env = {"PYTHONPATH": str(loader), "ALPHAD_TEST_SECCOMP": str(loader / "rules.json")}
    return env, loader, rules, allow


@needs_analyze
def test_daemon_serves_under_the_units_syscall_filter(tmp_path: Path) -> None:
    env, loader, rules, allow = unit_seccomp(tmp_path)
    assert "setrlimit" not in allow and "mount" not in allow

    (tmp_path / "daemon").mkdir()
    daemon = DaemonProcess(tmp_path / "daemon", "[engine]\nupdate_interval_s = 0\n")
    try:
        daemon.start(extra_env=env)
        assert daemon.process is not None
        status = Path(f"/proc/{daemon.process.pid}/status").read_text()
        assert re.search(r"^Seccomp:\s+2$", status, re.M), status  # a filter is loaded
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
        with (
            Client(daemon.rpc) as rpc,
            Client(daemon.admin) as admin,
            Subscriber(daemon.alerts, ["status."]) as alerts,
        ):
            time.sleep(0.3)
            for i in range(30):
                score = rpc.score_signal("ema", "BTC", "buy", 0.7, regime="trend")
                rpc.record_signal_outcome(score.signal_id or "", i % 2 == 0)
                rpc.record_trade(
                    f"t{i}",
                    "ema",
                    "BTC",
                    "buy",
                    float(i % 3 - 1),
                    1_732_000_000_001,
                    1_732_000_000_002,
                )
            assert rpc.update_optimization().cycle == 1
            assert admin.force_status("ema", "suspended", "check", "alice").new == "suspended"
            assert [a.new for _, a in alerts.receive(5.0)] == ["suspended"]
            assert rpc.get_report().status.trades == 30
        assert daemon.stop() == 0, daemon.log()
    finally:
        daemon.close()
    assert "Operation not permitted" not in daemon.log()

    # Why the unit allows sched_setscheduler back: without it libzmq aborts as soon as
    # it starts its I/O thread.
    allow.remove("sched_setscheduler")
    (loader / "rules.json").write_text(json.dumps(rules))
    aborted = subprocess.run(
        [sys.executable, "-c", "import zmq; zmq.Context().socket(zmq.REQ).close()"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert aborted.returncode == -signal.SIGABRT, aborted.stderr
    assert "Operation not permitted" in aborted.stderr


@needs_analyze
def test_daemon_serves_a_curve_tcp_endpoint_under_the_units_syscall_filter(
    tmp_path: Path,
) -> None:
    # Binding tcp://, libzmq first reads the host's interfaces (getifaddrs, a netlink
    # socket) to see whether the host is an interface's name; refused that socket it
    # aborts, so the unit allows AF_NETLINK.
    env, _, _, _ = unit_seccomp(tmp_path)
    keys, allowed = tmp_path / "keys", tmp_path / "clients"
    _, server_secret = keygen(keys, "server")
    bot_public, bot_secret = keygen(keys, "bot")
    allowed.mkdir()
    (allowed / "bot.key").write_bytes(bot_public.read_bytes())
    port = free_port()
    config = (
        f'[daemon]\nrpc_endpoint = "tcp://127.0.0.1:{port}"\n'
        f'[security]\ncurve_server_secret = "{server_secret}"\n'
        f'curve_clients_dir = "{allowed}"\n'
    )
    (tmp_path / "daemon").mkdir()
    daemon = DaemonProcess(tmp_path / "daemon", config)
    try:
        daemon.start(extra_env=env)
        bot = curve_client(f"tcp://127.0.0.1:{port}", bot_secret, keys / "server.key")
        try:
            bot.send(encode(GetStatus()))
            assert bot.poll(5000), "a bot with its keys must be answered over tcp"
            assert isinstance(decode_reply(bot.recv()), StatusReply)
        finally:
            bot.close(linger=0)
        assert daemon.stop() == 0, daemon.log()
    finally:
        daemon.close()
    assert "Operation not permitted" not in daemon.log()
