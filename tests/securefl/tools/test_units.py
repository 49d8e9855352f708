from __future__ import annotations

import math

from securefl.tools.units import format_bytes, format_seconds


def test_seconds_and_bytes_read_as_people_write_them():
    assert format_seconds(0.0123) == "12.30 ms" and format_seconds(3.2) == "3.20 s"
    assert format_bytes(100) == "100 B" and format_bytes(2048) == "2.0 KiB" and format_bytes(3 * 2**30) == "3.0 GiB"
    assert format_seconds(None) == format_seconds(math.nan) == format_bytes(math.nan) == "-"
