"""End to end: the commands' output that cannot be written, or would overwrite an input.

Each runs the real ``alphad`` command line in a child process: standard output full
(``> /dev/full``) or closed (``>&-``) is one line on stderr and exit 1, never a
traceback; an output named as an input is refused before anything is written; an
interrupt while the command line still loads ends it quietly with 130.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

from alphad.daemon import entry

ROOT = Path(__file__).parent.parent
HEADER = "ts_ms,exit_ts_ms,strategy,symbol,side,confidence,confluence,regime,pnl,signal_id\n"
ROWS = "".join(
    f"{1_704_067_200_000 + i * 3_600_000},{1_704_070_800_000 + i * 3_600_000},ema,BTC,buy,0.8,3,,"
    f"{(-1) ** i * 1.5},\n"
    for i in range(30)
)


def alphad(
    *args: str,
    cwd: Path,
    stdout: int | None = subprocess.PIPE,
    close_stdout: bool = False,
    file_size_limit: int | None = None,
    memory_limit: int | None = None,
) -> tuple[int, str]:
    def before() -> None:
        if close_stdout:
            os.close(1)
        if memory_limit is not None:  # as `ulimit -v`: an allocation past it fails
            hard = resource.getrlimit(resource.RLIMIT_AS)[1]
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, hard))
        if file_size_limit is not None:  # as `ulimit -f`: a write past it fails (EFBIG)
            hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, hard))

    process = subprocess.run(
        [sys.executable, "-m", "alphad.daemon.cli", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        preexec_fn=before,
        timeout=120,
    )
    return process.returncode, process.stderr.decode()


@pytest.fixture
def signals(tmp_path: Path) -> Path:
    path = tmp_path / "signals.csv"
    path.write_text(HEADER + ROWS)
    return path


REPLAY = ("replay", "signals.csv", "--bootstrap", "0")
SIMULATE = ("simulate", "--scenario", "steady", "--out", "steady.csv")


@pytest.mark.parametrize("command", [REPLAY, SIMULATE], ids=["replay", "simulate"])
def test_a_full_standard_output_is_one_line_and_exit_1(
    signals: Path, command: Sequence[str]
) -> None:
    with open("/dev/full", "wb") as full:
        code, err = alphad(*command, cwd=signals.parent, stdout=full.fileno())
    assert (code, err) == (1, "alphad: cannot write: No space left on device\n")


@pytest.mark.parametrize("command", [REPLAY, SIMULATE], ids=["replay", "simulate"])
def test_a_closed_standard_output_is_one_line_and_exit_1(
    signals: Path, command: Sequence[str]
) -> None:
    code, err = alphad(*command, cwd=signals.parent, stdout=None, close_stdout=True)
    assert (code, err) == (1, "alphad: standard output is closed: there is nowhere to write to\n")


def test_a_closed_standard_output_keeps_a_questions_own_refusal(tmp_path: Path) -> None:
    # check-config reports a bad file on stderr: with stdout closed, those are the lines
    # to see, not that stdout is closed; a good file's answer meets the closed stdout.
    bad = tmp_path / "bad.toml"
    bad.write_text("[scorer]\nmax_size_multiplier = 3.0\n[daemon]\nbogus = 1\n")
    code, err = alphad("check-config", "bad.toml", cwd=tmp_path, stdout=None, close_stdout=True)
    assert code == 1
    assert err.splitlines() == [
        "alphad: bad.toml: key `scorer.max_size_multiplier`: Expected `float` <= 2.0",
        "alphad: bad.toml: unknown key `daemon.bogus`",
    ]
    good = tmp_path / "good.toml"
    good.write_text("[scorer]\nmax_size_multiplier = 1.5\n")
    code, err = alphad("check-config", "good.toml", cwd=tmp_path, stdout=None, close_stdout=True)
    assert (code, err) == (1, "alphad: standard output is closed: there is nowhere to write to\n")
    # A database that is not one is named as such.
    (tmp_path / "empty.db").write_bytes(b"")
    code, err = alphad(
        "check-db", "--database", "empty.db", cwd=tmp_path, stdout=None, close_stdout=True
    )
    assert code == 1 and "not an alphad database" in err and "standard output" not in err


def test_a_report_over_its_own_input_is_refused_and_the_input_kept(signals: Path) -> None:
    before = signals.read_bytes()
    (signals.parent / "again.csv").symlink_to(signals)
    for report in ("signals.csv", "./signals.csv", "again.csv", str(signals)):
        code, err = alphad("replay", "signals.csv", "--report", report, cwd=signals.parent)
        assert code == 1 and err.startswith(f"alphad: --report {report} is the signals file")
        assert err.count("\n") == 1
    assert signals.read_bytes() == before
    # The config it reads, too: the daemon's TOML was replaced by the HTML page.
    config = signals.parent / "alphad.toml"
    config.write_text("[scorer]\nmax_size_multiplier = 1.5\n")
    kept = config.read_bytes()
    code, err = alphad(
        "replay",
        "signals.csv",
        "--config",
        "alphad.toml",
        "--report",
        "alphad.toml",
        cwd=signals.parent,
    )
    assert (code, err) == (
        1,
        "alphad: --report alphad.toml is the config file alphad.toml: choose another\n",
    )
    assert config.read_bytes() == kept


def test_a_history_too_large_for_the_memory_allowed_is_one_line(tmp_path: Path) -> None:
    # A MemoryError was a 20-line traceback.
    row = "{},{},ema,BTC,buy,0.8,3,,1.5,\n"
    start = 1_704_067_200_000
    with (tmp_path / "big.csv").open("w") as out:
        out.write(HEADER)
        out.writelines(
            row.format(start + i * 60_000, start + i * 60_000 + 1) for i in range(600_000)
        )
    code, err = alphad(
        "replay", "big.csv", "--bootstrap", "0", cwd=tmp_path, memory_limit=250 * 2**20
    )
    assert (code, err) == (
        1,
        "alphad: out of memory: the input of `replay` does not fit in the memory it may use\n",
    )


def test_one_time_in_seconds_among_milliseconds_is_refused_naming_its_signal(
    tmp_path: Path,
) -> None:
    # Replayed, a 30-hour history with one entry in seconds spanned 54 years.
    rows = ROWS.splitlines(keepends=True)
    ts_ms, rest = rows[3].split(",", 1)
    rows[3] = f"{int(ts_ms) // 1000},{rest}"
    (tmp_path / "mixed.csv").write_text(HEADER + "".join(rows))
    code, err = alphad("replay", "mixed.csv", cwd=tmp_path)
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith(f"alphad: mixed.csv: signal 4 of 30 (ts_ms {int(ts_ms) // 1000},")
    assert "a time in seconds?" in err
    # Also a month exported in seconds before two in milliseconds (not inside their span).
    january = "".join(
        f"{1_704_067_200 + i * 3_600},{1_704_067_200 + i * 3_600 + 60},ema,BTC,buy,0.8,3,,1.0,\n"
        for i in range(5)
    )
    (tmp_path / "two.csv").write_text(HEADER + january + ROWS.replace("1704", "1706"))
    code, err = alphad("replay", "two.csv", cwd=tmp_path)
    assert code == 1 and "signal 1 of 35" in err and "a time in seconds?" in err, err
    # A history in milliseconds that begins before 1973 is a history, not seconds.
    weekly = 7 * 86_400_000
    long_ago = "".join(
        f"{63_072_000_000 + i * weekly},{63_072_000_000 + i * weekly + 3_600_000},ema,BTC,buy,"
        f"0.8,3,,{(-1) ** i * 1.5},\n"
        for i in range(1_600)  # 1972-01-01 on, to 2002
    )
    (tmp_path / "long.csv").write_text(HEADER + long_ago)
    assert alphad("replay", "long.csv", "--bootstrap", "0", cwd=tmp_path) == (0, "")


def test_simulate_refuses_one_file_for_the_signals_and_the_bars(tmp_path: Path) -> None:
    code, err = alphad(*SIMULATE, "--bars", "./steady.csv", cwd=tmp_path)
    assert (code, err) == (1, "alphad: --out and --bars are one file, steady.csv: give two\n")
    assert list(tmp_path.iterdir()) == []


def test_a_bootstrap_beyond_its_bound_is_refused_before_the_replay(signals: Path) -> None:
    code, err = alphad("replay", "signals.csv", "--bootstrap", "10" * 10, cwd=signals.parent)
    assert (code, err) == (
        1,
        f"alphad: --bootstrap needs a number of resamples from 0 to 100,000, not {'10' * 10}\n",
    )


def test_a_history_in_seconds_is_replayed_with_a_warning(tmp_path: Path) -> None:
    # The times of ROWS divided by 1 000: 30 hours of 2024 read as 108 seconds of 1970.
    seconds = "".join(
        f"{1_704_067_200 + i * 3_600},{1_704_070_800 + i * 3_600},ema,BTC,buy,0.8,3,,1.5,\n"
        for i in range(30)
    )
    (tmp_path / "seconds.csv").write_text(HEADER + seconds)
    code, err = alphad("replay", "seconds.csv", "--bootstrap", "0", cwd=tmp_path)
    assert (code, err) == (
        0,
        "alphad: warning: seconds.csv: every time is before 1973-03-03 UTC; ts_ms and "
        "exit_ts_ms are milliseconds since the epoch (in seconds, a history replays 1 000 "
        "times shorter)\n",
    )
    (tmp_path / "ms.csv").write_text(HEADER + ROWS)
    assert alphad("replay", "ms.csv", "--bootstrap", "0", cwd=tmp_path) == (0, "")


class _Interrupting(importlib.abc.MetaPathFinder):
    """Ctrl-C as the command line's module is being loaded."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name == "alphad.daemon.cli":
            raise KeyboardInterrupt
        return None


