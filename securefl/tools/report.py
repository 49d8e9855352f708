"""The files of a ``securefl compare`` run: report.md, a self-contained report.html, report.json, PNG plots.

The Markdown and the HTML are rendered from one list of blocks, so they say the
same thing; the HTML inlines its CSS and embeds the plots as base64 data URIs,
so it can be mailed or archived as one file.  report.json holds the raw numbers.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securefl.tools.compare import Comparison, SchemeResult
from securefl.tools.facts import THREAT_COLUMNS, Column, markdown_table
from securefl.tools.plots import ACCURACY_PNG, COST_PNG, PARTIES_PNG, is_floor, plot_accuracy, plot_cost, plot_parties
from securefl.tools.units import format_bytes, format_seconds

THREAT_CELLS: tuple[Column, ...] = THREAT_COLUMNS[1:]
"""The summary table's threat-model columns: the README's, but the scheme cell is the row's own label
(``<scheme>+dp(<mode>)`` for a private row)."""
TABLE_HEADERS = (
    "scheme", *(header for header, _ in THREAT_CELLS),
    "protect (s)", "combine (s)", "reveal (s)", "bytes per party", "fused-vector error", "final accuracy", "notes",
)
"""The summary table's columns (tests check the report against these)."""


# --- a tiny document model, rendered twice ---------------------------------------
@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    path: Path
    alt: str


@dataclass(frozen=True)
class Code:
    text: str


Block = Heading | Para | Bullets | Table | Image | Code


def to_markdown(blocks: Sequence[Block]) -> str:
    """``blocks`` rendered as a Markdown document."""
    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            parts.append(b.text)
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            parts.append(markdown_table(b.headers, b.rows))
        elif isinstance(b, Image):
            parts.append(f"![{b.alt}]({b.path.name})")
        else:
            parts.append(f"```\n{b.text}\n```")
    return "\n\n".join(parts) + "\n"


def _inline(text: str) -> str:
    """Escape ``text`` for HTML, keeping Markdown's `code`, **bold** and *italics* (not inside code)."""
    parts = re.split(r"(`[^`]+`)", html.escape(text))
    for i, part in enumerate(parts):
        if i % 2:
            parts[i] = f"<code>{part[1:-1]}</code>"
        else:
            part = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", part)
            parts[i] = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<em>\1</em>", part)
    return "".join(parts)


CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #1d1d1f; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.8em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: .8em 0; }
th, td { border: 1px solid #ccc; padding: .35em .55em; vertical-align: top; text-align: left; }
th { background: #f2f2f4; } tr:nth-child(even) td { background: #fafafa; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 13px; }
pre { background: #f4f4f6; padding: .8em; overflow-x: auto; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def to_html(blocks: Sequence[Block], title: str) -> str:
    """``blocks`` rendered as one self-contained HTML page titled ``title`` (inline CSS, embedded images)."""
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_inline(h)}</th>" for h in b.headers)
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            body.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>')
        elif isinstance(b, Image):
            data = base64.b64encode(b.path.read_bytes()).decode("ascii")
            body.append(f'<p><img alt="{html.escape(b.alt)}" src="data:image/png;base64,{data}"></p>')
        else:
            body.append(f"<pre>{html.escape(b.text)}</pre>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# --- content ------------------------------------------------------------------------
def _fmt_error(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.1e}"


def _notes(s: SchemeResult) -> str:
    notes = [f"`{s.scheme}` wrapped in differential privacy (settings under *Reproduce*); protect excludes the "
             "noise sampled ahead of the round (report.json: `extra.prepare_s`)"] if s.private else []
    if s.error:
        notes.append(f"**failed** in the cost measurement: {s.error}")
    if s.training_error:
        notes.append(f"**failed** in training: {s.training_error}")
    if s.skipped and not s.error:
        size, why = s.skipped[0]
        notes.append(f"sweep stopped at {size:,} values ({why.removeprefix('not measured: ')})")
    if s.facts is not None and s.facts.insecure:
        notes.append("INSECURE test parameters: figures are not representative of a real deployment")
    return "; ".join(notes)


def _accuracy(s: SchemeResult, floor: float | None) -> str:
    acc = s.final_accuracy
    if acc is None or s.training_error:
        return "failed" if s.training_error else "-"
    delta = f" ({acc - floor:+.4f})" if floor is not None and not is_floor(s) else ""
    return f"{acc:.4f}{delta}"


def summary_rows(comparison: Comparison) -> list[tuple[str, ...]]:
    size = comparison.options.table_size
    floor = next((s.final_accuracy for s in comparison.schemes if is_floor(s) and s.final_accuracy is not None), None)
    rows: list[tuple[str, ...]] = []
    for s in comparison.schemes:
        f = s.facts
        threat = tuple(get(f) for _, get in THREAT_CELLS) if f else ("-",) * len(THREAT_CELLS)
        p = s.point(size)
        if p:
            cost = (format_seconds(p.encrypt_s), format_seconds(p.aggregate_s), format_seconds(p.decrypt_s),
                    format_bytes(p.bytes_per_party), _fmt_error(p.max_abs_error))
        else:
            cost = ("failed" if s.error else "-", "-", "-", "-", "-")
        rows.append((f"`{s.name}`", *threat, *cost, _accuracy(s, floor), _notes(s)))
    return rows


def _sweep_rows(comparison: Comparison) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for s in comparison.schemes:
        for p in s.points:
            rows.append((s.name, f"{p.params:,}", format_seconds(p.keygen_s),
                         format_seconds(p.extra.get("first_round_s")), format_seconds(p.encrypt_s),
                         format_seconds(p.aggregate_s), format_seconds(p.decrypt_s), format_seconds(p.round_s),
                         format_bytes(p.bytes_per_party), f"{p.bytes_per_party / p.params:.2f}",
                         _fmt_error(p.max_abs_error), _fmt_error(p.decrypt_error)))
        for size, why in s.skipped:
            rows.append((s.name, f"{size:,}", why, *("",) * 9))
    return rows


def _party_rows(comparison: Comparison) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for s in comparison.schemes:
        for p in s.party_points:
            rows.append((s.name, f"{p.parties:,}", format_seconds(p.encrypt_s), format_seconds(p.aggregate_s),
                         format_seconds(p.decrypt_s), format_seconds(p.work_s), format_bytes(p.bytes_per_party)))
        for n, why in s.party_skipped:
            rows.append((s.name, f"{n:,}", why, *("",) * 4))
    return rows


def _party_blocks(comparison: Comparison, parties_png: Path | None) -> list[Block]:
    """The cost-against-parties section, when the comparison swept several party counts."""
    o = comparison.options
    if parties_png is None:
        return []
    return [
        Heading(2, "Cost against the number of parties"),
        Image(parties_png, "total work and bytes per party against the number of parties"),
        Para(f"Every scheme at {o.table_size:,} parameters per update for {', '.join(map(str, o.party_counts))} "
             "parties (the same standard-normal vectors, weights 1..N), one round after a discarded first. "
             "**work** = N x protect + combine + reveal: the whole federation's computation in one round, "
             f"which is what grows with N. The {o.point_budget:g} s budget per point applies as in the size "
             "sweep (a count predicted to exceed it is skipped with the larger ones); a point that would not fit "
             "in this machine's available memory is skipped and says so."),
        Table(("scheme", "parties", "protect", "combine", "reveal", "work", "bytes/party"),
              tuple(_party_rows(comparison))),
    ]


def _privacy_spent(m: object) -> str:
    """Differential privacy spent by the end of a round, when the round engine accounts it."""
    eps, delta = getattr(m, "epsilon_spent", None), getattr(m, "delta_spent", None)
    if eps is None:
        return "-"
    return f"ε = {eps:.3g}" + (f", δ = {delta:.2g}" if delta else "")


def _training_rows(comparison: Comparison) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for s in comparison.schemes:
        if s.training_error:
            rows.append((s.name, "failed", "-", "-", "-", s.training_error))
            continue
        if not s.training:
            continue
        per_round = sum(m.seconds for m in s.training) / len(s.training)
        bytes_up = sum(m.bytes_up for m in s.training) / len(s.training)
        rows.append((s.name, f"{s.final_accuracy:.4f}", format_seconds(per_round), format_bytes(bytes_up),
                     _privacy_spent(s.training[-1]), ""))
    return rows


def _threat_blocks(comparison: Comparison) -> list[Block]:
    blocks: list[Block] = []
    for s in comparison.schemes:
        f = s.facts
        blocks.append(Heading(3, f"`{s.name}`"))
        if f is None:
            blocks.append(Para(f"The scheme could not be created: {s.error}"))
            continue
        tol = "-" if s.tolerance is None else f"{s.tolerance:.1e}"
        t = f.threat
        items = [f"**key held by the {role}**: {what}" for role, what in t.key_holders.items()]
        items += [
            f"**an honest-but-curious aggregator learns**: {t.aggregator_learns}",
            f"**an actively malicious aggregator learns**, {f.malicious_aggregator_text()}",
            f"**a party learns**: {t.party_learns}",
            f"**a party colluding with the aggregator learns**: {t.collusion}",
            f"**dropouts**: {t.dropouts}",
            f"**not protected**: {t.not_protected}",
            f"**decrypted at**: the {f.reveal_site}" + (" with a per-round function key from the authority"
                                                        if f.needs_function_key else ""),
            f"**parameters** ({f.security_phrase()}): `{json.dumps(s.params, default=str)}`",
            f"**presets** (security bits): {f.presets_text()}; declared error bound {tol} for these weights",
        ]
        items += [f"warning: {w}" for w in s.warnings]
        blocks.append(Bullets(tuple(items)))
    blocks.append(Para("Each scheme's section in SECURITY.md gives the known attacks and what securefl does "
                       "about each."))
    return blocks


def _machine_items(m: Mapping[str, Any]) -> tuple[str, ...]:
    mem = m.get("memory_bytes")
    libs = ", ".join(f"{k} {v}" for k, v in m.get("libraries", {}).items())
    return (
        f"CPU: {m.get('cpu') or 'unknown'}; {m.get('cores')} cores ({m.get('usable_cores')} usable by this process)",
        f"memory: {format_bytes(mem) if mem else 'unknown'}",
        f"operating system: {m.get('os')}",
        f"Python: {m.get('python')}",
        f"libraries: {libs}",
        f"securefl source revision: {m.get('source_revision') or 'unknown (not a git checkout)'}",
    )


def blocks(comparison: Comparison, cost_png: Path, accuracy_png: Path,
           parties_png: Path | None = None) -> list[Block]:
    """The report's content as blocks, shared by the Markdown and the HTML: tables, plots, threat model, machine."""
    c, o, w = comparison, comparison.options, comparison.workload
    floor = [s.name for s in c.schemes if is_floor(s)]
    out: list[Block] = [
        Heading(1, "securefl compare"),
        Para(f"Started {c.started}, took {c.seconds:.0f} s. Every scheme ran in one process, one after the other, "
             "on the same inputs, so the ratios between rows are meaningful; absolute times hold for this machine "
             "only (see *Machine*)."),
        Heading(2, "Summary"),
        Para(f"Cost columns: {o.parties} parties, {o.table_size:,} parameters per update (standard-normal values, "
             f"weights 1..{o.parties}). Final accuracy: {w['model']} on {w['dataset']} ({w['partition']} split) over "
             f"{w['parties']} parties and {w['rounds']} rounds, in brackets the difference to the unprotected floor."),
        Table(TABLE_HEADERS, tuple(summary_rows(c))),
        Para("**protect**: one party protects (encrypts, masks) one update, serialisation included; **combine**: the "
             "aggregator parses and combines every upload; **reveal**: from the combined bytes to the fused vector, "
             "any function-key step included; **bytes per party**: one serialised upload; **fused-vector error**: "
             "largest absolute difference from numpy's weighted mean. The threat-model columns are the schemes' own "
             "declarations (`ThreatModel` in `crypto_backends/base.py`), also printed in README.md and SECURITY.md."),
        Heading(2, "Cost against model size"),
        Image(cost_png, "seconds per round and bytes per party against model size"),
        Para(f"Each scheme is one line; {', '.join(floor) or 'no scheme'} (no protection) is the floor. Every size "
             "runs two rounds with fresh keys: the figures are the second (steady state); **first round** is the "
             "first one, which also pays one-time costs (helper processes, process-wide tables) that a long-running "
             "federation pays once. **round** = protect + combine + reveal (parties protect in parallel). Sizes "
             f"are measured in ascending order; a size predicted to take more than {o.point_budget:g} s for one "
             "scheme is skipped for that scheme, together with the larger ones (`--point-budget`); the largest "
             "size of the 1-2-5 series that fits the budget is measured in its place, if it is at least twice the "
             "last one. **error** is the published vector's max |error| against numpy (after the scheme's publication "
             "step, e.g. ckks' noise flooding), **decrypt error** the decryption's, before publication."),
        Table(("scheme", "parameters", "keygen", "first round", "protect", "combine", "reveal", "round",
               "bytes/party", "bytes/value", "error", "decrypt error"), tuple(_sweep_rows(c))),
        *_party_blocks(c, parties_png),
        Heading(2, "Accuracy per round"),
        Image(accuracy_png, "held-out accuracy per round for each scheme"),
        Table(("scheme", "final accuracy", "seconds per round", "bytes up per party", "privacy spent", "error"),
              tuple(_training_rows(c))),
        Heading(2, "Threat model per scheme"),
        *_threat_blocks(c),
        Heading(2, "Machine"),
        Bullets(_machine_items(c.machine)),
        Heading(2, "Reproduce"),
        Code(c.command),
        Para(f"Configuration: `{w['config']}`" + (f" (sha256 `{w['config_sha256']}`)" if w.get("config_sha256") else "")
             + f"; federation seed {w['seed']}, quorum {w['quorum']}, local_epochs {w['local_epochs']}; "
             + "privacy " + ", ".join(f"{k} = {v}" for k, v in w["privacy"].items()) + ". "
             "The raw numbers are in report.json."),
    ]
    return out


def write(comparison: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html, report.json and the PNG plots into ``out_dir`` (created if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cost = plot_cost(comparison, out / COST_PNG)
    accuracy = plot_accuracy(comparison, out / ACCURACY_PNG)
    parties = plot_parties(comparison, out / PARTIES_PNG) if len(comparison.options.party_counts) > 1 else None
    doc = blocks(comparison, cost, accuracy, parties)
    files = {"md": out / "report.md", "html": out / "report.html", "json": out / "report.json",
             "cost": cost, "accuracy": accuracy}
    if parties is not None:
        files["parties"] = parties
    files["md"].write_text(to_markdown(doc), encoding="utf-8")
    files["html"].write_text(to_html(doc, "securefl compare"), encoding="utf-8")
    raw = json.dumps(_finite(comparison.as_json()), indent=2, default=str, allow_nan=False)
    files["json"].write_text(raw + "\n", encoding="utf-8")
    return files


def _finite(obj: object) -> object:
    """``obj`` with NaN and infinities as ``null``, so report.json is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


__all__ = ["TABLE_HEADERS", "blocks", "plot_accuracy", "plot_cost", "plot_parties", "to_html", "to_markdown", "write"]
