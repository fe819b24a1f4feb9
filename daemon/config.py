"""Configuration: one TOML file decoded into frozen Structs; every key has a default.

A key the daemon does not know is an error that names the key and the file, so a
typo never silently falls back to a default. `check-config` and `run` judge a file by
the same function, ``daemon.config_checks.checked_config``, so a file one passes the
other accepts too; every problem in it is reported, one line each.

This module is the config's shape and the models built from it, and imports nothing of
the running daemon (its sockets, metrics, keys): the offline tools read it too.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from alphad.actors.admission import Admission
from alphad.actors.events import UNKNOWN_REGIME
from alphad.actors.lifecycle import LifecycleModel
from alphad.actors.lifecycle_shapes import LifecycleConfig
from alphad.actors.market import RegimesConfig
from alphad.actors.optimizer import Optimizer
from alphad.actors.performance import PerformanceConfig, PerformanceModel
from alphad.actors.regime_lifecycle import RegimeLifecycle
from alphad.actors.regimes import REGIMES
from alphad.actors.scorer_config import ScorerConfig
from alphad.actors.scorer_model import ScorerModel
from alphad.actors.weighting import WeightingModel
from alphad.actors.weighting_config import RegimeLimits, StrategyConfig, WeightingConfig
from alphad.protocol.endpoints import (
    client_runtime_dir,
    client_state_dir,
    default_runtime_dir,
    default_state_dir,
)
from alphad.protocol.messages import MIN_MESSAGE_SIZE, NAME_PATTERN


class ConfigError(Exception):
    """The configuration cannot be used: one line for the operator per problem."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class DaemonConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Sockets, directories and request handling."""

    state_dir: str = ""
    runtime_dir: str = ""
    rpc_endpoint: str = ""
    admin_endpoint: str = ""
    alerts_endpoint: str = ""
    # The same alerts, topics and seq as alerts_endpoint, with JSON payloads.
    alerts_json_endpoint: str = ""
    max_message_size: Annotated[int, Meta(ge=MIN_MESSAGE_SIZE, le=64 * 1024 * 1024)] = 64 * 1024
    request_timeout_s: Annotated[float, Meta(gt=0, le=300)] = 5.0
    mailbox_size: Annotated[int, Meta(ge=16, le=1_000_000)] = 8192
    shutdown_grace_s: Annotated[float, Meta(gt=0, le=300)] = 10.0
    alerts_hwm: Annotated[int, Meta(ge=100, le=10_000_000)] = 100_000
    # Distinct topic prefixes one subscriber (process) may hold on an alerts socket; a
    # subscriber going over is refused and disconnected (docs/protocol.md#alerts).
    max_alert_subscriptions: Annotated[int, Meta(ge=1, le=100_000)] = 1_000
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_restarts: Annotated[int, Meta(ge=0, le=1000)] = 5
    restart_window_s: Annotated[float, Meta(gt=0, le=86_400)] = 60.0
    # An abstract socket (ipc://@name) has no file, hence no mode: any local user reaches
    # it. Refused for admin always; for rpc and alerts only with this set.
    allow_abstract_rpc: bool = False


class StoreConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """SQLite durability and batching."""

    synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    batch_max: Annotated[int, Meta(ge=1, le=10_000)] = 512
    # Below the request timeout and the client's default attempt (2 s), so that a bot
    # whose write waits on a lock another program holds is answered storage_unavailable
    # (at 2 000 the client usually gave up first and said timeout).
    busy_timeout_ms: Annotated[int, Meta(ge=0, le=600_000)] = 1_000
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


class MetricsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[metrics]``: the Prometheus endpoint."""

    enabled: bool = True
    address: str = "127.0.0.1"  # an IP address; "::1", "0.0.0.0" and "::" too
    port: Annotated[int, msgspec.Meta(ge=1, le=65_535)] = 9464
    strategy_refresh_s: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 5.0
    # A file holding a secret; scrapes must then send `Authorization: Bearer <secret>`
    # (Prometheus: `authorization: {credentials_file: ...}`). Unset: no token asked.
    token_file: str = ""


class SecurityConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[security]``: CURVE keys for tcp:// endpoints."""

    curve_server_secret: str = ""  # a .key_secret file written by `alphad keygen`
    curve_clients_dir: str = ""  # the public .key files of the bots allowed in
    # For `alphad status/health/report/top/watch` against a tcp:// daemon: its server.key and
    # this operator's own .key_secret (whose .key is in the daemon's curve_clients_dir).
    curve_server_key: str = ""
    curve_client_secret: str = ""


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
    regimes: RegimesConfig = RegimesConfig()
    strategies: dict[str, StrategyConfig] = msgspec.field(default_factory=dict)