def test_an_interrupt_while_the_command_line_loads_ends_with_130(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "alphad.daemon.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_Interrupting(), *sys.meta_path])
    assert entry.main() == 130  # the console script's entry (tests/test_packaging.py)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("status", "--timeout", "0"), "argument --timeout: expected seconds from 0.001 to 3600"),
        (("health", "--timeout", "nan"), "argument --timeout: expected seconds from 0.001 to 3600"),
        (("report", "--timeout", "inf"), "argument --timeout: expected seconds from 0.001 to 3600"),
        (("status", "--timeout", "1e30"), "argument --timeout: expected seconds from 0.001"),
        # Below a millisecond the client refused it with a traceback.
        (("status", "--timeout", "0.0005"), "argument --timeout: expected seconds from 0.001 to"),
        (("report", "--min-trades", "9" * 20), "argument --min-trades: expected 0 to 1000000000"),
        (("top", "--interval", "0"), "argument --interval: expected seconds from 0.1 to 3600"),
        (("top", "--interval", "inf"), "argument --interval: expected seconds from 0.1 to 3600"),
    ],
)
def test_a_wait_or_a_count_out_of_its_range_is_refused_before_anything_runs(
    tmp_path: Path, args: Sequence[str], said: str
) -> None:
    # They once reached ZeroMQ's poll, the clock or the encoder: tracebacks, or a `top`
    # that asked the daemon without pause and no longer quit on `q`.
    code, err = alphad(*args, cwd=tmp_path)
    assert code == 2 and said in err and "Traceback" not in err, err


