"""docs/protocol.md's "Every message" section is what docs/generate.py makes of the
message Structs now: a field or a docstring changed without regenerating fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_message_reference_in_the_docs_is_current() -> None:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "docs" / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    text = (ROOT / "docs" / "protocol.md").read_text()
    assert generate.MARKER in text
    written = text[text.index(generate.MARKER) :]
    assert written == generate.section() + "\n", "run `python docs/generate.py`"
