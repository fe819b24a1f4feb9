"""The config as the daemon would run it: every problem of a file with its resolved
paths (the endpoints, the CURVE keys a tcp:// endpoint needs, the metrics' token), one
line each, before anything touches a directory or the database.

Kept apart from daemon/config.py, which is the config's shape and defaults alone and
imports nothing of the running daemon: the offline tools read the config too.
"""

from __future__ import annotations

import fcntl
import ipaddress
import math
import os
import socket
import struct

import msgspec

from alphad.daemon.config import (
    Config,
    ConfigError,
    MetricsConfig,
    Paths,
    read_config,
    resolve_paths,
    window_findings,
)
from alphad.daemon.ipc_paths import ipc_path_problem
from alphad.daemon.metrics import metrics_findings
from alphad.daemon.security import SecurityError, load_server_keys
from alphad.protocol.codec import encode
from alphad.protocol.messages import MarketBar, MarketBars


def checked_config(
    path: str | os.PathLike[str] | None, state_dir: str | None, runtime_dir: str | None
) -> tuple[Config, Paths, list[str]]:
    """The config and paths as the daemon would run them, and the warnings about them;
    :class:`ConfigError` with every problem found. `check-config` and `run` both call
    this, before anything touches a directory or the database."""
    config, problems = read_config(path)
    paths = resolve_paths(config, state_dir, runtime_dir)
    errors, warnings = validate(config, paths, f"{path}: " if path is not None else "")
    problems += errors
    if problems:
        raise ConfigError(problems)
    return config, paths, warnings


# A unix socket's path (sun_path) holds 108 bytes, the terminating NUL included.
IPC_PATH_MAX = 107


def validate(config: Config, paths: Paths, source: str = "") -> tuple[list[str], list[str]]:
    """Every error and every warning of a config with its resolved paths, one line each;
    ``source`` (the file) prefixes the errors that are the file's."""
    errors = _not_finite(config, "")
    # Read by the daemon from wherever it was started (systemd: /), not from the config's
    # or the shell's directory.
    files = [("daemon", k, getattr(config.daemon, k)) for k in ("state_dir", "runtime_dir")]
    files.append(("metrics", "token_file", config.metrics.token_file))
    files.extend(
        ("security", k, getattr(config.security, k))
        for k in (
            "curve_server_secret",
            "curve_clients_dir",
            "curve_server_key",
            "curve_client_secret",
        )
    )
    for section, key, value in files:
        if value and not os.path.isabs(value):
            errors.append(f"key `{section}.{key}`: {value!r} is relative; give an absolute path")
    endpoints = (
        ("rpc", paths.rpc),
        ("admin", paths.admin),
        ("alerts", paths.alerts),
        ("alerts_json", paths.alerts_json),
    )
    configured = [(n, e) for n, e in endpoints if getattr(config.daemon, f"{n}_endpoint")]
    derived = {n: e for n, e in endpoints if (n, e) not in configured}
    seen = {_same_socket(e): n for n, e in derived.items()}
    bad = set()
    for name, endpoint in configured:
        key = f"{name}_endpoint"
        problem = _endpoint_problem(name, endpoint, config.daemon.allow_abstract_rpc)
        if problem:
            errors.append(f"key `daemon.{key}`: {problem}")
            bad.add((name, endpoint))
            continue
        other = seen.setdefault(_same_socket(endpoint), name)
        if other != name:
            errors.append(
                f"key `daemon.{key}`: {endpoint} is the {other} socket too; each needs its own"
            )
    errors += _port_clashes(
        [(n, e) for n, e in endpoints if e.startswith("tcp://") and (n, e) not in bad],
        config.metrics,
    )
    if any(e.startswith("tcp://") for e in seen):
        try:
            load_server_keys(config.security)
        except SecurityError as exc:
            errors.append(str(exc))
    metrics_errors, warnings = metrics_findings(config.metrics)
    warnings += bars_findings(config) + window_findings(config) + _busy_findings(config)
    warnings += _stop_and_request_findings(config) + _deprecated_findings(config)
    errors = [source + error for error in errors + metrics_errors]
    errors += _directory_clashes(paths)
    # The sockets named after the runtime directory (from the command line, systemd or
    # the default): a problem of that directory, not of the file.
    longest = max(
        (e.removeprefix("ipc://") for e in derived.values()),
        key=lambda p: len(os.fsencode(p)),
        default="",
    )
    if len(os.fsencode(longest)) > IPC_PATH_MAX:
        errors.append(
            f"runtime directory {paths.runtime_dir} is too long for its sockets: {longest} "
            f"would be {len(os.fsencode(longest))} bytes, over the {IPC_PATH_MAX} a unix "
            "socket path may have"
        )
    return errors, warnings


