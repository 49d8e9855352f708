"""The terminal rendering of results: the rich tables and note lines ``securefl bench``, ``compare`` and
``dp-curve`` print.

Each function returns renderables and prints nothing, so the command decides where they go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from crypto_backends.statements import VerifyMode
from securefl.tools.units import format_bytes, format_seconds

if TYPE_CHECKING:
    from securefl.tools.bench import BenchResult
    from securefl.tools.compare import Comparison

BENCH_COLUMNS = ("scheme", "parties", "bits", "encrypt", "aggregate", "decrypt", "round", "bytes/party",
                 "bytes/value", "max |error|", "decrypt |error|", "work / numpy")
ERROR_WIDTH = 80
"""A failed row shows this many characters of its error; a longer one is printed in full below the table."""


def _bits(r: BenchResult) -> str:
    """The bits column: "none" for a scheme that does not hide updates, whatever its nominal level."""
    if r.hides_updates is False:
        return "none"
    return str(r.security_bits) if r.security_bits else "-"


def _bench_row(r: BenchResult) -> tuple[str, ...]:
    """One row of the bench table: the measured columns, or "failed" and the start of the error."""
    if r.error:
        return (r.scheme, str(r.parties), "", "[red]failed[/]", r.error[:ERROR_WIDTH], "", "", "", "", "", "", "")
    return (r.scheme, str(r.parties), _bits(r), format_seconds(r.encrypt_s), format_seconds(r.aggregate_s),
            format_seconds(r.decrypt_s), format_seconds(r.round_s), format_bytes(r.bytes_per_party),
            f"{r.bytes_per_party / r.params:.2f}", f"{r.max_abs_error:.2e}",
            "-" if r.decrypt_error is None else f"{r.decrypt_error:.2e}", f"{r.x_numpy:.2f}x" if r.x_numpy else "-")


def _table(title: str, columns: Sequence[str]) -> Table:
    """An empty table titled ``title``: the scheme column left-aligned, the figures right-aligned."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col == "scheme" else "right")
    return table


def bench_table(results: Sequence[BenchResult], counts: Sequence[int], params: int) -> Table:
    """The bench table: one row per scheme and party count, in the order of ``results``."""
    shown = ", ".join(str(c) for c in counts)
    table = _table(f"securefl bench: {shown} parties x {params} parameters, weights 1..N; max |error| of the "
                   "published vector, decrypt |error| before publication", BENCH_COLUMNS)
    for r in results:
        table.add_row(*_bench_row(r))
    return table


VERIFY_COLUMNS = ("scheme", "parties", "mode", "sign/party", "aggregator", "verify/verifier", "verifiers", "work x",
                  "round x", "evidence/verifier", "bytes x", "blocks checked", "detect 1 block (one/any)")
VERIFIED_MODES: tuple[VerifyMode, ...] = ("full", "sampled")
"""The verified reveal's modes ``securefl bench --verify`` measures, in the order its table shows them."""


def verify_table(results: Sequence[BenchResult], counts: Sequence[int], params: int) -> Table:
    """``securefl bench --verify``'s second table: each scheme row's verified-reveal cost in each mode measured
    (the ``*_<mode>`` columns of :mod:`securefl.tools.bench`), as ratios to its rounds without verification in the
    same run (work x and round x from the added parts), one verifier's bytes (evidence, and x over its traffic
    without), and the chance that one verifier, and any of them, catches one altered block (under ``sampled``:
    ``k of B`` blocks drawn; ``all`` refolded under ``full``; ``statements`` where nothing is folded)."""
    shown = ", ".join(str(c) for c in counts)
    table = _table(f"verified reveal (verify_aggregate = full / sampled): {shown} parties x {params} parameters; "
                   "x = with verification / without, same run and keys; aggregator = its checks of the statements "
                   "and its evidence (openings under sampled)", VERIFY_COLUMNS)
    for r in results:
        for mode in VERIFIED_MODES:
            if not r.error and f"verify_x_{mode}" in r.extra:
                table.add_row(*_verify_row(r, mode))
    return table


