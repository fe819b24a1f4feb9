"""Regenerate the "Every message" section of docs/protocol.md from protocol/messages.py.

python docs/generate.py
"""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path

import msgspec

from alphad.protocol.messages import (
    ADMIN_REQUESTS,
    BAR_SIZE_PATTERN,
    NAME_PATTERN,
    TEXT_PATTERN,
    Alert,
    AnyReply,
    AnyRequest,
)

DOC = Path(__file__).parent / "protocol.md"
MARKER = "## Every message\n"
# The name pattern holds a parenthesis, which the Annotated rewrite below cannot read.
NAME = f"Annotated[str, msgspec.Meta(pattern={NAME_PATTERN!r}, min_length=1, max_length=64)]"
BAR_SIZE = f"Annotated[str, msgspec.Meta(pattern={BAR_SIZE_PATTERN!r}, min_length=2, max_length=6)]"
TEXT = f"Annotated[str, msgspec.Meta(pattern={TEXT_PATTERN!r}, max_length=1024)]"
SHORT = {
    "Annotated[list[MarketBar], msgspec.Meta(min_length=1, max_length=10000)]": (
        "list of bar (1 to 10000)"
    ),
    "Annotated[list[name], msgspec.Meta(min_length=1, max_length=2)]": "list of name (1 to 2)",
    "Annotated[list[str (max_length=64)], msgspec.Meta(max_length=3)]": (
        "list of str (up to 3, each up to 64 characters)"
    ),
    "str (min_length=1, max_length=128)": "id",
    "int (ge=946684800000, le=4102444800000)": "timestamp_ms",
    "float (ge=1e-09, le=1000000000000.0)": "size",
    "float (ge=-1000000000000000.0, le=1000000000000000.0)": "amount",
}


def type_name(hint: object) -> str:
    text = re.sub(r"alphad\.protocol\.\w+\.", "", repr(hint).replace("typing.", ""))
    text = text.replace(NAME, "name").replace(BAR_SIZE, "bar_size").replace(TEXT, "text")
    text = re.sub(r"Annotated\[(\w+), msgspec.Meta\(([^)]*)\)\]", r"\1 (\2)", text)
    text = text.replace("<class '", "").replace("'>", "")
    for long, short in SHORT.items():
        text = text.replace(long, short)
    text = re.sub(r"Optional\[(.*)\]$", r"\1 or null", text)
    text = text.replace(" | None", " or null").replace("|", "\\|")
    if text.startswith("Annotated[list[Literal['strategy', 'symbol', 'regime']]"):
        return 'list of "strategy", "symbol", "regime" (1 to 3)'
    return text


def default_of(field: msgspec.structs.FieldInfo) -> str:
    if field.required:
        return "required"
    if field.default_factory is not msgspec.NODEFAULT:
        value = field.default_factory()
        return f"`{msgspec.json.encode(value).decode()}`"
    return f"`{msgspec.json.encode(field.default).decode()}`"


def section() -> str:
    out = [MARKER, "Generated from `protocol/messages.py` by `python docs/generate.py`.\n"]
    groups = (
        ("Requests", AnyRequest.__args__),
        ("Replies", AnyReply.__args__),
        ("Alert", (Alert,)),
    )
    for title, types in groups:
        out.append(f"### {title}\n")
        for message in types:
            tag = message.__struct_config__.tag
            admin = " (admin socket only)" if message in ADMIN_REQUESTS else ""
            doc = inspect.cleandoc(message.__doc__ or "").replace("``", "`")
            out.append(f"#### `{tag}`{admin}\n\n{doc}\n")
            out.append("| field | type | default |\n|---|---|---|")
            hints = typing.get_type_hints(message, include_extras=True)
            for field in msgspec.structs.fields(message):
                out.append(
                    f"| `{field.name}` | {type_name(hints[field.name])} | {default_of(field)} |"
                )
            out.append("")
    return "\n".join(out)


def main() -> None:
    text = DOC.read_text()
    head = text[: text.index(MARKER)] if MARKER in text else text + "\n"
    DOC.write_text(head + section() + "\n")


if __name__ == "__main__":
    main()