def _directory_clashes(paths: Paths) -> list[str]:
    """The state directory (or the database's) that is the runtime directory too: the
    two are locked apart and kept with different modes."""
    runtime = os.path.realpath(paths.runtime_dir)
    for what, directory in (
        ("state directory", paths.state_dir),
        ("database directory", paths.database.resolve().parent),
    ):
        if os.path.realpath(directory) == runtime:
            return [
                f"{what} {directory} is the runtime directory too: the database's "
                "directory is alphad's alone and the sockets' is the bots' group's, so "
                "each needs its own"
            ]
    return []


def _deprecated_findings(config: Config) -> list[str]:
    """A warning for the hour clock of probation: set, it replaces the trade clock
    (``probation_after_trades``, whatever its value), silently until then."""
    hours = config.lifecycle.probation_after_hours
    if hours is None:
        return []
    return [
        f"[lifecycle] probation_after_hours = {hours:g} is deprecated and replaces"
        f" probation_after_trades ({config.lifecycle.probation_after_trades}): an automatic"
        " suspension ends after that many hours on every time frame; remove it for the"
        " trade clock"
    ]


def _busy_findings(config: Config) -> list[str]:
    """A warning when a write may wait on a locked database longer than its request."""
    busy, request_s = config.store.busy_timeout_ms, config.daemon.request_timeout_s
    request_ms = round(request_s * 1000, 6)  # 2.007 s is 2007 ms, not 2007.0000000000002
    if busy < request_ms:
        return []
    return [
        f"[store] busy_timeout_ms {busy} is not below [daemon] request_timeout_s "
        f"{request_s:g} ({request_ms:g} ms): a write that waits on a locked database "
        "outlasts its request, so the bot is answered `timeout` while its trade may still "
        "be recorded (a resend is then a `duplicate`)"
    ]


# Below these a setting the bounds admit defeats its purpose (a request that waits on a
# component takes a few milliseconds, a commit under load tens; a final snapshot of a
# large state hundreds).
SHORTEST_REQUEST_S = 0.1
SHORTEST_STOP_S = 1.0


def _stop_and_request_findings(config: Config) -> list[str]:
    """A warning for a request timeout or a stop's grace too short to be met."""
    found = []
    request_s, grace_s = config.daemon.request_timeout_s, config.daemon.shutdown_grace_s
    if request_s < SHORTEST_REQUEST_S:
        found.append(
            f"[daemon] request_timeout_s {request_s:g} is below {SHORTEST_REQUEST_S:g} s: a"
            " request that waits on a component (record_trade, the reads, the operator's"
            " changes) is answered `timeout` before it can be answered, and a trade may"
            " still be recorded after"
        )
    if grace_s < SHORTEST_STOP_S:
        found.append(
            f"[daemon] shutdown_grace_s {grace_s:g} is below {SHORTEST_STOP_S:g} s: a stop"
            " ends before its final snapshot is written (final_snapshot_failed), and the"
            " next start replays every trade since the last snapshot"
        )
    return found


Addresses = frozenset[str] | None
"""The IPv4 address a tcp socket binds; None: every address of the host."""

_SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


