"""README.md and SECURITY.md cannot drift from the code.

* the configuration reference states every key with the type and default of its dataclass field,
  and names no key that does not exist;
* the generated scheme tables match the schemes' declarations;
* SECURITY.md has a section in the fixed format for every scheme securefl ships.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from crypto_backends import registry
from securefl.tools import docs

README = Path("README.md").read_text(encoding="utf-8")
SECURITY = Path("SECURITY.md").read_text(encoding="utf-8")

SCHEME_SUBSECTIONS = (
    "Who holds which key",
    "What each role learns",
    "Collusion",
    "Parameters and security level",
    "Known attacks and what securefl does",
    "Not protected",
)
"""The fixed format of a SECURITY.md scheme section (listed at the top of SECURITY.md)."""


def section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section of a Markdown document (empty if absent)."""
    parts = re.split(rf"^## {re.escape(heading)}\s*$", text, maxsplit=1, flags=re.M)
    return re.split(r"^## ", parts[1], maxsplit=1, flags=re.M)[0] if len(parts) == 2 else ""


def reference_rows() -> dict[str, tuple[str, str, str]]:
    """README reference rows: key -> (type, default cell, meaning)."""
    rows = {}
    for line in section(README, "Configuration reference").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (cells[1], cells[2], cells[3])
    return rows


def toml_cell(cell: str):
    """A default cell (`` `5` ``, `` `"iid"` ``, empty) as the value TOML would read."""
    cell = cell.strip().strip("`")
    return tomllib.loads(f"v = {cell}")["v"] if cell else None


def _shared(key: str) -> bool:
    # allow_insecure belongs to every scheme; one row (crypto.plain.allow_insecure) documents them all
    parts = key.split(".")
    return parts[0] == "crypto" and len(parts) == 3 and parts[2] == "allow_insecure" and parts[1] != "plain"


def test_every_config_key_is_documented_with_its_type_and_default():
    rows = reference_rows()
    problems = []
    for key, (typ, default) in docs.config_reference().items():
        if key not in rows:
            if not _shared(key):
                problems.append(f"missing row: | `{key}` | {typ} | `{docs.toml_value(default)}` | <meaning> |")
            continue
        doc_type, doc_default, meaning = rows[key]
        if doc_type != typ:
            problems.append(f"{key}: README says type {doc_type!r}, the dataclass says {typ!r}")
        if toml_cell(doc_default) != default:
            problems.append(f"{key}: README says default {doc_default}, "
                            f"the dataclass says `{docs.toml_value(default)}`")
        if not meaning:
            problems.append(f"{key}: say what it means")
    assert not problems, "README.md's configuration reference is out of date:\n" + "\n".join(problems)


def test_the_reference_names_only_keys_that_exist():
    known = set(docs.config_reference())
    unknown = [key for key in reference_rows() if "<" not in key and key not in known]
    assert not unknown, f"README.md documents keys the config does not accept: {unknown}"


def test_reference_check_catches_a_wrong_default(monkeypatch):
    real = docs.config_reference()
    key = "federation.rounds"
    monkeypatch.setattr(docs, "config_reference", lambda: {**real, key: ("integer", 11)})
    with pytest.raises(AssertionError, match="federation.rounds: README says default `10`"):
        test_every_config_key_is_documented_with_its_type_and_default()


def test_generated_tables_match_the_scheme_declarations():
    assert docs.stale(Path(".")) == [], "run `python -m securefl.tools.docs` and commit README.md / SECURITY.md"
    for name in registry.builtin():
        assert f"| `{name}` |" in section(README, "Choosing a scheme")
        assert f"| `{name}` |" in section(SECURITY, "Summary")


def test_the_summary_says_what_a_malicious_aggregator_learns_for_every_scheme():
    """Both generated tables have the column, and each scheme's row states its own two declarations."""
    from securefl.tools.facts import MALICIOUS, cell, facts_table, scheme_facts

    header = MALICIOUS[0]
    for block in (docs.security_summary_block(), docs.schemes_block()):
        assert f"| {header} |" in block.splitlines()[0]
    facts = [scheme_facts(name) for name in registry.available()]
    table = facts_table(facts, (docs.SCHEME, MALICIOUS)).splitlines()
    for f, row in zip(facts, table[2:], strict=True):
        assert row == f"| `{f.name}` | {cell(f.malicious_aggregator_text())} |"
        assert f.threat.malicious_aggregator and f.threat.malicious_aggregator_unverified
    for name in registry.builtin():
        stated = cell(scheme_facts(name).malicious_aggregator_text())
        assert stated in section(SECURITY, "Summary") and stated in section(README, "Choosing a scheme")


