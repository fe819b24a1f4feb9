"""Error codes: one list of them, every refusal of a model mapped to one, and
``unknown_type`` told from ``bad_request`` by the request's ``type`` itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args, get_type_hints

import msgspec
import pytest

import alphad.daemon.app  # noqa: F401  (every model, so that every refusal is defined)
from alphad.actors.base import MailboxFull
from alphad.actors.errors import Refused
from alphad.actors.store import StorageUnavailable
from alphad.daemon.errors import error_code
from alphad.protocol.codec import (
    decode_request,
    is_json,
    repeated_field,
    repeated_keys,
    type_refused,
)
from alphad.protocol.errors import ERROR_CODES, AlphadError, ErrorCode
from alphad.protocol.messages import AnyRequest
from alphad.protocol.schema import json_schema
from tests.test_gateway import ask_many, serve

ROOT = Path(__file__).parent.parent


def test_the_error_codes_are_one_literal_that_raise_sites_and_the_schema_share() -> None:
    # A code is checked where it is raised (mypy reads this annotation) ...
    assert get_type_hints(AlphadError.__init__)["code"] == ErrorCode
    # ... described once each, and exported by the schema from the same list.
    assert tuple(ERROR_CODES) == get_args(ErrorCode)
    assert json_schema()["$defs"]["ErrorCode"]["enum"] == sorted(get_args(ErrorCode))


def subclasses(kind: type[Exception]) -> list[type[Exception]]:
    found = []
    for sub in kind.__subclasses__():
        found += [sub, *subclasses(sub)]
    return found


# Every refusal the models raise (daemon.app imports every model), and the failures of
# the actors' machinery that the gateway answers with their own text.
EXPECTED = [*subclasses(Refused), MailboxFull, StorageUnavailable]


@pytest.mark.parametrize("kind", EXPECTED, ids=lambda kind: kind.__name__)
def test_every_refusal_of_a_model_maps_to_a_documented_code(kind: type[Exception]) -> None:
    code, message = error_code(kind("what happened"))
    assert code != "internal" and code in ERROR_CODES
    assert message == "what happened"  # the wire message is the model's own text
    assert f"| `{code}` |" in (ROOT / "docs" / "protocol.md").read_text()


def test_the_refusals_keep_their_wire_codes() -> None:
    assert {kind.__name__: error_code(kind("x"))[0] for kind in subclasses(Refused)} == {
        "BadInput": "bad_request",
        "UnknownStrategy": "unknown_strategy",
        "LimitReached": "limit",
        "NotFound": "not_found",
        "Conflict": "conflict",
    }


# Requests that fail to decode, and their code: the unusual places a ``type`` can be in.
TYPE_CASES: list[tuple[Any, str]] = [
    ({"type": "launch_rockets"}, "unknown_type"),
    ({"type": "launch_rockets", "request_id": 5}, "unknown_type"),  # a bad field as well
    ({"type": "Get_Status"}, "unknown_type"),
    ({"type": 7}, "bad_request"),
    ({"type": None}, "bad_request"),
    ({"type": ["get_status"]}, "bad_request"),
    ({"request_id": "r1"}, "bad_request"),  # no type at all
    (["get_status"], "bad_request"),
    ("get_status", "bad_request"),
    ({"type": "get_status", "request_id": 5}, "bad_request"),
    # msgspec words this one "Invalid value 'hold'" too, at `$.side`
    ({"type": "score_signal", "strategy": "ema", "symbol": "BTC", "side": "hold"}, "bad_request"),
]


def payloads(message: Any) -> list[tuple[bytes, bool]]:
    return [(msgspec.msgpack.encode(message), False), (msgspec.json.encode(message), True)]


@pytest.mark.parametrize(("message", "code"), TYPE_CASES)
def test_unknown_type_is_told_by_the_type_field(message: Any, code: str) -> None:
    for payload, _ in payloads(message):
        with pytest.raises(msgspec.ValidationError) as failed:
            decode_request(payload)
        assert error_code(failed.value)[0] == code


@pytest.mark.parametrize(("message", "code"), TYPE_CASES)
def test_the_decision_does_not_read_msgspec_s_wording(message: Any, code: str) -> None:
    # Whatever msgspec says, in words it might use one day or the ones it uses today for
    # an unknown tag, the code follows from the payload alone.
    for payload, as_json in payloads(message):
        for words in ("Valeur invalide 'x'", "Invalid value 'x' - at `$.type`"):
            refused = type_refused(msgspec.ValidationError(words), payload, as_json)
            assert error_code(refused) == (
                code,
                f"unknown message type ({words})" if code == "unknown_type" else words,
            )


async def test_the_gateway_answers_each_with_its_code_and_msgspec_s_text(tmp_path: Path) -> None:
    gateway, endpoint = await serve(tmp_path, {})  # none of them reaches a route
    sent = [(p, code) for message, code in TYPE_CASES for p in payloads(message)]
    try:
        replies = await ask_many(endpoint, [payload for (payload, _), _ in sent])
    finally:
        await gateway.close(1.0)
    for ((payload, _), code), reply in zip(sent, replies, strict=True):
        try:  # as JSON only what starts with "{": a JSON array is msgpack to the daemon
            (msgspec.json if is_json(payload) else msgspec.msgpack).decode(payload, type=AnyRequest)
        except msgspec.ValidationError as exc:
            text = str(exc)
        else:
            raise AssertionError(f"{payload!r} decodes")
        expected = f"unknown message type ({text})" if code == "unknown_type" else text
        assert (reply.code, reply.message) == (code, expected), payload


def test_a_type_given_twice_is_read_as_every_field_is_the_last_one() -> None:
    for payload, code in [
        (b'{"type": "get_status", "type": "launch_rockets"}', "unknown_type"),
        (b'{"type": "launch_rockets", "type": "get_status"}', "bad_request"),
    ]:
        with pytest.raises(msgspec.ValidationError) as failed:
            decode_request(payload)
        assert error_code(failed.value)[0] == code, payload


def test_a_field_given_twice_is_found_at_the_top_whatever_the_maps_nested_in_it() -> None:
    head = '{"type":"score_signal","strategy":"s","symbol":"X","side":"buy","confidence":0.5'
    features = ",".join(f'"f{i}":{i}' for i in range(2_000))
    cases = [
        # A bot's map of features: its keys are not the request's.
        (head + ',"features":{' + features + "}}", None),
        # Nested keys that repeat, or that repeat the top map's, are not the top map's.
        (head + ',"x":{"a":1,"a":2},"y":{"strategy":"t","side":"sell"}}', None),
        (head + ',"features":{' + features + '},"confidence":0.9}', "`confidence`"),
        (head + ',"x":{"a":[{"b":1}]},"x":2}', "`x`"),
        # A colon after a quote inside a string is no key.
        (head + ',"note":"a\\":b\\":c"}', None),
        (head + ',"note":"a\\":b","strategy":"t"}', "`strategy`"),
        # Whitespace before a key's colon, or in a string, as a pretty printer writes it.
        (head.replace(",", ", ").replace(":", " : ") + ', "x" : {"y" : 1}}', None),
        (head + ',"note":"a\\" :b", "side" :"sell"}', "`side`"),
    ]
    for payload, repeated in cases:
        assert repeated_field(payload.encode(), as_json=True) == repeated, payload[-60:]
        assert repeated_keys(list(json.loads(payload).items())) == []  # the decoder kept one
    assert repeated_keys([("a", 1), ("b", 2), ("a", 3), ("b", 4), ("a", 5)]) == ["a", "b", "a"]
