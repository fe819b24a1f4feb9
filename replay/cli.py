"""``alphad replay FILE``: the command line of the replay."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alphad.daemon.config import load_config, window_findings
from alphad.replay.bars import read_bars
from alphad.replay.runner import replay
from alphad.replay.signals import InputError, SignalRow, check_writable, read_signals, same_file
from alphad.replay.text import render_json, render_text

SECONDS_LIKELY_MS = 100_000_000_000
"""1973-03-03 UTC in milliseconds: a history that ends before it has timestamps in seconds,
most likely (its 90 days would replay as 2 hours of January 1970)."""

MILLISECONDS_SURELY = 1_000_000_000_000
"""2001-09-09 UTC in milliseconds: a history with times after it and times before
``SECONDS_LIKELY_MS`` mixes seconds with milliseconds."""

SECONDS_AT_MOST_MS = 4_102_444_800_000
"""2100-01-01 UTC in milliseconds: the latest a time in seconds is read as."""

MAX_RESAMPLES = 100_000
"""The most resamples ``--bootstrap`` takes: 50 times the default, whose ranges are
already steady to a few per mille; more only costs memory and time."""


def replay_command(args: argparse.Namespace) -> int:
    """``alphad replay FILE``: print the comparison, optionally write the HTML report."""
    if not 0 <= args.bootstrap <= MAX_RESAMPLES:
        raise InputError(
            f"--bootstrap needs a number of resamples from 0 to {MAX_RESAMPLES:,}, "
            f"not {args.bootstrap}"
        )
    _distinct_outputs(args)
    config = load_config(args.config)
    for warning in window_findings(config):  # a rule that never acts, as check-config says
        print(f"alphad: warning: {warning}", file=sys.stderr)
    rows = read_signals(args.file)
    last = max(max(row.ts_ms, row.exit_ts_ms) for row in rows)
    early = _in_seconds(rows)
    if early:
        # Seconds among milliseconds: one such row made a 90-day history span 54 years.
        first = rows[early[0]]
        raise InputError(
            f"{args.file}: signal {early[0] + 1} of {len(rows)} (ts_ms {first.ts_ms}, "
            f"exit_ts_ms {first.exit_ts_ms}) is before 1973-03-03 UTC where others are after "
            f"2001-09-09 ({len(early)} such): a time in seconds? ts_ms and exit_ts_ms are "
            "milliseconds since the epoch; nothing replayed"
        )
    if last < SECONDS_LIKELY_MS:
        # Valid times, so a warning and not a refusal; the day-span check sees only
        # spans too long, and seconds make them shorter.
        print(
            f"alphad: warning: {args.file}: every time is before 1973-03-03 UTC; ts_ms and "
            "exit_ts_ms are milliseconds since the epoch (in seconds, a history replays "
            "1 000 times shorter)",
            file=sys.stderr,
        )
    bars = read_bars(args.bars) if args.bars else None
    replayed = replay(
        rows,
        config,
        shadow_outcomes=args.shadow_outcomes,
        periods_per_year=args.periods_per_year,
        bars=bars,
        hmm=args.hmm,
    )
    if args.bootstrap:
        replayed.bootstrap_luck(args.bootstrap)
    if args.report:
        from alphad.replay.html import write_report

        write_report(replayed, args.report, title=Path(args.file).name)
    if args.format == "json":
        print(render_json(replayed))
    else:
        print(render_text(replayed, Path(args.file).name))
        if args.report:
            print(f"\nreport written to {args.report}")
    return 0


def _in_seconds(rows: list[SignalRow]) -> list[int]:
    """The rows with a time in seconds among rows in milliseconds: before 1973-03-03 as
    milliseconds, and between 2001-09-09 and 2100 once read as seconds, in a history with
    times after 2001-09-09 (a history in milliseconds that begins before 1973 has none:
    its times read as seconds are centuries ahead)."""
    if not any(max(row.ts_ms, row.exit_ts_ms) >= MILLISECONDS_SURELY for row in rows):
        return []
    return [
        i
        for i, row in enumerate(rows)
        if any(
            t < SECONDS_LIKELY_MS and MILLISECONDS_SURELY <= t * 1000 <= SECONDS_AT_MOST_MS
            for t in (row.ts_ms, row.exit_ts_ms)
        )
    ]


def _distinct_outputs(args: argparse.Namespace) -> None:
    """Refuse a report written over an input file: the signals, the bars or the config
    it reads."""
    if not args.report:
        return
    report = Path(args.report)
    inputs = (("signals", args.file), ("bars", args.bars), ("config", args.config))
    for name, given in inputs:
        if given and same_file(report, Path(given)):
            raise InputError(f"--report {args.report} is the {name} file {given}: choose another")
    check_writable(report)  # before the replay, not after it