class Models(msgspec.Struct, kw_only=True):
    """Every model of the daemon, built from the config (``build_models``)."""

    performance: PerformanceModel
    scorer: ScorerModel
    optimizer: Optimizer


def build_models(
    config: Config,
    state: Mapping[str, Any] | None = None,
    *,
    id_prefix: str,
    judging_only: bool = False,
) -> Models:
    """Every model from a snapshot's ``state`` (each part fresh where it is missing), the
    component switches the config's unless an operator switched one (its ``switched_ms``
    kept in the snapshot).

    The daemon builds its models here at start, the replay its own (fresh, keeping only
    what the cycle judges: ``judging_only``), so both run the same models the same way.
    Raises on a snapshot that does not restore.
    """
    state = state or {}
    max_groups = config.limits.max_groups
    lifecycle_config = config.lifecycle
    # The per-regime lifecycle's edge test and peak stop read every trade in a regime once.
    regime_unread = lifecycle_config.per_regime and (
        lifecycle_config.edge_loss > 0.0 or lifecycle_config.peak_drawdown > 0.0
    )
    performance = (
        PerformanceModel.from_state(
            config.performance,
            state["performance"],
            max_groups=max_groups,
            regime_unread=regime_unread,
        )
        if "performance" in state
        else PerformanceModel(
            config.performance,
            judging_only=judging_only,
            max_groups=max_groups,
            regime_unread=regime_unread,
        )
    )
    weighting = (
        WeightingModel.from_state(config.weighting, config.strategies, state["weighting"])
        if "weighting" in state
        else WeightingModel(config.weighting, config.strategies)
    )
    lifecycle = (
        LifecycleModel.from_state(config.lifecycle, config.strategies, state["lifecycle"])
        if "lifecycle" in state
        else LifecycleModel(config.lifecycle, config.strategies)
    )
    regimes = RegimeLifecycle.from_state(
        config.lifecycle, config.strategies, state.get("regime_lifecycle", {})
    )
    scorer_state = state.get("scorer")
    scorer = (
        ScorerModel.from_state(
            config.scorer, id_prefix, scorer_state["model"], config.lifecycle.paper_trades
        )
        if scorer_state
        else ScorerModel(config.scorer, id_prefix, config.lifecycle.paper_trades)
    )
    engine = state.get("engine", {})
    switches = {
        "scorer": config.components.scorer,
        "weighting": config.components.weighting,
        "lifecycle": config.components.lifecycle,
    }
    # Only an operator's switch outlives a restart over the config: a snapshot keeps
    # every switch, also those the config set (one from before ``switched_ms`` was kept
    # is taken whole, as it was then).
    saved = engine.get("switches", {})
    switched = engine.get("switched_ms")
    switches.update(
        saved if switched is None else {k: v for k, v in saved.items() if k in switched}
    )
    scorer.enabled = switches["scorer"]
    optimizer = Optimizer(
        weighting,
        lifecycle,
        cycles=int(engine.get("cycle", 0)),
        switches=switches,
        switched_ms={str(k): int(v) for k, v in engine.get("switched_ms", {}).items()},
        regimes=regimes,
    )
    return Models(performance=performance, scorer=scorer, optimizer=optimizer)


def build_admission(config: Config, on_new_strategy: Callable[[str], None]) -> Admission:
    """The admission of names under the config's limits (the daemon's and the replay's)."""
    return Admission(
        configured=config.strategies.keys(),
        auto_register=config.weighting.auto_register,
        max_strategies=config.limits.max_strategies,
        max_symbols=config.limits.max_symbols,
        max_regimes=config.limits.max_regimes,
        on_new_strategy=on_new_strategy,
    )


