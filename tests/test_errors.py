"""Error codes: one list of them, and every failure a model refuses with maps to one."""

from __future__ import annotations

from typing import get_args, get_type_hints

from protocol.errors import ERROR_CODES, AlphadError, ErrorCode
from protocol.schema import json_schema


def test_the_error_codes_are_one_literal_that_raise_sites_and_the_schema_share() -> None:
    # A code is checked where it is raised (mypy reads this annotation) ...
    assert get_type_hints(AlphadError.__init__)["code"] == ErrorCode
    # ... described once each, and exported by the schema from the same list.
    assert tuple(ERROR_CODES) == get_args(ErrorCode)
    assert json_schema()["$defs"]["ErrorCode"]["enum"] == sorted(get_args(ErrorCode))
