"""The output of ``python -m bench.markets``: its text and JSON, and the command itself.

Kept apart from bench/markets/run.py, which measures, so that what a result is and how
it reads change in their own places.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from alphad.actors.errors import Refused
from alphad.daemon.cli import reader_gone
from alphad.daemon.config import Config, ConfigError, load_config
from alphad.replay.bootstrap import BLOCK_DAYS
from alphad.replay.signals import InputError, check_writable, write_whole
from bench.markets.corpus import MANIFEST, SPLITS, CorpusError
from bench.markets.luck import RESAMPLES, Luck
from bench.markets.run import DRAWDOWN_LIMIT, MarketsReport, Side, run
from bench.markets.strategies import DEFAULT_COST_BPS

HEADER = [
    "side",
    "daily sharpe",
    "pnl",
    "max dd",
    "pnl/dd",
    "exposure",
    "pnl vs base",
    "dd vs base",
    "sharpe vs base",
    "pnl @exp",
    "dd @exp",
    "better",
]


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _signed(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:+,.{digits}f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def side_row(side: Side) -> list[str]:
    c = side.change
    return [
        side.name,
        _number(side.stats.daily_sharpe, 3),
        _number(side.stats.total_pnl),
        _number(side.stats.max_drawdown),
        _number(side.pnl_to_drawdown, 3),
        _number(side.exposure, 3),
        _percent(c.total_pnl) if c else "",
        _percent(c.max_drawdown) if c else "",
        _signed(c.daily_sharpe, 3) if c else "",
        _percent(c.total_pnl_same_exposure) if c else "",
        _percent(c.max_drawdown_same_exposure) if c else "",
        ("yes" if side.better else "no") if c else "",
    ]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


LUCK_HEADER = ["against", "daily sharpe", "range", "ahead", "pnl", "range", "ahead"]


def luck_row(row: Luck) -> list[str]:
    cells = [row.against]
    for interval, digits in ((row.daily_sharpe, 3), (row.total_pnl, 0)):
        cells += [
            _signed(interval.observed, digits),
            f"{_signed(interval.low, digits)} – {_signed(interval.high, digits)}",
            _number(interval.ahead * 100 if interval.ahead is not None else None, 0) + " %",
        ]
    return cells


def render_text(report: MarketsReport) -> str:
    out = [
        f"MARKETS {report.date}: {len(report.histories)} histories ({report.split} split), "
        f"cost {report.cost_bps:g} bps per side; pnl in % of a notional of 100 per trade",
        f"packages: {', '.join(report.packages)}",
        "",
    ]
    for r in report.histories:
        d = r.decisions
        out.append(
            f"{r.name} [{r.asset_class}, {r.bar}, {r.split}] {r.first_day} – {r.last_day}, "
            f"{r.bars:,} bars, {r.signals:,} signals ({r.package}=={r.version} {r.file})"
        )
        out.append(
            f"alphad: executed {d.executed:,}, refused for quality {d.refused_quality:,}, "
            f"for status {d.refused_status:,}, mean size {_number(d.mean_size, 3)}; "
            f"{r.status_changes} status changes, {r.suspensions} suspensions"
        )
        if r.detected_decisions is not None and r.detection is not None:
            d, found = r.detected_decisions, r.detection
            out.append(
                f"alphad_detected: executed {d.executed:,}, refused for quality "
                f"{d.refused_quality:,}, for status {d.refused_status:,}, mean size "
                f"{_number(d.mean_size, 3)}; {found.signals_detected:,} signals under a "
                f"detected regime, {found.signals_no_reading:,} before the first reading"
            )
        out.append(table(HEADER, [side_row(s) for s in r.sides]))
        out.append("")
    out.append("POOLED: every history as one book")
    out.append(table(HEADER, [side_row(s) for s in report.pooled]))
    out.append("")
    if report.luck:
        out.append(
            "LUCK: alphad − each side on the pooled book, paired block bootstrap "
            f"({RESAMPLES:,} resamples of {BLOCK_DAYS}-day blocks; "
            "range: 5th – 95th percentile; ahead: share of resamples alphad is ahead)"
        )
        out.append(table(LUCK_HEADER, [luck_row(row) for row in report.luck]))
        out.append("")
    v = report.verdicts
    out.append("VERDICTS")
    out.append(
        f"(a) alphad raises daily Sharpe with max drawdown at most {DRAWDOWN_LIMIT:.0%} above "
        f"the baseline cut to its exposure in {v.alphad_better} of {v.histories} histories "
        f"({_number(v.share * 100 if v.share is not None else None, 0)} %; target "
        f"{v.share_target:.0%}): {'met' if v.share_met else 'NOT met'}"
    )
    rows = [
        [
            peer,
            "yes" if v.beats_on_sharpe[peer] else "no",
            "yes" if v.beats_on_pnl_to_drawdown[peer] else "no",
        ]
        for peer in v.beats_on_sharpe
    ]
    out.append("(b) pooled, alphad beats the peer on:")
    out.append(table(["peer", "daily sharpe", "pnl/dd"], rows))
    out.append(f"alphad beats every peer on both: {'yes' if v.beats_every_peer else 'no'}")
    if v.detected_above is not None:
        out.append(
            f"alphad_detected ([regimes] source = detected): daily Sharpe above alphad's with "
            f"the bots' labels in {v.detected_above} of {v.histories} histories; meets (a) "
            f"in {v.detected_better} of {v.histories}"
        )
    return "\n".join(out) + "\n"


def render_json(report: MarketsReport) -> str:
    return msgspec.json.format(msgspec.json.encode(report), indent=2).decode() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.markets", description="alphad and its peers on real price histories."
    )
    parser.add_argument("--histories", default="*", help="a glob on the histories' names")
    parser.add_argument(
        "--split",
        choices=(*SPLITS, "halves", "all"),
        default="halves",
        help="calibration, evaluation, both (halves, the default: the holdout is read only"
        " when named), holdout, or all: every history",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--out", type=Path, help="write here instead of standard output")
    parser.add_argument(
        "--cost-bps", type=float, default=DEFAULT_COST_BPS, help="cost per side (5)"
    )
    parser.add_argument("--config", type=Path, help="an alphad config file (the defaults)")
    parser.add_argument(
        "--shadow-outcomes",
        action="store_true",
        help="the bots paper-trade refused signals and report their outcomes",
    )
    parser.add_argument(
        "--regimes",
        choices=("bot", "detected"),
        default="bot",
        help="detected: also alphad with [regimes] source = detected on the bars (a side)",
    )
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    command = "python -m bench.markets" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    if sys.stdout is None and not args.out:
        print(
            "bench.markets: standard output is closed: --out FILE writes elsewhere", file=sys.stderr
        )
        return 1
    try:
        if not 0.0 <= args.cost_bps <= 100.0:
            raise CorpusError(f"--cost-bps must be 0 – 100, not {args.cost_bps:g}")
        if args.out:
            check_writable(args.out)  # before the run, not after it
        config = load_config(args.config) if args.config else Config()
        if config.regimes.source == "detected":
            raise CorpusError(
                f'{args.config}: [regimes] source = "detected" needs bars in a replay; here'
                " the side alphad counts under the strategies' labels, and --regimes detected"
                " adds the side alphad_detected, fed the history's bars"
            )
        report = run(
            manifest=args.manifest,
            histories=args.histories,
            split=args.split,
            cost_bps=args.cost_bps,
            config=config,
            command=command,
            shadow_outcomes=args.shadow_outcomes,
            regimes=args.regimes,
        )
        text = render_json(report) if args.format == "json" else render_text(report)
        if args.out:
            write_whole(args.out, text)  # whole or not at all: an old file stays as it was
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    except BrokenPipeError:
        return reader_gone()  # ``python -m bench.markets | head``: as alphad's commands end
    except (ConfigError, CorpusError, InputError, Refused, OSError) as exc:
        # One line per problem (a config file can have several), as alphad prints them.
        for line in str(exc).splitlines():
            print(f"bench.markets: {line}", file=sys.stderr)
        return 1
    return 0
