"""The ground every message of the wire protocol stands on: the protocol's version,
the bounds of its fields (names, amounts, sizes, times, pages) and the bases of requests
and replies. Import messages from ``alphad.protocol.messages``, which has these too.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

PROTOCOL_VERSION = 1

# Names of strategies, symbols and regimes: short, printable, no spaces. msgspec applies a
# pattern with re.search and the config with re.match, where a bare ``$`` also matches
# before a final newline: ``(?!\n)`` keeps "ema_trend\n" from passing as a second strategy.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/@+\-]*$(?!\n)"
Name = Annotated[str, Meta(min_length=1, max_length=64, pattern=NAME_PATTERN)]
Identifier = Annotated[str, Meta(min_length=1, max_length=128)]
# An operator's reason: one line of text. It is journaled and shown in alerts, `watch`,
# `health` and `top`, where a newline would split a line and an escape drive the terminal:
# no C0 or C1 control character (NEL and CSI are C1), no Unicode line or paragraph
# separator, no bidirectional override or isolate (which reorder what follows on screen).
TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*$(?!\n)"
Text = Annotated[str, Meta(max_length=1024, pattern=TEXT_PATTERN)]
# The smallest ``[daemon] max_message_size`` a config may set: every request but a batch of
# bars fits in it with each field at its largest, in msgpack and in compact JSON, also
# JSON that escapes every character beyond ASCII (an operator's reason of 1 024
# characters beyond the Basic Multilingual Plane is 12 KiB so), so that no limit set too
# low refuses a bot's trade or an operator's action as too large.
MIN_MESSAGE_SIZE = 16384
Side = Literal["buy", "sell"]
Confidence = Annotated[float, Meta(ge=0.0, le=1.0)]
Confluence = Annotated[int, Meta(ge=0, le=1000)]
# Finite money amounts; NaN and infinities are refused by the bounds.
Amount = Annotated[float, Meta(ge=-1e15, le=1e15)]
# The size of a trade: the strategies are judged on pnl per unit of size, where a size near
# zero would turn one trade's pnl into an astronomic figure.
SIZE_MIN = 1e-9
Size = Annotated[float, Meta(ge=SIZE_MIN, le=1e12)]
TimestampMs = Annotated[int, Meta(ge=0, le=2**53)]
# A time a bot sends: from 2000-01-01 to 2100-01-01 in milliseconds, so that seconds
# (1.7e9, read as January 1970) or microseconds are refused rather than misread.
EARLIEST_TS_MS = 946_684_800_000
LATEST_TS_MS = 4_102_444_800_000
WireTimestampMs = Annotated[int, Meta(ge=EARLIEST_TS_MS, le=LATEST_TS_MS)]
Limit = Annotated[int, Meta(ge=1, le=10_000)]
# Every reply is bounded, so that one request cannot make the daemon build (and queue for
# a peer) hundreds of megabytes: a paged read answers at most PAGE_ROWS rows or, for the
# audit log and the history, as many entries as fit in PAGE_BYTES (at least one), and
# says where the next page starts.
PAGE_ROWS = 1_000
PAGE_BYTES = 1 << 20
# A sequence number or a cycle: at most SQLite's largest INTEGER, which the store
# compares it with (a larger one is a bad request, not an overflow inside the store).
SEQ_MAX = 2**63 - 1
Seq = Annotated[int, Meta(ge=0, le=SEQ_MAX)]
Status = Literal["active", "degraded", "suspended", "retired"]
GroupKey = Literal["strategy", "symbol", "regime"]
Window = Literal["all", "recent"]

STATUSES: tuple[str, ...] = ("active", "degraded", "suspended", "retired")
# A bar's size: a whole number of seconds, minutes, hours, days or weeks ("1m", "4h", "1d").
BAR_SIZE_PATTERN = r"^[1-9][0-9]{0,4}[smhdw]$(?!\n)"
BarSize = Annotated[str, Meta(min_length=2, max_length=6, pattern=BAR_SIZE_PATTERN)]
Price = Annotated[float, Meta(gt=0.0, le=1e15)]
Volume = Annotated[float, Meta(ge=0.0, le=1e18)]
# Bars in one market_bars request on the wire; [regimes] max_batch is the daemon's own cap.
MAX_BARS_PER_REQUEST = 10_000


class Request(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of every request; ``request_id`` is echoed in the reply."""

    request_id: Identifier | None = None


class Reply(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of every reply."""

    request_id: str | None = None


TOP_MIN_TRADES = 20
"""Strategies with fewer trades in the window are left out of a ranking by default: one
lucky trade must not top the list (``get_top`` and the report's top strategies)."""