def test_top_needs_a_terminal(tmp_path: Path) -> None:
    # Into a file or a pipe it drew nothing and never ended.
    code, err = alphad("top", cwd=tmp_path)
    assert code == 1 and err.startswith("alphad: top draws a live dashboard and needs a terminal")


@pytest.mark.parametrize("name", ["../evil", "", "a\nb", ".hidden", "a/b"])
def test_keygen_refuses_a_name_that_is_not_a_file_name_of_its_own(
    tmp_path: Path, name: str
) -> None:
    keys = tmp_path / "keys"
    code, err = alphad("keygen", str(keys), name, cwd=tmp_path)
    assert code == 1 and err.startswith(f"alphad: key name {name!r}:") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == []


def test_watch_refuses_a_prefix_no_subscription_can_carry(tmp_path: Path) -> None:
    # ZeroMQ closes the connection of a subscription over 64 bytes: the other topics
    # would go unheard, silently.
    code, err = alphad("watch", "x" * 55, "status.", cwd=tmp_path)
    assert (code, err) == (
        1,
        f"alphad: topic prefix {'x' * 20!r}… is 55 bytes: at most 54 (the longest topic has 16)\n",
    )


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--state-dir", ""),
        ("run", "--config", ""),
        ("status", "--runtime-dir", ""),
        ("check-db", "--database", ""),
        ("report", "--client-key", ""),
        ("replay", ""),
    ],
)
def test_an_empty_path_is_refused_not_taken_for_the_default(
    tmp_path: Path, args: Sequence[str]
) -> None:
    # `--state-dir ""` once ran the daemon on the default state directory: another
    # database than the operator named (and `check-db --database ""` checked that one).
    code, err = alphad(*args, cwd=tmp_path)
    flag = next((a for a in args if a.startswith("--")), None)
    assert code == 2, err
    if flag is None:  # a path the command needs: it has no default
        assert "argument file: an empty path (`" in err
    else:
        assert f"argument {flag}: an empty path; leave the option out for the default" in err
    assert "Traceback" not in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("version", "said"),
    [
        (3, "not an alphad database: schema version 3 but none of its tables"),
        (0, "not an alphad database: schema version 0 but none of its tables"),
        (99, "written by a newer alphad (schema version 99; this one reads up to 7)"),
    ],
)
def test_check_db_does_not_pass_a_database_of_another_program(
    tmp_path: Path, version: int, said: str
) -> None:
    import sqlite3

    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (body TEXT)")
    db.execute(f"PRAGMA user_version={version}")
    db.commit()
    db.close()
    code, err = alphad("check-db", "--database", str(path), cwd=tmp_path)
    assert (code, err) == (1, f"alphad: {path}: {said}\n")


