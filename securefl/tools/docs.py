"""Keep README.md and SECURITY.md in step with the code.

Two kinds of facts live in both the code and the documents:

* the schemes' threat models: README.md's "Choosing a scheme" table and
  SECURITY.md's summary table are *generated* from the schemes' declarations
  (:mod:`securefl.tools.facts`) between marker comments
  ``<!-- generated:NAME -->`` ... ``<!-- /generated:NAME -->``;
* the round's sequence diagram in README.md's "Architecture", drawn from the
  messages each built-in scheme's round really sends
  (:mod:`securefl.tools.roundtrace`);
* the configuration keys: README.md's configuration reference is written by
  hand (its "meaning" column is prose), and :func:`config_reference` gives the
  type and default each row must state, so a test can compare them.

``python -m securefl.tools.docs`` rewrites the generated blocks; ``--check`` only
reports stale ones (exit status 1), which is what the test suite runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from crypto_backends import registry
from securefl import config
from securefl.errors import SecureFLError
from securefl.tools.facts import (
    AGGREGATOR,
    COLLUSION,
    KEY_HOLDERS,
    MALICIOUS,
    NOT_PROTECTED,
    PRESETS,
    REVEAL,
    SCHEME,
    SECURITY,
    THREAT_COLUMNS,
    SchemeFacts,
    facts_table,
    markdown_table,
    scheme_facts,
)
from securefl.tools.roundtrace import builtin_diagram
from securefl.tools.units import format_seconds

ROOT = Path(__file__).resolve().parents[2]  # the repository: securefl/tools/docs.py -> ../../..


def _builtin_facts() -> list[SchemeFacts]:
    # The documents describe what securefl ships, not whatever plug-ins happen to be installed.
    return [scheme_facts(name) for name in registry.builtin()]


def schemes_block() -> str:
    """The generated Markdown table of every built-in scheme's threat model and reveal site."""
    return facts_table(_builtin_facts(), (*THREAT_COLUMNS, REVEAL))


def security_summary_block() -> str:
    """The generated Markdown table of every built-in scheme's security level, presets and key holders."""
    return facts_table(_builtin_facts(), (SCHEME, SECURITY, PRESETS, KEY_HOLDERS, AGGREGATOR, MALICIOUS, COLLUSION,
                                           NOT_PROTECTED))


GENERATED: dict[str, dict[str, Callable[[], str]]] = {
    "README.md": {"schemes": schemes_block, "round": builtin_diagram},
    "SECURITY.md": {"summary": security_summary_block},
}


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- generated:{name} (python -m securefl.tools.docs) -->", f"<!-- /generated:{name} -->"


def render(text: str, blocks: dict[str, Callable[[], str]], *, source: str = "document") -> str:
    """``text`` with every generated block replaced by its current content."""
    for name, make in blocks.items():
        begin, end = _markers(name)
        found = re.search(re.escape(begin) + r"\n.*?" + re.escape(end), text, re.S)
        if not found:
            raise SecureFLError(f"{source} lacks the generated block {name!r}; add the two lines "
                              f"{begin!r} and {end!r} where it belongs")
        text = f"{text[:found.start()]}{begin}\n{make()}\n{end}{text[found.end():]}"
    return text


def stale(root: Path = ROOT) -> list[str]:
    """Names (``file:block``) of generated blocks whose content is out of date."""
    out = []
    for rel, blocks in GENERATED.items():
        text = (root / rel).read_text(encoding="utf-8")
        for name, make in blocks.items():
            if render(text, {name: make}, source=rel) != text:
                out.append(f"{rel}:{name}")
    return out


def write(root: Path = ROOT) -> list[str]:
    """Regenerate every block in place (all files or none); returns the files that changed."""
    updates = {}
    for rel, blocks in GENERATED.items():
        text = (root / rel).read_text(encoding="utf-8")
        new = render(text, blocks, source=rel)
        if new != text:
            updates[rel] = new
    for rel, new in updates.items():
        (root / rel).write_text(new, encoding="utf-8")
    return list(updates)


# --- configuration reference --------------------------------------------------
_TYPE_WORDS = {"an integer": "integer", "a number": "number", "true or false": "boolean", "a string": "string"}
_PLURALS = {"integer": "integers", "number": "numbers", "boolean": "booleans", "string": "strings"}


