"""Hand-built envelope frames: MAGIC, the header's length and bytes, the payload's length and bytes."""

from __future__ import annotations

import json
import struct
from typing import Any

from crypto_backends.envelope import MAGIC


def frame(header: dict[str, Any] | str, payload: bytes = b"") -> bytes:
    """An envelope's wire bytes around ``header`` (a dict, dumped as JSON, or the header's text as it is)."""
    head = (header if isinstance(header, str) else json.dumps(header)).encode()
    return MAGIC + struct.pack(">I", len(head)) + head + struct.pack(">Q", len(payload)) + payload