_T = TypeVar("_T")
_KEY_IN_PATH = re.compile(r"(?: - at )?`\$\.?(?P<path>[^`]*)`")


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a TOML config file; ``None`` gives the defaults."""
    config, problems = read_config(path)
    if problems:
        raise ConfigError(problems)
    return config


def read_config(path: str | os.PathLike[str] | None) -> tuple[Config, list[str]]:
    """The config, with the default in place of every key in error, and every error."""
    if path is None:
        return Config(), []
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not a TOML file (not UTF-8 text)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc})") from None
    except RecursionError:
        nested = "arrays or tables nested too deeply"
        raise ConfigError(f"{file}: not a config file ({nested})") from None
    problems: list[str] = []
    sections: dict[str, msgspec.Struct] = {}
    fields: dict[str, type[msgspec.Struct]] = {
        field.name: field.type for field in msgspec.structs.fields(Config)
    }
    for name, table in raw.items():
        if name == "strategies":
            continue
        if name not in fields:
            problems.append(f"{file}: unknown key `{name}`")
            continue
        converted = _convert(table, fields[name], name, problems, file)
        if converted is not None:
            sections[name] = converted
    strategies = raw.get("strategies", {})
    parsed: dict[str, StrategyConfig] = {}
    if not isinstance(strategies, dict):
        problems.append(f"{file}: key `strategies`: expected a table of strategies")
        strategies = {}
    for name, table in strategies.items():
        if not is_name(name):
            problems.append(f"{file}: key `strategies.{name!r}`: not a valid strategy name")
            continue
        table = _without_bad_regimes(name, table, problems, file)
        strategy = _convert(table, StrategyConfig, f"strategies.{name}", problems, file)
        if strategy is not None:
            parsed[name] = strategy
    return Config(**sections, strategies=parsed), problems  # type: ignore[arg-type]


NAME_RULE = "1 – 64 of `A-Z a-z 0-9 _ . : / @ + -`, not starting with a symbol"
"""A strategy's, symbol's or regime's name, as the protocol's ``Name`` takes it."""


def is_name(text: str) -> bool:
    """Whether ``text`` can name a strategy, a symbol or a regime (``NAME_RULE``)."""
    return len(text) <= 64 and _NAME.match(text) is not None
REGIME_NAMES = f"a regime is {NAME_RULE}, as bots send it or as detected ({', '.join(REGIMES)})"


def _without_bad_regimes(name: str, table: object, problems: list[str], file: Path) -> object:
    """The strategy's table with each of its ``regimes`` checked alone: a key that cannot
    name a regime, or a regime's table in error, is one line naming the strategy and the
    key, and is left out, so the rest of the file is checked with the others. (msgspec's
    own message for a bad key is the name's regex, and says neither; for a bad value in
    one regime it says `regimes[...]`, not which regime.)"""
    if not isinstance(table, dict) or not isinstance(table.get("regimes"), dict):
        return table
    regimes: dict[str, object] = table["regimes"]
    kept: dict[str, RegimeLimits] = {}
    for regime, limits in regimes.items():
        quoted = json.dumps(regime, ensure_ascii=False)
        key = f"strategies.{name}.regimes.{quoted}"
        if regime == UNKNOWN_REGIME:
            problems.append(
                f"{file}: key `{key}`: `{regime}` is the regime of trades without one, never"
                f" judged on its own (strategy `{name}`); name a regime it trades in"
            )
        elif not is_name(regime):
            problems.append(
                f"{file}: key `{key}`: {quoted} is not a regime name (strategy `{name}`);"
                f" {REGIME_NAMES}"
            )
        else:
            converted = _convert(
                limits, RegimeLimits, f"strategies.{name}.regimes.{regime}", problems, file
            )
            if converted is not None:
                kept[regime] = converted
    return {**table, "regimes": kept}


def _convert(
    table: object, kind: type[_T], prefix: str, problems: list[str], file: Path
) -> _T | None:
    """One section; on failure each of its keys alone, so every bad key is named, and the
    section from its good keys, so the rest of the file is checked with them."""
    try:
        return msgspec.convert(table, kind)
    except msgspec.ValidationError as exc:
        whole = str(exc)
    found = []
    good: dict[str, object] = {}
    if isinstance(table, dict) and len(table) > 1:
        for key, value in table.items():
            try:
                msgspec.convert({key: value}, kind)
            except msgspec.ValidationError as exc:
                # A rule between keys fails for a key alone too: report it once, whole.
                if " - at `$." in str(exc) or _UNKNOWN_FIELD.match(str(exc)):
                    found.append(f"{file}: {_describe(str(exc), prefix)}")
                    continue
            good[key] = value
    problems.extend(found or [f"{file}: {_describe(whole, prefix)}"])
    if not found:
        return None
    try:
        return msgspec.convert(good, kind)
    except msgspec.ValidationError as exc:
        # A rule between the good keys (soft above hard): a problem of its own.
        problems.append(f"{file}: {_describe(str(exc), prefix)}")
        return None


_NAME = re.compile(NAME_PATTERN)
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")


def _describe(error: str, prefix: str = "") -> str:
    """Turn msgspec's message into one naming the TOML key."""
    unknown = _UNKNOWN_FIELD.match(error)
    match = _KEY_IN_PATH.search(error) if " - at `$" in error else None
    path = match.group("path") if match else ""
    # A key of a table of names (regime_factors) is `[...]` to msgspec.
    path = path.replace("[...]", "").replace("[", ".").replace("]", "").replace("'", "")
    path = ".".join(p for p in (prefix, path) if p)
    if unknown is not None:
        return f"unknown key `{'.'.join(p for p in (path, unknown.group('field')) if p)}`"
    if not path:
        return error
    text = error[: match.start()] if match else error
    return f"key `{path}`: {text}"


