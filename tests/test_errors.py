"""Error codes: one list of them, and every failure a model refuses with maps to one."""

from __future__ import annotations

from pathlib import Path
from typing import get_args, get_type_hints

import pytest

import daemon.app  # noqa: F401  (every model, so that every refusal is defined)
from actors.base import MailboxFull
from actors.errors import Refused
from actors.store import StorageUnavailable
from daemon.errors import error_code
from protocol.errors import ERROR_CODES, AlphadError, ErrorCode
from protocol.schema import json_schema

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