def doc_type(type_name: str) -> str:
    """The README's spelling of a type (``"a list of a string"`` -> ``"list of strings"``; alternatives joined by
    "or")."""
    if " or " in type_name and type_name not in _TYPE_WORDS:
        return " or ".join(map(doc_type, type_name.split(" or ")))
    if type_name.startswith("a list of "):
        inner = doc_type(type_name[len("a list of "):])
        return f"list of {_PLURALS.get(inner, inner)}"
    return _TYPE_WORDS.get(type_name, type_name)


def config_reference() -> dict[str, tuple[str, Any]]:
    """Every configuration key -> (README type, default as TOML would read it: lists, not tuples)."""
    rows = {}
    for key, type_name, default, _doc in config.reference_fields():
        if default is dataclasses.MISSING:
            default = None
        rows[key] = (doc_type(type_name), list(default) if isinstance(default, tuple) else default)
    return rows


def toml_value(value: Any) -> str:
    """``value`` written as TOML (for messages that suggest a reference row); ``None`` -> empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


# --- the README's cost table, from a compare run --------------------------------
def _size(values: int) -> str:
    """``10000`` -> ``"10k"``, ``1000000`` -> ``"1M"`` (sizes of the 1-2-5 series)."""
    for unit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if values >= unit and values % unit == 0:
            return f"{values // unit}{suffix}"
    return f"{values:,}"


def _cost_row(scheme: Mapping[str, Any], size: int, next_size: int | None) -> list[str]:
    """One scheme's README row: its point at ``size``, its round at ``next_size``, its largest measured point."""
    points = {p["params"]: p for p in scheme["points"]}
    at = points.get(size)
    if at is None:
        return [f"`{scheme['name']}`", "failed" if scheme["error"] else "-", *("-",) * 6]
    skipped = {s["params"] for s in scheme["skipped"]}
    nxt = points.get(next_size) if next_size else None
    nxt_cell = format_seconds(nxt["round_s"]) if nxt else "over budget" if next_size in skipped else "-"
    largest = points[max(points)]
    accuracy = scheme["training"].get("final_accuracy")
    return [f"`{scheme['name']}`", format_seconds(at["encrypt_s"]), format_seconds(at["round_s"]), nxt_cell,
            f"{_size(largest['params'])} ({format_seconds(largest['round_s'])})",
            f"{at['bytes_per_party'] / size:.1f}", f"{at['max_abs_error']:.1e}",
            "failed" if accuracy is None else f"{accuracy:.3f}"]


def cost_table(report: Mapping[str, Any]) -> str:
    """README.md's cost table from a ``securefl compare`` report.json (``report``): one row per scheme.

    Columns: protect one update and a round at the report's table size, a round at the
    next size of its sweep ("over budget" where the sweep predicted more than
    ``--point-budget`` seconds), the largest size measured within the budget, bytes per
    value, the fused vector's largest error and the final training accuracy.
    """
    options, size = report["options"], int(report["options"]["table_size"])
    next_size = next((s for s in sorted(options["sizes"]) if s > size), None)
    headers = [f"protect one update, {_size(size)} values", f"round, {_size(size)}",
               f"round, {_size(next_size)}" if next_size else "round, next size",
               f"largest size within {options['point_budget']:g} s", "bytes per value", "fused-vector error",
               f"accuracy ({report['workload']['dataset']})"]
    return markdown_table(["scheme", *headers], [_cost_row(s, size, next_size) for s in report["schemes"]])


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the generated blocks in the docs, or with ``--check`` list stale ones (exit 1 if any)."""
    parser = argparse.ArgumentParser(prog="python -m securefl.tools.docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale blocks (exit 1 if any)")
    parser.add_argument("--cost-table", metavar="REPORT_JSON",
                        help="print README.md's cost table from a securefl compare report.json, and nothing else")
    args = parser.parse_args(argv)
    try:
        if args.cost_table:
            print(cost_table(json.loads(Path(args.cost_table).read_text(encoding="utf-8"))))
            return 0
        if args.check:
            names = stale()
            for name in names:
                print(f"stale: {name} (run python -m securefl.tools.docs)")
            return 1 if names else 0
        for rel in write():
            print(f"updated {rel}")
    except SecureFLError as exc:
        print(f"securefl.tools.docs: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
