"""Hostile JSON tokens for fuzzing parsers (hypothesis strategies)."""

from __future__ import annotations

from hypothesis import strategies as st

# what today's json module turns into RecursionError, ValueError, OverflowError (or lets through as inf/nan)
hostile = st.one_of(
    st.integers(min_value=25, max_value=6000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=25, max_value=6000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(min_value=20, max_value=6000).map(lambda n: "9" * n),
    st.integers(min_value=20, max_value=6000).map(lambda n: "-" + "1" * n),
    st.integers(min_value=309, max_value=100000).map(lambda e: f"1e{e}"),
    st.integers(min_value=309, max_value=100000).map(lambda e: f"-2.5E+{e}"),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "[NaN]", "[1e999]", "[1" + "0" * 400 + "]"]),
)
