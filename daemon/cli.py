"""The ``alphad`` command line. A user mistake is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, get_args

import msgspec

from alphad.daemon.config import Config, ConfigError, Paths, load_config, resolve_paths
from alphad.daemon.config_checks import checked_config
from alphad.daemon.entry import EXIT_INTERRUPTED
from alphad.protocol.endpoints import EndpointError
from alphad.protocol.messages import LOWER_IS_BETTER, RankedMetric

if TYPE_CHECKING:
    from alphad.protocol.curve import CurveKeys

RANKED_METRICS: tuple[str, ...] = get_args(RankedMetric)
REPORT_TOP_N = 5  # the report's top strategies

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_READER_GONE = 128 + signal.SIGPIPE


class CommandError(Exception):
    """A failure to report as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse's, with a bad argument refused in one line (it printed the usage first,
    three to five lines), as every other failure of a command is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (`{self.prog} --help` for the usage)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="alphad", description="Signal scoring and strategy lifecycle daemon for trading bots."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_location(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", type=_path, help="TOML configuration file")
        p.add_argument("--state-dir", type=_path, help="directory of the database")
        p.add_argument("--runtime-dir", type=_path, help="directory of the sockets")
        return p

    def with_keys(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        with_location(p)
        p.add_argument(
            "--server-key", type=_path, metavar="FILE", help="the daemon's server.key (CURVE)"
        )
        p.add_argument(
            "--client-key", type=_path, metavar="FILE", help="this client's .key_secret (CURVE)"
        )
        return p

    with_location(sub.add_parser("run", help="run the daemon in the foreground"))
    status = with_keys(sub.add_parser("status", help="show a running daemon's status"))
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument("--timeout", type=_seconds, default=2.0, help="seconds to wait")
    watch = with_keys(sub.add_parser("watch", help="print alerts as they are published"))
    watch.add_argument("topics", nargs="*", help="topic prefixes (default: all)")
    watch.add_argument("--json", action="store_true", help="print JSON lines")
    report = with_keys(sub.add_parser("report", help="print a running daemon's report"))
    report.add_argument("--format", choices=("text", "json", "csv"), default="text")
    report.add_argument("--timeout", type=_seconds, default=5.0, help="seconds to wait")
    report.add_argument(
        "--top",
        metavar="METRIC",
        choices=RANKED_METRICS,
        help="rank the top strategies by this figure, the best first: the lowest for a "
        "drawdown or a loss (default expectancy)",
    )
    report.add_argument(
        "--min-trades",
        type=_trades,
        metavar="N",
        help="leave strategies with fewer recent trades out of the top (default 20)",
    )
    health = with_keys(
        sub.add_parser(
            "health", help="show each strategy's lifecycle status, and its status in each regime"
        )
    )
    health.add_argument("strategy", nargs="?", help="this strategy only")
    health.add_argument("--regime", help="each strategy's status in this regime only")
    health.add_argument("--json", action="store_true", help="print JSON")
    health.add_argument("--timeout", type=_seconds, default=2.0, help="seconds to wait")
    top = with_keys(sub.add_parser("top", help="live terminal dashboard"))
    top.add_argument(
        "--interval", type=_refresh_seconds, default=1.0, help="seconds between refreshes"
    )
    keygen = sub.add_parser("keygen", help="write a CURVE key pair for tcp:// endpoints")
    keygen.add_argument("directory", type=_given_path)
    keygen.add_argument("name", help="e.g. server, or the bot's name")
    keygen.add_argument("--force", action="store_true", help="replace an existing key pair")
    sub.add_parser("schema", help="print the JSON Schema of every message")
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", type=_given_path)
    check_db = sub.add_parser(
        "check-db", help="check the database file with SQLite's integrity_check (read-only)"
    )
    check_db.add_argument("--config", type=_path, help="TOML configuration file")
    where = check_db.add_mutually_exclusive_group()
    where.add_argument("--state-dir", type=_path, help="directory of the database")
    where.add_argument("--database", type=_path, help="the database file itself")
    simulate = sub.add_parser("simulate", help="write a simulated history of signals")
    simulate.add_argument("--scenario", required=True, help="scenario name (see docs/replay.md)")
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    simulate.add_argument(
        "--out", type=_given_path, required=True, help="output file, .csv or .jsonl"
    )
    simulate.add_argument(
        "--bars",
        type=_path,
        help="also write the market's bars, with their true regime, as .csv or .jsonl",
    )
    replay = sub.add_parser("replay", help="replay a history of signals offline")
    replay.add_argument(
        "file", type=_given_path, help="signals as .csv or .jsonl (see docs/replay.md)"
    )
    replay.add_argument("--config", type=_path, help="TOML configuration file (as the daemon's)")
    replay.add_argument("--format", choices=("text", "json"), default="text")
    replay.add_argument(
        "--shadow-outcomes", action="store_true", help="also learn outcomes of refused signals"
    )
    replay.add_argument(
        "--periods-per-year",
        type=float,
        default=365.0,
        help="annualizes the daily Sharpe of calendar days (365, whatever the market)",
    )
    replay.add_argument("--report", type=_path, help="also write a self-contained HTML report here")
    replay.add_argument(
        "--bars",
        type=_path,
        help="the market's bars as .csv or .jsonl, for detected regimes (docs/replay.md)",
    )
    replay.add_argument(
        "--hmm",
        action="store_true",
        help="also score the hidden Markov model against the bars' true regimes, beside the"
        " rule set (offline; the signals still count under the rule set)",
    )
    replay.add_argument(
        "--bootstrap",
        type=int,
        default=2000,
        metavar="N",
        help="resamples of the test 'could it be luck?' (default 2000; 0: skip it)",
    )
    return parser


MAX_TOPIC_PREFIX_BYTES = 54
"""The longest prefix a subscription to the alerts can carry: the daemon's alerts socket
takes subscription messages of at most 64 bytes (``MAX_SUBSCRIPTION_BYTES``), of which
the subscribe command's own name and flag take 10."""
MAX_WAIT_S = 3600.0
"""The longest --timeout or --interval taken: an hour (ZeroMQ's poll and the clock's
sleep take no infinite or astronomic number of seconds)."""
MIN_REFRESH_S = 0.1
"""The shortest --interval of ``top``: faster refreshes only load the daemon."""


def _path(text: str) -> str:
    """A path option: an empty one would quietly mean the default (another database,
    another daemon's sockets), so it is refused."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path; leave the option out for the default")
    return text


def _given_path(text: str) -> str:
    """A path the command needs (it has no default): never empty."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return text


def _seconds(text: str, least: float = 0.001) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and least <= value <= MAX_WAIT_S):  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"expected seconds from {least:g} to"
            f" {MAX_WAIT_S:g}, not {text!r}"
        )
    return value


