"""Encoders and decoders, built once: msgpack by default, JSON when a request starts with ``{``
(after any whitespace and a UTF-8 byte order mark)."""

from __future__ import annotations

import json
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
    ``bad_request``. Given twice, the last ``type`` decides here (a request that decodes is
refused for a field given twice, ``repeated_field``).
    """
    try:
        tag = (_type_json_decoder if as_json else _type_decoder).decode(payload).type
    except (msgspec.DecodeError, RecursionError):
        return exc  # not a map: no type to speak of
    if isinstance(tag, str) and tag not in REQUEST_TYPES:
        return UnknownType(str(exc))
    return exc


# The top-level map's keys, each value left as its bytes: a value the request's decoder
# skipped (an unknown field's 1e999, a bad timestamp) must not stop the count.
_keys_msgpack = msgspec.msgpack.Decoder(dict[str, msgspec.Raw])
_keys_json = msgspec.json.Decoder(dict[str, msgspec.Raw])


def repeated_field(payload: bytes, as_json: bool) -> str | None:
    """What names a field the request's map gives twice, or None. A decoder keeps the
    last value, so a ``record_trade`` whose ``pnl`` came twice would record the second:
    the request is refused instead. Checked on the top-level map only, after it decoded."""
    try:
        if as_json:
            keys = _keys_json.decode(payload)
            colons = _key_colons(payload)
            if colons <= len(keys):
                return None  # one key per colon after a quote: none repeated
            # Those of nested maps (a bot's map of features) are not the top map's keys.
            colons -= sum(_key_colons(bytes(raw)) for raw in keys.values())
            if colons <= len(keys):
                return None
            return _repeated_json_key(payload)
        size = _map_size(payload)
        if size is None or size <= len(_keys_msgpack.decode(payload)):
            return None
        return "a field"
    except (msgspec.DecodeError, RecursionError, TypeError, ValueError):
        return None  # what the request's decoder took but a second reading cannot


def repeated_in_list(payload: bytes, as_json: bool, name: str) -> str | None:
    """``repeated_field`` of each map in the request's list ``name`` (``market_bars``'
    bars: a bar whose ``close`` came twice was held at the second), naming the first
    such field and its map's place, or None."""
    try:
        raw = (_keys_json if as_json else _keys_msgpack).decode(payload).get(name)
        if raw is None:
            return None
        items = (_list_json if as_json else _list_msgpack).decode(raw)
    except (msgspec.DecodeError, RecursionError, TypeError, ValueError):
        return None
    for i, item in enumerate(items):
        found = repeated_field(bytes(item), as_json)
        if found is not None:
            return f"{found} of {name}[{i}]"
    return None


_list_msgpack = msgspec.msgpack.Decoder(list[msgspec.Raw])
_list_json = msgspec.json.Decoder(list[msgspec.Raw])


def _key_colons(text: bytes) -> int:
    """How often a quote is followed by a colon, after any whitespace: at least once for
    every key of every map in the JSON ``text`` (more where a string holds one). The
    whitespace is deleted first, which can only add such pairs, never remove one; a
    regular expression for the same took 0.3 ms for 60 KB, eight times as long."""
    return text.translate(None, b" \t\r\n").count(b'":')


def _map_size(payload: bytes) -> int | None:
    """The number of entries a msgpack map at the start of ``payload`` declares."""
    lead = payload[0] if payload else 0
    if 0x80 <= lead <= 0x8F:
        return lead & 0x0F
    if lead == 0xDE and len(payload) >= 3:
        return int.from_bytes(payload[1:3], "big")
    if lead == 0xDF and len(payload) >= 5:
        return int.from_bytes(payload[1:5], "big")
    return None


def _repeated_json_key(payload: bytes) -> str | None:
    top: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        top[:] = repeated_keys(items)
        return dict(items)

    json.loads(payload, object_pairs_hook=pairs)  # the top-level map is the last one made
    return f"`{top[0]}`" if top else None


def repeated_keys(items: list[tuple[str, Any]]) -> list[str]:
    """The keys of ``items`` given before, in order, in one pass (comparing each with
    every key before it took half a second for a map of 7 000 keys)."""
    seen: set[str] = set()
    repeated: list[str] = []
    for key, _ in items:
        if key in seen:
            repeated.append(key)
        else:
            seen.add(key)
    return repeated


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
