"""Encoders and decoders, built once: msgpack by default, JSON when a request starts with ``{``
(after any whitespace and a UTF-8 byte order mark)."""

from __future__ import annotations

from typing import Any

import msgspec

from alphad.protocol.messages import Alert, AnyReply, AnyRequest, Reply, Request

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


REQUEST_TYPES = frozenset(kind.__struct_config__.tag for kind in AnyRequest.__args__)


class UnknownType(msgspec.ValidationError):
    """A request whose ``type`` is a string that names no request (``unknown_type``)."""


class _Type(msgspec.Struct):
    type: Any = None  # any value at all, so that its kind can be looked at


_type_decoder = msgspec.msgpack.Decoder(_Type)
_type_json_decoder = msgspec.json.Decoder(_Type)


def type_refused(
    exc: msgspec.ValidationError, payload: bytes, as_json: bool
) -> msgspec.ValidationError:
    """``UnknownType``, with the text of ``exc``, when the request failed because its
    ``type`` is a string that names no request; else ``exc`` itself.

    Decided on the ``type`` field read alone, never on the wording of msgspec's error: a
    missing ``type``, one that is not a string, or a known type with a bad field is a
    ``bad_request``. Given twice, the last ``type`` decides, as for every other field.
    """
    try:
        tag = (_type_json_decoder if as_json else _type_decoder).decode(payload).type
    except (msgspec.DecodeError, RecursionError):
        return exc  # not a map: no type to speak of
    if isinstance(tag, str) and tag not in REQUEST_TYPES:
        return UnknownType(str(exc))
    return exc


def decode_request(payload: bytes) -> Any:
    """Decode a request; raises ``msgspec.DecodeError`` or ``msgspec.ValidationError``
    (``UnknownType`` for a ``type`` that names no request)."""
    text = json_text(payload)
    body = payload if text is None else text
    try:
        return (request_decoder if text is None else request_json_decoder).decode(body)
    except msgspec.ValidationError as exc:
        raise type_refused(exc, body, text is not None) from None


def decode_reply(payload: bytes) -> Any:
    """Decode a reply in either encoding."""
    text = json_text(payload)
    if text is not None:
        return reply_json_decoder.decode(text)
    return reply_decoder.decode(payload)


def decode_alert(payload: bytes) -> Alert:
    """Decode the payload frame of an alert."""
    return alert_decoder.decode(payload)