@pytest.mark.parametrize(
    ("bars", "expected"),
    [
        ("bars.txt", "alphad: bars.txt: unknown file type '.txt'; use .csv or .jsonl\n"),
        ("gone/bars.csv", "alphad: gone/bars.csv: cannot write (No such file or directory)\n"),
        (".", "alphad: .: unknown file type '(none)'; use .csv or .jsonl\n"),
        ("folder.csv", "alphad: folder.csv: cannot write (Is a directory)\n"),
        (
            "gone/../bars.csv",
            "alphad: gone/../bars.csv: cannot write (No such file or directory)\n",
        ),
        ("loop.csv", "alphad: loop.csv: cannot write (Too many levels of symbolic links)\n"),
        # A name the folder takes, but not its partial file's, 15 bytes longer.
        ("b" * 246 + ".csv", f"alphad: {'b' * 246}.csv: cannot write (File name too long)\n"),
    ],
    ids=[
        "extension",
        "missing folder",
        "no name",
        "directory",
        "through a missing folder",
        "symbolic link loop",
        "long name",
    ],
)
def test_simulate_refused_for_its_bars_file_keeps_the_signals_file(
    tmp_path: Path, bars: str, expected: str
) -> None:
    (tmp_path / "steady.csv").write_text("the old history\n")
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "loop.csv").symlink_to("loop.csv")
    code, err = alphad(*SIMULATE, "--bars", bars, cwd=tmp_path)
    assert (code, err) == (1, expected)
    assert (tmp_path / "steady.csv").read_text() == "the old history\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.csv", "loop.csv", "steady.csv"]


def test_simulate_into_a_full_standard_output_still_writes_both_files(tmp_path: Path) -> None:
    with open("/dev/full", "wb") as full:
        code, err = alphad(*SIMULATE, "--bars", "bars.csv", cwd=tmp_path, stdout=full.fileno())
    assert code == 1 and err.count("\n") == 1, err
    assert (tmp_path / "steady.csv").read_text().startswith("ts_ms,")
    assert (tmp_path / "bars.csv").read_text().startswith("symbol,bar_size,ts_ms,")


