"""The documentation names every message, error code and config section the code has."""

from __future__ import annotations

from pathlib import Path

from alphad.daemon.config import Config
from alphad.protocol.errors import ERROR_CODES
from alphad.protocol.messages import Alert, AnyReply, AnyRequest

ROOT = Path(__file__).parent.parent


def test_protocol_doc_covers_every_message_and_error_code() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text()
    for message in (*AnyRequest.__args__, *AnyReply.__args__, Alert):
        assert f"`{message.__struct_config__.tag}`" in text, message
        for field in message.__struct_fields__:
            assert f"| `{field}` |" in text, (message, field)
    for code in ERROR_CODES:
        assert f"`{code}`" in text, code


def test_readme_documents_every_config_section() -> None:
    text = (ROOT / "README.md").read_text()
    for section in Config.__struct_fields__:
        assert f"`[{section}]`" in text or f"`[{section}." in text, section