def _refresh_seconds(text: str) -> float:
    return _seconds(text, MIN_REFRESH_S)


def _trades(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 1_000_000_000:
        raise argparse.ArgumentTypeError(f"expected 0 to 1000000000 trades, not {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``alphad`` console script."""
    args = _parser().parse_args(argv)
    if sys.stdout is None:
        if args.command not in ANSWER_FIRST:
            _say(STDOUT_CLOSED)
            return EXIT_FAILURE
        # A question answered first: its own refusal (an unknown strategy, a config's
        # problems, all on stderr) is the line to see; only an answer meets the closed
        # stdout.
        sys.stdout = _ClosedStdout()
    try:
        code = _dispatch(args)
        # What is still buffered fails here, not in the interpreter's exit.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return reader_gone()
    except (ConfigError, CommandError) as exc:
        for line in str(exc).splitlines():
            _say(line)
        return EXIT_FAILURE
    except StdoutClosed:
        _say(STDOUT_CLOSED)
        return EXIT_FAILURE
    except OSError as exc:
        # Standard output full or broken (``> /dev/full``): what is still buffered would
        # fail again in the interpreter's exit, so it goes nowhere.
        _say(f"{exc.filename}: {exc.strerror}" if exc.filename else f"cannot write: {exc.strerror}")
        _stdout_to_devnull()
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except MemoryError:
        if args.command == "run":
            raise
        # A file too large for the memory it may use (a replay of millions of rows under
        # a ulimit): the operator's, so one line.
        _say(f"out of memory: the input of `{args.command}` does not fit in the memory it may use")
        return EXIT_FAILURE
    except Exception as exc:
        ours = isinstance(exc, EndpointError)
        if args.command == "run" or not (ours or type(exc).__module__.startswith("zmq.")):
            raise  # the daemon's own: its start says why in one line, or it is a bug
        # An endpoint ZeroMQ refuses to connect to (an ipc path past the socket's 107
        # bytes, a scheme it does not know): the operator's, so one line.
        _say(f"cannot connect: {exc}")
        return EXIT_FAILURE


STDOUT_CLOSED = "standard output is closed: there is nowhere to write to"
ANSWER_FIRST = frozenset(("status", "report", "health", "check-config", "check-db", "schema"))
"""Commands that only read and answer: with stdout closed they still run, so that their
own error is the line on stderr; the others (that act, wait or write) are refused first."""


class StdoutClosed(OSError):
    """A write to the standard output the command was started without."""


class _ClosedStdout(io.TextIOBase):
    """sys.stdout when there is none: every write refused with ``StdoutClosed``."""

    def write(self, text: str) -> int:
        raise StdoutClosed(STDOUT_CLOSED)

    def flush(self) -> None:
        return None


def _say(line: str) -> None:
    if sys.stderr is not None:
        print(f"alphad: {line}", file=sys.stderr)


def reader_gone() -> int:
    """``alphad report | head``: the reader left; end quietly, as a command killed by SIGPIPE
    would, with 128 + SIGPIPE."""
    _stdout_to_devnull()
    return EXIT_READER_GONE


def _stdout_to_devnull() -> None:
    # The interpreter flushes stdout once more at exit and would print that failure too:
    # point stdout at /dev/null first (the recipe of Python's signal module docs).
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "schema":
        print(schema_json())
        return 0
    if command == "keygen":
        from alphad.daemon.security import SecurityError, keygen

        try:
            public, secret = keygen(args.directory, args.name, force=args.force)
        except OSError as exc:
            raise CommandError(f"cannot write keys in {args.directory}: {exc.strerror}") from None
        except SecurityError as exc:
            raise CommandError(str(exc)) from None
        print(f"public key: {public}\nsecret key: {secret} (mode 0600; keep it private)")
        return 0
    if command == "check-config":
        config, _, warnings = checked_config(args.file, None, None)
        for warning in warnings:
            print(f"alphad: warning: {warning}", file=sys.stderr)
        print(f"{args.file}: ok ({len(config.strategies)} strategies configured)")
        return 0
    if command == "run":
        config, paths, warnings = checked_config(args.config, args.state_dir, args.runtime_dir)
        return run(config, paths, warnings)
    if command == "check-db":
        return check_database(args)
    if command in ("simulate", "replay"):
        from alphad.replay.cli import replay_command
        from alphad.replay.signals import InputError
        from alphad.replay.simulate import simulate_command

        try:
            return simulate_command(args) if command == "simulate" else replay_command(args)
        except InputError as exc:
            raise CommandError(str(exc)) from None
    config, paths = _locate(args)
    curve = _curve_keys(args, config)
    if command == "status":
        return status(paths, as_json=args.json, timeout_s=args.timeout, curve=curve)
    if command == "report":
        return report(
            paths,
            args.format,
            timeout_s=args.timeout,
            curve=curve,
            top=args.top,
            min_trades=args.min_trades,
        )
    if command == "health":
        return health(
            paths,
            args.strategy,
            regime=args.regime,
            as_json=args.json,
            timeout_s=args.timeout,
            curve=curve,
        )
    if command == "top":
        from alphad.daemon.top import run_top

        if not sys.stdout.isatty():
            # Redrawn in place until `q`: into a file or a pipe it would run forever.
            raise CommandError(
                "top draws a live dashboard and needs a terminal; for a snapshot use"
                " `alphad report`, for alerts as they come `alphad watch`"
            )

        return run_top(paths.rpc, paths.alerts, args.interval, curve=curve)
    if command == "watch":
        return watch(paths, args.topics, as_json=args.json, curve=curve)
    raise CommandError(f"unknown command {command}")


def _locate(args: argparse.Namespace) -> tuple[Config, Paths]:
    config = load_config(args.config)
    return config, resolve_paths(config, args.state_dir, args.runtime_dir, client=True)


def run(config: Config, paths: Paths, warnings: Sequence[str] = ()) -> int:
    """Run the daemon on uvloop until it is told to stop (the config already checked)."""
    import structlog
    import uvloop

    from alphad.daemon.app import Daemon
    from alphad.daemon.logs import configure_logging, flush_logs
    from alphad.daemon.recovery import StartupError
    from alphad.daemon.supervisor import LOG_FLUSH_S

    configure_logging(config.daemon.log_level)
    for warning in warnings:
        structlog.get_logger("alphad").warning("config_warning", warning=warning)

    async def serve() -> int:
        return await Daemon(config, paths).serve()

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(serve())
    except StartupError as exc:
        raise CommandError(str(exc)) from None
    finally:
        flush_logs(LOG_FLUSH_S)  # the last lines, unless stdout has stalled


def status(paths: Paths, *, as_json: bool, timeout_s: float, curve: CurveKeys | None) -> int:
    """Print a running daemon's status."""
    reply = _ask(paths, timeout_s, curve, lambda client: client.get_status())
    if as_json:
        print(msgspec.json.encode(reply).decode())
        return 0
    print(f"alphad {reply.version} up {reply.uptime_s:.0f}s at {paths.rpc}")
    print(f"  trades {reply.trades}  strategies {reply.strategies}  cycle {reply.cycle}")
    from alphad.daemon.report import component_states

    now_ms = time.time_ns() // 1_000_000
    for name, state in sorted(component_states(reply, now_ms).items()):
        print(f"  {name:<12} {state}")
    return 0


def health(
    paths: Paths,
    strategy: str | None,
    *,
    regime: str | None,
    as_json: bool,
    timeout_s: float,
    curve: CurveKeys | None,
) -> int:
    """Print the strategies' lifecycle states, and each one's state in each regime."""
    from alphad.daemon.health import in_regime, name_problem, render_health
    from alphad.protocol.messages import Health

    problem = name_problem("strategy", strategy) or name_problem("regime", regime)
    if problem:
        raise CommandError(problem)
    rows = _ask(paths, timeout_s, curve, lambda client: client.get_health(strategy)).rows
    if regime is not None:
        try:
            rows = in_regime(rows, regime, strategy)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    if as_json:
        print(msgspec.json.encode(Health(rows=rows)).decode())
    else:
        print(render_health(rows, regime))
    return 0


def report(
    paths: Paths,
    form: str,
    *,
    timeout_s: float,
    curve: CurveKeys | None,
    top: str | None = None,
    min_trades: int | None = None,
) -> int:
    """Print the report as tables, JSON or CSV; the top strategies by ``top``."""
    from alphad.daemon.report import render_csv, render_json, render_text

    def ask(client: Any) -> Any:
        reply = client.report()  # every page
        if top is not None or min_trades is not None:
            metric = top or reply.top_metric
            least = reply.top_min_trades if min_trades is None else min_trades
            ranked = client.get_top(
                metric, REPORT_TOP_N, min_trades=least, ascending=metric in LOWER_IS_BETTER
            )
            reply.top_strategies, reply.top_metric = ranked.rows, metric
            reply.top_min_trades = least
        return reply

    reply = _ask(paths, timeout_s, curve, ask)
    renderer = {"text": render_text, "json": render_json, "csv": render_csv}[form]
    print(renderer(reply))
    return 0


KEYS_HINT = (
    "give --server-key and --client-key, ALPHAD_SERVER_KEY and ALPHAD_CLIENT_KEY, "
    "or [security] curve_server_key and curve_client_secret"
)


def _curve_keys(args: argparse.Namespace, config: Config) -> CurveKeys | None:
    """The CURVE keys of a client command: flags beat the environment beats ``[security]``."""
    from alphad.protocol.curve import CurveKeys

    server = (
        args.server_key or os.environ.get("ALPHAD_SERVER_KEY") or config.security.curve_server_key
    )
    client = (
        args.client_key
        or os.environ.get("ALPHAD_CLIENT_KEY")
        or config.security.curve_client_secret
    )
    if not server and not client:
        return None
    if not server or not client:
        raise CommandError(f"CURVE needs both keys: {KEYS_HINT}")
    try:
        return CurveKeys.from_files(server, client)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _ask(paths: Paths, timeout_s: float, curve: CurveKeys | None, call: Any) -> Any:
    """One request to the rpc socket; a failure becomes one line for the operator."""
    from alphad.protocol.client import Client
    from alphad.protocol.curve import CurveRefused
    from alphad.protocol.errors import AlphadError

    try:
        with Client(paths.rpc, timeout_s=timeout_s, retries=0, curve=curve) as client:
            return call(client)
    except CurveRefused as exc:
        raise CommandError(f"{exc.message}; {KEYS_HINT}") from None
    except AlphadError as exc:
        if exc.code == "timeout":
            raise CommandError(f"no answer from {paths.rpc}: {_why_no_answer(paths)}") from None
        raise CommandError(str(exc)) from None


def _why_no_answer(paths: Paths) -> str:
    """What to check when the rpc socket did not answer: a socket this user may not use
    (not in the daemon's group) reads as no daemon otherwise."""
    from alphad.protocol.endpoints import SYSTEM_RUNTIME_DIR

    socket_path = paths.rpc.removeprefix("ipc://")
    if paths.rpc.startswith("ipc://") and os.path.lexists(socket_path):
        if not os.access(socket_path, os.R_OK | os.W_OK):
            return "this user may not use the socket (a bot's user joins group alphad)"
        return "is alphad running?"
    system = SYSTEM_RUNTIME_DIR
    if paths.runtime_dir != system and os.path.isdir(system) and not os.access(system, os.X_OK):
        return (
            f"is alphad running? ({system}, the systemd unit's, is there but this user may"
            " not look in it: a bot's user joins group alphad)"
        )
    return "is alphad running?"


def watch(paths: Paths, topics: list[str], *, as_json: bool, curve: CurveKeys | None) -> int:
    """Print alerts until interrupted."""
    from alphad.protocol.client import Client, Subscriber
    from alphad.protocol.curve import CurveRefused
    from alphad.protocol.errors import AlphadError

    for topic in topics:
        try:
            topic.encode()
        except UnicodeEncodeError:
            raise CommandError(f"topic prefix {topic!r} is not UTF-8 text") from None
        if len(topic.encode()) > MAX_TOPIC_PREFIX_BYTES:
            # Its subscription message would pass the alerts socket's limit: the daemon's
            # ZeroMQ closes the connection on it, and every other topic would go unheard.
            raise CommandError(
                f"topic prefix {topic[:20]!r}… is {len(topic.encode())} bytes: at most"
                f" {MAX_TOPIC_PREFIX_BYTES} (the longest topic has 16)"
            )

    try:
        with (
            Client(paths.rpc, timeout_s=1.0, retries=0, curve=curve) as client,
            Subscriber(paths.alerts, topics or [""], client=client, curve=curve) as sub,
        ):
            try:
                client.get_status()
            except CurveRefused:
                raise
            except AlphadError:
                # Alerts will come once the daemon is up: say so instead of sitting silent.
                print(
                    f"alphad: no answer at {paths.rpc}; waiting for alerts on {paths.alerts}",
                    file=sys.stderr,
                    flush=True,
                )
            for topic, alert in sub:
                if as_json:
                    print(json.dumps({"topic": topic, **msgspec.to_builtins(alert)}), flush=True)
                else:
                    print(alert_line(topic, alert), flush=True)
    except CurveRefused as exc:
        # Waiting would be forever: the daemon is up and will never let this client in.
        raise CommandError(f"{exc.message}; {KEYS_HINT}") from None
    except AlphadError as exc:
        # A backfill refused for good (a timeout or a busy daemon is asked again).
        raise CommandError(f"alerts stopped: the missed alerts could not be read: {exc}") from None
    return 0


def alert_line(topic: str, alert: Any) -> str:
    """``#12 status.suspended ema_trend [trending]: active -> suspended (why) by alice``,
    ``#13 component scorer: on -> off (why) by alice``."""
    from alphad.daemon.report import alert_change, alert_subject

    subject = alert_subject(alert)
    who = f" {subject}" if subject else ""
    regime = alert.data.get("regime") if isinstance(alert.data, dict) else None
    where = f" [{regime}]" if regime else ""
    by = f" by {alert.actor}" if alert.actor != "system" else ""
    old, new = alert_change(alert)
    return f"#{alert.seq} {topic}{who}{where}: {old} -> {new} ({alert.reason}){by}"


def check_database(args: argparse.Namespace) -> int:
    """``alphad check-db``: the full integrity check, read-only (safe while alphad runs)."""
    import sqlite3
    from pathlib import Path
    from urllib.parse import quote

    from alphad.actors.store import integrity_problems
    from alphad.actors.store_schema import ALPHAD_TABLES, SCHEMA_VERSION, stale_log_hint

    if args.database:
        path = Path(args.database)
    else:
        path = resolve_paths(load_config(args.config), args.state_dir, None, client=True).database
    if path.is_dir():
        raise CommandError(f"{path}: is a directory, not a database file")
    if not path.is_file():
        raise CommandError(f"{path}: no such database file")
    try:
        # The name's bytes, quoted: a file name need not be UTF-8 text.
        uri = f"file:{quote(os.fsencode(path.resolve()))}?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=10)
        try:
            problems = integrity_problems(db, full=True)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise CommandError(f"{path}: cannot be checked: {exc}") from None
    if problems:
        raise CommandError(
            f"{path}: corrupt: {problems[0]} ({len(problems)} problems found by integrity_check)"
            + stale_log_hint(path)
        )
    if not version and not tables:
        # SQLite takes an empty file for an empty database: whole, and holding nothing.
        raise CommandError(f"{path}: not an alphad database (no schema: an empty file?)")
    if version > SCHEMA_VERSION:
        raise CommandError(
            f"{path}: written by a newer alphad (schema version {version}; this one reads "
            f"up to {SCHEMA_VERSION})"
        )
    missing = sorted(ALPHAD_TABLES - tables)
    if missing == sorted(ALPHAD_TABLES):
        raise CommandError(
            f"{path}: not an alphad database: schema version {version} but none of its tables"
        )
    if missing:
        raise CommandError(f"{path}: damaged: missing tables {', '.join(missing)}")
    print(f"{path}: ok (integrity_check)")
    return 0


def schema_json() -> str:
    """The JSON Schema of every request, reply and alert."""
    from alphad.protocol.schema import json_schema

    return json.dumps(json_schema(), indent=2, sort_keys=True)


if __name__ == "__main__":
    raise SystemExit(main())