def _verify_row(r: BenchResult, mode: str) -> tuple[str, ...]:
    """One scheme's row of the verified-reveal table in ``mode``."""
    e = {name.removesuffix(f"_{mode}"): value for name, value in r.extra.items() if name.endswith(f"_{mode}")}
    verifiers = int(e["verifiers"])
    if e["blocks"]:
        drawn = f"{e['samples']:.0f} of {e['blocks']:.0f}"
        detect = f"{e['detect_one_block']:.3f} / {e['detect_one_block_any']:.3f}"
    else:  # full refolds every block; a scheme that does not fold checks the statements alone
        drawn = "all" if e["detect_one_block"] else "statements"  # a scheme verifiers cannot fold (secagg, fe)
        detect = f"{e['detect_one_block']:.0f} / {e['detect_one_block_any']:.0f}" if verifiers else "-"
    return (r.scheme, str(r.parties), mode, format_seconds(e["sign_s"]), format_seconds(e["check_s"] + e["prove_s"]),
            format_seconds(e["verify_s"]) if verifiers else "-", str(verifiers),
            f"{e['verify_added_x']:.2f}x", f"{e['verify_round_x']:.2f}x",
            format_bytes(e["evidence_bytes"]) if verifiers else "-", f"{e['verify_bytes_x']:.2f}x", drawn, detect)


def bench_notes(results: Sequence[BenchResult]) -> list[Text]:
    """The lines under the bench table: each row's note and long error, then the DP and share-exchange costs."""
    lines: list[Text] = []
    for r in results:
        if r.note:
            lines.append(Text(f"  {r.scheme} ({r.parties} parties): {r.note}"))
        if r.error and len(r.error) > ERROR_WIDTH:
            lines.append(Text(f"  {r.scheme} ({r.parties} parties) failed: {r.error}"))
    return lines + dp_cost_notes(results) + share_cost_notes(results)


def share_cost_notes(results: Sequence[BenchResult]) -> list[Text]:
    """For each row revealed by a share exchange: what its decrypt column is made of, and the round's total work."""
    return [Text(f"  {r.scheme}: decrypt = shares of {r.extra.get('shares_asked', 0):.0f} parties "
                 f"{format_seconds(r.extra.get('shares_total_s', 0.0))} (summed) + the aggregator's checks and "
                 f"combination {format_seconds(r.extra['unmask_s'])}; total work (parties x encrypt + "
                 f"aggregate + decrypt) {format_seconds(r.work_s)}")
            for r in results if not r.error and "share_s" in r.extra]


def dp_cost_notes(results: Sequence[BenchResult]) -> list[Text]:
    """For each ``<scheme>+dp(...)`` row: its round time against the bare scheme's, and the offline noise time."""
    rows = {r.scheme: r for r in results if not r.error}
    lines: list[Text] = []
    for label, r in rows.items():
        base = rows.get(label.partition("+dp(")[0]) if "+dp(" in label else None
        if base is None or not base.round_s:
            continue
        prep = r.extra.get("prepare_s", 0.0)
        lines.append(Text(f"  {label}: round {r.round_s / base.round_s:.2f}x {base.scheme}'s online "
                          f"(noise sampled ahead of the round in {format_seconds(prep)} per party, off the critical "
                          f"path; {(r.round_s + prep) / base.round_s:.2f}x counting it); max |error| includes "
                          "clipping to privacy.clip_norm and the noise"))
    return lines


def compare_table(comparison: Comparison, parties: int, table_size: int) -> Table:
    """The terminal summary of a compare run: the report's summary table without the threat-model columns."""
    from securefl.tools import report

    table = Table(title=f"securefl compare: {parties} parties x {table_size:,} parameters")
    for col in ("scheme", "bits", "protect", "combine", "reveal", "bytes/party", "max |error|", "final accuracy"):
        table.add_column(col, justify="left" if col == "scheme" else "right")
    costs = report.TABLE_HEADERS.index("protect (s)")  # the cost columns and accuracy follow the threat columns
    for row in report.summary_rows(comparison):
        table.add_row(row[0].strip("`"), row[1], *row[costs:costs + 6])
    return table


def compare_notes(comparison: Comparison) -> list[Text]:
    """One line per scheme whose summary row has a note: the scheme and the note."""
    from securefl.tools import report

    return [Text(f"  {row[0].strip('`')}: {row[-1]}") for row in report.summary_rows(comparison) if row[-1]]


def dp_curve_table(curve: Mapping[str, Any]) -> Table:
    """The accuracy-against-epsilon table of a ``dpcurve.run_curve`` result: mean (std) per method and epsilon."""
    from securefl.tools import dpcurve

    table = Table(title=f"naive Bayes accuracy vs epsilon: {curve['dataset']}, {curve['parties']} parties, "
                        f"mean (std) over {curve['seeds']} seeds, {curve['mechanism']} noise")
    table.add_column("method")
    for eps in curve["epsilons"]:
        table.add_column(f"eps={eps:g}", justify="right")
    for name, row in curve["methods"].items():
        cells = (f"{m:.3f} ({s:.3f})" for m, s in zip(row["mean"], row["std"], strict=True))
        table.add_row(dpcurve.label(name, curve), *cells)
    return table
