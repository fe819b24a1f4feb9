"""Error codes of the wire protocol and the exception that carries them."""

from __future__ import annotations

ERROR_CODES: dict[str, str] = {
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


class AlphadError(Exception):
    """An ``error`` reply: ``code`` is one of ``ERROR_CODES``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
