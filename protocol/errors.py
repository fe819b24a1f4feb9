"""Error codes of the wire protocol and the exception that carries them.

``ErrorCode`` is the one list of codes: mypy refuses a misspelt code where an
``AlphadError`` is raised, the daemon's error table maps to it, and the JSON Schema's
``$defs/ErrorCode`` is exported from it. ``ERROR_CODES`` says what each code means.
"""

from __future__ import annotations

from typing import Literal, get_args

ErrorCode = Literal[
    "bad_request",
    "unknown_type",
    "forbidden",
    "overloaded",
    "timeout",
    "storage_unavailable",
    "unknown_strategy",
    "limit",
    "not_found",
    "conflict",
    "internal",
]

ERROR_CODES: dict[ErrorCode, str] = {
    "bad_request": "undecodable message, wrong field types, out-of-range values or names too long",
    "unknown_type": "the message's type is not one this daemon knows",
    "forbidden": "an admin request sent to the rpc socket",
    "overloaded": "the component's mailbox is full; retry later",
    "timeout": "the component did not answer within the request timeout",
    "storage_unavailable": "the database cannot be written; nothing was recorded",
    "unknown_strategy": "the strategy is not configured and auto_register is off",
    "limit": "a configured cap (strategies, symbols, regimes) would be exceeded",
    "not_found": "the named strategy or record does not exist",
    "conflict": "a resend of a recorded trade_id or signal outcome differs from the record;"
    " nothing was recorded",
    "internal": "an unexpected failure inside the daemon",
}
if tuple(ERROR_CODES) != get_args(ErrorCode):  # a code added to one and not the other
    raise TypeError("ERROR_CODES must describe every ErrorCode, in the same order")


SHUTTING_DOWN = "daemon is shutting down"
"""How an ``overloaded`` refused because the daemon is stopping begins: nothing took
effect, and a client resends it after a pause (the daemon may be restarting)."""


class AlphadError(Exception):
    """An ``error`` reply: ``code`` is one of ``ErrorCode``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: ErrorCode = code
        self.message = message