def _point(params: int, round_s: float) -> dict:
    return {"params": params, "encrypt_s": round_s / 10, "round_s": round_s, "bytes_per_party": 8 * params,
            "max_abs_error": 1e-4}


def test_the_readme_cost_table_is_read_from_a_compare_report():
    """Each row from the report's own points: a skipped size says so, the largest measured size is named."""
    report = {
        "options": {"table_size": 10_000, "sizes": [10_000, 100_000, 1_000_000], "point_budget": 60.0},
        "workload": {"dataset": "breast_cancer"},
        "schemes": [
            {"name": "fast", "error": None, "points": [_point(10_000, 0.002), _point(100_000, 0.02),
                                                       _point(1_000_000, 0.2)],
             "skipped": [], "training": {"final_accuracy": 0.9441}},
            {"name": "slow", "error": None, "points": [_point(10_000, 2.0), _point(50_000, 10.0)],
             "skipped": [{"params": 100_000, "reason": "over"}], "training": {"final_accuracy": 0.93}},
            {"name": "broken", "error": "RuntimeError: boom", "points": [], "skipped": [],
             "training": {"final_accuracy": None}},
        ],
    }
    header, _rule, fast, slow, broken = docs.cost_table(report).splitlines()
    assert header == ("| scheme | protect one update, 10k values | round, 10k | round, 100k | largest size within "
                      "60 s | bytes per value | fused-vector error | accuracy (breast_cancer) |")
    assert fast == "| `fast` | 0.20 ms | 2.00 ms | 20.00 ms | 1M (200.00 ms) | 8.0 | 1.0e-04 | 0.944 |"
    assert slow == "| `slow` | 200.00 ms | 2.00 s | over budget | 50k (10.00 s) | 8.0 | 1.0e-04 | 0.930 |"
    assert broken.startswith("| `broken` | failed |")


def test_render_replaces_only_the_marked_block():
    begin, end = docs._markers("t")
    text = f"before\n{begin}\nold\n{end}\nafter\n"
    assert docs.render(text, {"t": lambda: "new"}) == f"before\n{begin}\nnew\n{end}\nafter\n"
    with pytest.raises(docs.SecureFLError, match="lacks the generated block 'u'"):
        docs.render(text, {"u": lambda: "x"})


@pytest.mark.parametrize("name", registry.builtin())
def test_security_md_has_a_section_in_the_fixed_format_per_scheme(name):
    body = section(SECURITY, f"Scheme: {name}")
    assert body, f"SECURITY.md needs a '## Scheme: {name}' section"
    headings = re.findall(r"^### (.+?)\s*$", body, flags=re.M)
    missing = [h for h in SCHEME_SUBSECTIONS if h not in headings]
    assert not missing, f"SECURITY.md's {name} section lacks: {missing}"


def test_the_format_list_at_the_top_of_security_md_is_the_one_checked():
    intro = SECURITY.split("\n## ", 1)[0]
    assert tuple(re.findall(r"^- \*\*(.+?)\*\*", intro, flags=re.M)) == SCHEME_SUBSECTIONS


def test_security_md_says_how_to_report_and_what_is_out_of_scope():
    assert "private" in section(SECURITY, "Reporting a vulnerability")
    assert section(SECURITY, "Out of scope for every scheme").strip()


def test_readme_opens_with_install_and_test_commands():
    head = README.split("## ")[0]
    assert "pip install" in head and "securefl run examples/configs/plain.toml" in head
    assert "python -m pytest" in head
    ci = Path(".ci/run").read_text()
    assert "python3 -m pytest" in ci and 'pip install' in ci


def test_the_readme_no_longer_says_a_per_party_data_source_is_missing():
    """Issue 21 item 11: the Limits paragraph said a per-party data source "is not there yet"; it is."""
    readme = README
    assert "not there\nyet" not in readme and "not there yet" not in readme
    assert 'dataset = "own"' in readme and "securefl party --data" in readme
