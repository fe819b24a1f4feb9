"""Encoders and decoders, built once: msgpack by default, JSON when a request starts with ``{``
(after any whitespace and a UTF-8 byte order mark)."""

from __future__ import annotations

from typing import Any

import msgspec

from protocol.messages import Alert, AnyReply, AnyRequest, Reply, Request

msgpack_encoder = msgspec.msgpack.Encoder()
json_encoder = msgspec.json.Encoder()
request_decoder = msgspec.msgpack.Decoder(AnyRequest)
request_json_decoder = msgspec.json.Decoder(AnyRequest)
reply_decoder = msgspec.msgpack.Decoder(AnyReply)
reply_json_decoder = msgspec.json.Decoder(AnyReply)
alert_decoder = msgspec.msgpack.Decoder(Alert)


_BOM = b"\xef\xbb\xbf"
# The bytes that may come before a JSON request's ``{``. None of them starts a msgpack
# map, so a payload that begins with one is JSON or nothing.
JSON_LEADS = frozenset((b" ", b"\t", b"\r", b"\n", _BOM[:1]))


def json_text(payload: bytes) -> bytes | None:
    """The JSON text of a request, without a leading byte order mark, or None when the
    payload is msgpack: JSON is a ``{`` first, after any whitespace and a UTF-8 BOM."""
    if payload[:1] == b"{":
        return payload
    text = payload[len(_BOM) :] if payload.startswith(_BOM) else payload
    text = text.lstrip(b" \t\r\n")
    return text if text[:1] == b"{" else None


def is_json(payload: bytes) -> bool:
    """A payload whose first byte is ``{``, after any whitespace and a UTF-8 BOM, is JSON;
    anything else is msgpack."""
    return json_text(payload) is not None


def encode(message: Request | Reply | Alert, as_json: bool = False) -> bytes:
    """Encode a message for the wire."""
    return json_encoder.encode(message) if as_json else msgpack_encoder.encode(message)


def decode_request(payload: bytes) -> Any:
    """Decode a request; raises ``msgspec.DecodeError`` or ``msgspec.ValidationError``."""
    text = json_text(payload)
    if text is not None:
        return request_json_decoder.decode(text)
    return request_decoder.decode(payload)


def decode_reply(payload: bytes) -> Any:
    """Decode a reply in either encoding."""
    text = json_text(payload)
    if text is not None:
        return reply_json_decoder.decode(text)
    return reply_decoder.decode(payload)


def decode_alert(payload: bytes) -> Alert:
    """Decode the payload frame of an alert."""
    return alert_decoder.decode(payload)