def _interface_address(name: str) -> str | None:
    """The IPv4 address ZeroMQ binds for a network interface named ``name``; "" for an
    interface without one; None when there is no such interface."""
    try:
        names = {known for _, known in socket.if_nameindex()}
    except OSError:  # no netlink (a sandbox): names are then resolved as host names
        return None
    if name not in names:
        return None
    request = struct.pack("256s", name.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            answer = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
        except OSError:
            return ""
    return socket.inet_ntoa(answer[20:24])


def _tcp_addresses(host: str) -> Addresses:
    """What a ZeroMQ tcp bind on ``host`` takes (it binds a name's first IPv4 address);
    ValueError (why) when it cannot bind. Names resolve on the machine this runs on."""
    if host == "*":
        return None
    inner = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(inner)
    except ValueError:
        address = None
    if address is not None and address.version == 6:
        raise ValueError(
            f"{host} is an IPv6 address, which alphad's sockets do not bind: give an IPv4 "
            "address or a name"
        )
    if address is None:
        on_interface = _interface_address(host)
        if on_interface == "":
            raise ValueError(f"network interface {host} has no IPv4 address to bind")
        if on_interface is not None:
            address = ipaddress.IPv4Address(on_interface)
    if address is None:
        try:
            found = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError):
            found = []
        if not found:
            raise ValueError(f"{host} is neither an address nor a name this host resolves")
        address = ipaddress.IPv4Address(found[0][4][0])
    return None if address.is_unspecified else frozenset([str(address)])


def _port_clashes(tcp: list[tuple[str, str]], metrics: MetricsConfig) -> list[str]:
    """tcp endpoints (and the metrics' port) that cannot all bind: an address that
    resolves to nothing, or one port on addresses that overlap (``localhost`` and
    ``127.0.0.1``, ``0.0.0.0`` and any other)."""
    errors: list[str] = []
    bound: list[tuple[str, str, int, Addresses]] = []

    def taken_by(port: int, addresses: Addresses) -> tuple[str, str] | None:
        for other, endpoint, other_port, theirs in bound:
            if port == other_port and (addresses is None or theirs is None or addresses & theirs):
                return other, endpoint
        return None

    for name, endpoint in tcp:
        # "tcp://SOURCE;HOST:PORT" binds HOST:PORT.
        host, _, port = endpoint.removeprefix("tcp://").rpartition(";")[2].rpartition(":")
        try:
            addresses = _tcp_addresses(host)
        except ValueError as exc:
            errors.append(f"key `daemon.{name}_endpoint`: {endpoint}: {exc}")
            continue
        clash = taken_by(int(port), addresses)
        if clash is not None and clash[1].lower() != endpoint.lower():  # the same: said above
            errors.append(
                f"key `daemon.{name}_endpoint`: {endpoint} takes port {port} on an address "
                f"the {clash[0]} socket ({clash[1]}) binds too; each needs its own port"
            )
        bound.append((name, endpoint, int(port), addresses))
    try:
        address = ipaddress.ip_address(metrics.address)
    except ValueError:
        return errors  # metrics_findings says why
    # An IPv4 address mapped into IPv6 (::ffff:127.0.0.1) binds that IPv4 address.
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # An IPv6 address other than "::" (which takes IPv4 too) shares no port with these.
    if metrics.enabled and (address.version == 4 or address.is_unspecified):
        clash = taken_by(
            metrics.port, None if address.is_unspecified else frozenset([str(address)])
        )
        if clash is not None:
            errors.append(
                f"key `metrics.port`: {metrics.port} on {metrics.address} is a port the "
                f"{clash[0]} socket ({clash[1]}) binds too; each needs its own port"
            )
    return errors


