"""The JSON Schema of the wire protocol, for clients in other languages.

The document validates one request at its top level (a ``oneOf`` discriminated by
``type``); ``$defs/Reply`` validates one reply the same way, ``$defs/Alert`` an alert's
payload and ``$defs/ErrorCode`` is every ``code`` an ``error`` reply can carry. It is
generated from the message Structs the daemon decodes with, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any, get_args

import msgspec

from alphad.protocol.errors import ErrorCode
from alphad.protocol.messages import PROTOCOL_VERSION, Alert, AnyReply, AnyRequest

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema() -> dict[str, Any]:
    """The whole document: requests at the top, replies, alerts and error codes in ``$defs``."""
    requests: tuple[type, ...] = AnyRequest.__args__
    replies: tuple[type, ...] = AnyReply.__args__
    schemas, defs = msgspec.json.schema_components([*requests, *replies, Alert])
    request_refs = list(schemas[: len(requests)])
    reply_refs = list(schemas[len(requests) : len(requests) + len(replies)])
    defs["Reply"] = _one_of(reply_refs, replies, "One reply of the daemon.")
    defs["ErrorCode"] = {
        "description": "The code of an error reply.",
        "enum": sorted(get_args(ErrorCode)),
    }
    defs["Error"]["properties"]["code"] = {"$ref": "#/$defs/ErrorCode"}
    return {
        "$schema": DIALECT,
        "title": f"alphad wire protocol v{PROTOCOL_VERSION}",
        **_one_of(request_refs, requests, "One request to the daemon."),
        "$defs": defs,
    }


def _one_of(refs: list[dict[str, Any]], types: tuple[type, ...], what: str) -> dict[str, Any]:
    tags = [t.__struct_config__.tag for t in types]  # type: ignore[attr-defined]
    return {
        "description": what,
        "oneOf": refs,
        "discriminator": {
            "propertyName": "type",
            "mapping": {tag: ref["$ref"] for tag, ref in zip(tags, refs, strict=True)},
        },
    }
