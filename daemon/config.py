"""Configuration: one TOML file decoded into frozen Structs; every key has a default.

A key the daemon does not know is an error that names the key and the file, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from actors.lifecycle import LifecycleConfig
from actors.performance import PerformanceConfig
from actors.scorer import ScorerConfig
from actors.weighting import StrategyConfig, WeightingConfig
from daemon.metrics import MetricsConfig
from daemon.security import SecurityConfig
from protocol.endpoints import default_runtime_dir
from protocol.messages import NAME_PATTERN


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line for the operator."""


class DaemonConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Sockets, directories and request handling."""

    state_dir: str = ""
    runtime_dir: str = ""
    rpc_endpoint: str = ""
    admin_endpoint: str = ""
    alerts_endpoint: str = ""
    max_message_size: Annotated[int, Meta(ge=256, le=64 * 1024 * 1024)] = 64 * 1024
    request_timeout_s: Annotated[float, Meta(gt=0, le=300)] = 5.0
    mailbox_size: Annotated[int, Meta(ge=16, le=1_000_000)] = 8192
    shutdown_grace_s: Annotated[float, Meta(gt=0, le=300)] = 10.0
    alerts_hwm: Annotated[int, Meta(ge=100, le=10_000_000)] = 100_000
    # Distinct topic prefixes one subscriber (process) may hold on an alerts socket; a
    # subscriber going over is refused and disconnected (docs/protocol.md#alerts).
    max_alert_subscriptions: Annotated[int, Meta(ge=1, le=100_000)] = 1_000
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_restarts: Annotated[int, Meta(ge=0, le=1000)] = 5
    restart_window_s: Annotated[float, Meta(gt=0)] = 60.0


class StoreConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """SQLite durability and batching."""

    synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    batch_max: Annotated[int, Meta(ge=1, le=10_000)] = 512
    # Below the request timeout, so a locked database is answered storage_unavailable.
    busy_timeout_ms: Annotated[int, Meta(ge=0, le=600_000)] = 2_000
    snapshot_interval_s: Annotated[float, Meta(ge=1, le=86_400)] = 60.0
    snapshot_every_trades: Annotated[int, Meta(ge=100, le=10_000_000)] = 20_000
    history_keep: Annotated[int, Meta(ge=1, le=1_000_000)] = 10_000
    snapshots_keep: Annotated[int, Meta(ge=1, le=1000)] = 3
    # The journal of scored signals grows with every score_signal (about 200 bytes each);
    # set this to delete signals older than so many days, hourly. Unset: keep them all.
    # Trades, outcomes and the audit log are never deleted.
    signals_keep_days: Annotated[float, Meta(ge=1, le=36_500)] | None = None


class EngineConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Optimization cycles."""

    update_interval_s: Annotated[float, Meta(ge=0, le=30 * 86_400)] = 3600.0


class LimitsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Caps that keep a misbehaving bot from exhausting memory."""

    max_strategies: Annotated[int, Meta(ge=1, le=100_000)] = 1_000
    max_symbols: Annotated[int, Meta(ge=1, le=1_000_000)] = 10_000
    max_regimes: Annotated[int, Meta(ge=1, le=10_000)] = 64
    # Groups by strategy×symbol, symbol×regime and strategy×symbol×regime kept (about
    # 1.5 KiB each with a window of 100 trades); the groups by strategy, and by
    # strategy and regime, are always kept.
    max_groups: Annotated[int, Meta(ge=1, le=10_000_000)] = 20_000
    # update_optimization on the rpc socket at most once per this many seconds (0: no
    # limit); the admin socket is never limited.
    optimization_interval_s: Annotated[float, Meta(ge=0, le=86_400)] = 1.0


class ComponentsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Optimization components on at start (an operator's later switch wins)."""

    scorer: bool = True
    weighting: bool = True
    lifecycle: bool = True


class Config(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The whole configuration file."""

    daemon: DaemonConfig = DaemonConfig()
    store: StoreConfig = StoreConfig()
    engine: EngineConfig = EngineConfig()
    limits: LimitsConfig = LimitsConfig()
    components: ComponentsConfig = ComponentsConfig()
    metrics: MetricsConfig = MetricsConfig()
    security: SecurityConfig = SecurityConfig()
    performance: PerformanceConfig = PerformanceConfig()
    weighting: WeightingConfig = WeightingConfig()
    scorer: ScorerConfig = ScorerConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    strategies: dict[str, StrategyConfig] = msgspec.field(default_factory=dict)


_KEY_IN_PATH = re.compile(r"`\$\.(?P<path>[^`]+)`")


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a TOML config file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc})") from None
    strategies = raw.pop("strategies", {})
    if not isinstance(strategies, dict):
        raise ConfigError(f"{file}: key `strategies`: expected a table of strategies")
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{file}: {_describe(str(exc))}") from None
    parsed: dict[str, StrategyConfig] = {}
    for name, table in strategies.items():
        if not _STRATEGY_NAME.match(name) or len(name) > 64:
            raise ConfigError(f"{file}: key `strategies.{name!r}`: not a valid strategy name")
        try:
            parsed[name] = msgspec.convert(table, StrategyConfig)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{file}: {_describe(str(exc), f'strategies.{name}')}") from None
    return msgspec.structs.replace(config, strategies=parsed)


_STRATEGY_NAME = re.compile(NAME_PATTERN)
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")


def _describe(error: str, prefix: str = "") -> str:
    """Turn msgspec's message into one naming the TOML key."""
    unknown = _UNKNOWN_FIELD.match(error)
    match = _KEY_IN_PATH.search(error)
    path = match.group("path").replace("[", ".").replace("]", "").replace("'", "") if match else ""
    path = ".".join(p for p in (prefix, path) if p)
    if unknown is not None:
        return f"unknown key `{'.'.join(p for p in (path, unknown.group('field')) if p)}`"
    if match is None and not prefix:
        return error
    text = error[: match.start()].rstrip(" -") if match else error
    return f"key `{path}`: {text}"


class Paths(msgspec.Struct, frozen=True, kw_only=True):
    """Where the daemon keeps its database and sockets."""

    state_dir: Path
    runtime_dir: Path
    database: Path
    rpc: str
    admin: str
    alerts: str


def resolve_paths(config: Config, state_dir: str | None, runtime_dir: str | None) -> Paths:
    """Command line beats config beats systemd's directories beats per-user defaults."""
    state = Path(
        state_dir
        or config.daemon.state_dir
        or _first_of(os.environ.get("STATE_DIRECTORY"))
        or _default_state_dir()
    )
    runtime = Path(
        runtime_dir
        or config.daemon.runtime_dir
        or _first_of(os.environ.get("RUNTIME_DIRECTORY"))
        or default_runtime_dir()
    )
    return Paths(
        state_dir=state,
        runtime_dir=runtime,
        database=state / "alphad.db",
        rpc=config.daemon.rpc_endpoint or f"ipc://{runtime / 'rpc.sock'}",
        admin=config.daemon.admin_endpoint or f"ipc://{runtime / 'admin.sock'}",
        alerts=config.daemon.alerts_endpoint or f"ipc://{runtime / 'alerts.sock'}",
    )


def _first_of(value: str | None) -> str | None:
    # systemd passes a colon-separated list when several directories are configured.
    return value.split(":")[0] if value else None


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "alphad"