def full_batch_bytes(bars: int) -> tuple[int, int]:
    """The size of a ``market_bars`` request of ``bars`` bars at full precision (prices
    and volumes of 17 significant digits, a long symbol), in msgpack and in JSON."""
    bar = MarketBar(
        ts_ms=1_767_225_600_000,
        open=12_345.678901234567,
        high=12_345.678901234567,
        low=12_345.678901234567,
        close=12_345.678901234567,
        volume=1_234_567.8901234567,
    )
    request = MarketBars(symbol="BTC/USDT:USDT-PERP", bar_size="15m", bars=[bar] * bars)
    return len(encode(request)), len(encode(request, as_json=True))


def bars_findings(config: Config) -> list[str]:
    """A warning when a full ``market_bars`` batch does not fit in a message."""
    batch, limit = config.regimes.max_batch, config.daemon.max_message_size
    packed, text = full_batch_bytes(batch)
    if packed <= limit:
        return []
    fits, over = 0, batch  # the most bars that fit: full_batch_bytes(fits) <= limit
    while over - fits > 1:
        middle = (fits + over) // 2
        fits, over = (middle, over) if full_batch_bytes(middle)[0] <= limit else (fits, middle)
    return [
        f"[regimes] max_batch {batch}: a full batch of bars is about {packed:,} bytes in "
        f"msgpack ({text:,} in JSON), over [daemon] max_message_size {limit:,}, so it is "
        f"refused whole: send at most about {fits} bars a request, or raise "
        "max_message_size"
    ]


def _endpoint_problem(name: str, endpoint: str, allow_abstract: bool) -> str | None:
    transport, _, address = endpoint.partition("://")
    if transport == "ipc":
        if address.startswith("@"):
            if name == "admin":
                return (
                    f"{endpoint} is an abstract socket, which has no file mode: any local "
                    "user would get admin; use a socket file"
                )
            if not allow_abstract:
                return (
                    f"{endpoint} is an abstract socket, which has no file mode: any local "
                    "user could reach it; use a socket file, or accept that with "
                    "[daemon] allow_abstract_rpc = true"
                )
            return None
        if not os.path.isabs(address):
            return f"{endpoint}: the socket path is relative; give an absolute path"
        existing = ipc_path_problem(address)
        if existing:
            return existing
        size = len(os.fsencode(address))
        if size > IPC_PATH_MAX:
            return (
                f"socket path {address} is {size} bytes, over the {IPC_PATH_MAX} a unix "
                "socket path may have: choose a shorter directory"
            )
        return None
    if transport == "tcp" and name == "admin":
        # One curve_clients_dir lets keys into every tcp socket: the bots' keys would
        # reach force_status, set_component and forget_strategy.
        return (
            f"{endpoint}: admin is served on a socket file only (over tcp every bot key in"
            " curve_clients_dir would reach the operator's requests); an operator on"
            " another host runs the commands there, over ssh"
        )
    if transport == "tcp":
        host, _, port = address.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65_535:
            return f"{endpoint} is not tcp://HOST:PORT with a port from 1 to 65535"
        return None
    if transport == "inproc":
        return (
            f"{endpoint} lives inside the daemon, where no bot can reach it: use ipc:// or tcp://"
        )
    return f"{endpoint}: alphad serves ipc:// (a socket file) and tcp:// (with CURVE) only"


def _same_socket(endpoint: str) -> str:
    transport, _, address = endpoint.partition("://")
    if transport == "ipc" and not address.startswith("@"):
        return f"ipc://{os.path.normpath(address)}"
    return endpoint.lower()


def _not_finite(value: object, key: str) -> list[str]:
    """Infinities and NaNs anywhere in the config: a bound that holds nothing back."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"key `{key}`: {value} is not a finite number"]
    if isinstance(value, msgspec.Struct):
        found = []
        for field in value.__struct_fields__:
            found += _not_finite(getattr(value, field), f"{key}.{field}" if key else field)
        return found
    if isinstance(value, dict):
        return [p for name, item in value.items() for p in _not_finite(item, f"{key}.{name}")]
    if isinstance(value, list | tuple):
        return [p for item in value for p in _not_finite(item, key)]
    return []
