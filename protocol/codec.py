"""Encoders and decoders, built once: msgpack by default, JSON when a request starts with ``{``."""

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


def is_json(payload: bytes) -> bool:
    """A payload whose first byte is ``{`` is JSON; anything else is msgpack."""
    return payload[:1] == b"{"


def encode(message: Request | Reply | Alert, as_json: bool = False) -> bytes:
    """Encode a message for the wire."""
    return json_encoder.encode(message) if as_json else msgpack_encoder.encode(message)


def decode_request(payload: bytes) -> Any:
    """Decode a request; raises ``msgspec.DecodeError`` or ``msgspec.ValidationError``."""
    if is_json(payload):
        return request_json_decoder.decode(payload)
    return request_decoder.decode(payload)


def decode_reply(payload: bytes) -> Any:
    """Decode a reply in either encoding."""
    if is_json(payload):
        return reply_json_decoder.decode(payload)
    return reply_decoder.decode(payload)


def decode_alert(payload: bytes) -> Alert:
    """Decode the payload frame of an alert."""
    return alert_decoder.decode(payload)