def test_a_report_that_cannot_be_written_whole_keeps_the_old_page(signals: Path) -> None:
    folder = signals.parent
    code, err = alphad(*REPLAY, "--report", "page.html", cwd=folder)
    assert code == 0, err
    page = (folder / "page.html").read_text()
    assert page.rstrip().endswith("</html>") and len(page) > 8192
    # Written again, the page keeps the permission bits of the one it replaces.
    (folder / "page.html").chmod(0o600)
    assert alphad(*REPLAY, "--report", "page.html", cwd=folder) == (0, "")
    assert (folder / "page.html").stat().st_mode & 0o777 == 0o600
    # A file size limit below the page's size: the write fails, the old page stays whole.
    code, err = alphad(*REPLAY, "--report", "page.html", cwd=folder, file_size_limit=4096)
    assert (code, err) == (1, "alphad: page.html: cannot write (File too large)\n")
    assert (folder / "page.html").read_text() == page
    assert sorted(p.name for p in folder.iterdir()) == ["page.html", "signals.csv"]
    # A folder that is missing is refused before the replay, in one line.
    code, err = alphad(*REPLAY, "--report", "gone/page.html", cwd=folder)
    assert (code, err) == (1, "alphad: gone/page.html: cannot write (No such file or directory)\n")


@pytest.mark.parametrize("seeds", ["0", "-1", "x"])
def test_tuning_on_no_seeds_is_refused(tmp_path: Path, seeds: str) -> None:
    # It printed the table's header alone and exited 0.
    process = subprocess.run(
        [sys.executable, "-m", "alphad.replay", "--tune", "--seeds", seeds],
        capture_output=True,
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    said = process.stderr.decode()
    assert process.returncode == 2 and process.stdout == b"", said
    assert f"argument --seeds: expected a number of seeds from 1 to 100000, not '{seeds}'" in said


@pytest.mark.parametrize("command", ["status", "health", "report", "watch"])
def test_an_endpoint_zeromq_refuses_is_one_line(tmp_path: Path, command: str) -> None:
    # An ipc path past a socket's 107 bytes, and a scheme ZeroMQ does not know: they
    # were tracebacks from ZeroMQ's connect.
    long_dir = tmp_path / ("a" * 120)
    code, err = alphad(command, "--runtime-dir", str(long_dir), cwd=tmp_path)
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("alphad: cannot connect: File name too long") and "Traceback" not in err
    config = tmp_path / "alphad.toml"
    config.write_text('[daemon]\nrpc_endpoint = "foo://x"\n')
    code, err = alphad(command, "--config", str(config), cwd=tmp_path)
    assert (code, err) == (
        1,
        "alphad: cannot connect: endpoint 'foo://x' is not one a daemon serves: write"
        " ipc:///path/to/rpc.sock (a socket file) or tcp://host:port\n",
    )


def test_a_rule_that_never_acts_is_a_warning_of_the_replay_as_of_check_config(
    signals: Path,
) -> None:
    # The replay took [lifecycle] min_trades 500 over a window of 100 without a word.
    config = signals.parent / "alphad.toml"
    config.write_text("[lifecycle]\nmin_trades = 500\n")
    code, err = alphad(*REPLAY, "--config", "alphad.toml", cwd=signals.parent)
    assert (code, err) == (
        0,
        "alphad: warning: [lifecycle] min_trades = 500 is above [performance] window_trades"
        " 100: a window never holds that many trades, so the lifecycle's judgement of a"
        " strategy never acts\n",
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("status", "--timeout", "0"), "alphad status: argument --timeout: expected seconds"),
        (("report", "--top", "nosuch"), "alphad report: argument --top: invalid choice: 'nosuch'"),
        (("nosuch",), "alphad: argument COMMAND: invalid choice: 'nosuch'"),
        ((), "alphad: the following arguments are required: COMMAND"),
        (("replay",), "alphad replay: the following arguments are required"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_two(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    # argparse printed its usage, three to five lines, before the error.
    code, err = alphad(*args, cwd=tmp_path)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(said), err
    assert err.endswith("--help` for the usage)\n"), err