class Paths(msgspec.Struct, frozen=True, kw_only=True):
    """Where the daemon keeps its database and sockets."""

    state_dir: Path
    runtime_dir: Path
    database: Path
    rpc: str
    admin: str
    alerts: str
    alerts_json: str


def resolve_paths(
    config: Config, state_dir: str | None, runtime_dir: str | None, *, client: bool = False
) -> Paths:
    """Command line beats config beats systemd's directories beats per-user defaults
    (``client``: an operator's command, which also finds the shipped unit's daemon,
    ``client_runtime_dir`` and ``client_state_dir``)."""
    state = Path(
        state_dir
        or config.daemon.state_dir
        or _first_of(os.environ.get("STATE_DIRECTORY"))
        or (client_state_dir() if client else default_state_dir())
    )
    runtime = Path(
        runtime_dir
        or config.daemon.runtime_dir
        or _first_of(os.environ.get("RUNTIME_DIRECTORY"))
        or (client_runtime_dir() if client else default_runtime_dir())
    )
    # A directory given on the command line is the operator's, relative to where they are.
    state, runtime = Path(os.path.abspath(state)), Path(os.path.abspath(runtime))
    for kind, directory in (("state", state), ("runtime", runtime)):
        if not _utf8(str(directory)):
            # Socket endpoints are UTF-8 text (ZeroMQ), and so is the database's name.
            raise ConfigError(
                f"{str(directory)!r}: the {kind} directory's name is not UTF-8 text; give"
                " one that is"
            )
    return Paths(
        state_dir=state,
        runtime_dir=runtime,
        database=state / "alphad.db",
        rpc=config.daemon.rpc_endpoint or f"ipc://{runtime / 'rpc.sock'}",
        admin=config.daemon.admin_endpoint or f"ipc://{runtime / 'admin.sock'}",
        alerts=config.daemon.alerts_endpoint or f"ipc://{runtime / 'alerts.sock'}",
        alerts_json=config.daemon.alerts_json_endpoint or f"ipc://{runtime / 'alerts_json.sock'}",
    )


def _utf8(text: str) -> bool:
    """Whether ``text`` (a path, which may hold a file name's undecodable bytes) is UTF-8."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _first_of(value: str | None) -> str | None:
    # systemd passes a colon-separated list when several directories are configured.
    return value.split(":")[0] if value else None


def window_findings(config: Config) -> list[str]:
    """A warning for each rule that waits for more trades than a group's window holds
    (its figures count the window's trades only, so it would never act); the per-regime
    lifecycle's only when it runs (``[lifecycle] per_regime``)."""
    window = config.performance.window_trades
    lifecycle, weighting, scorer = config.lifecycle, config.weighting, config.scorer
    needs: list[tuple[str, int, int | None, str]] = [
        (
            "[lifecycle] min_trades",
            lifecycle.min_trades,
            LifecycleConfig().min_trades,
            "the lifecycle's judgement of a strategy",
        ),
        (
            "[weighting] min_trades",
            weighting.min_trades,
            WeightingConfig().min_trades,
            "the weighting of a strategy on its own record",
        ),
        (
            "[scorer] regime_min_trades",
            scorer.regime_min_trades,
            ScorerConfig().regime_min_trades,
            "the scorer's regime fit",
        ),
    ]
    if lifecycle.per_regime:
        needs.append(
            (
                "[lifecycle] regime_min_trades",
                lifecycle.regime_min_trades,
                LifecycleConfig().regime_min_trades,
                "the lifecycle's judgement of a strategy in a regime",
            )
        )
        for name, strategy in config.strategies.items():
            for regime, limits in strategy.regimes.items():
                if limits.min_trades is not None:
                    needs.append(
                        (
                            f"[strategies.{name}.regimes.{regime}] min_trades",
                            limits.min_trades,
                            None,
                            "the lifecycle's judgement of this strategy in this regime",
                        )
                    )
    return [
        f"{key} = {count}{' (the default)' if count == default else ''} is above "
        f"[performance] window_trades {window}: a window never holds that many trades, so "
        f"{rule} never acts"
        for key, count, default, rule in needs
        if count > window
    ]
