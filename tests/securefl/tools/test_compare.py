"""``securefl compare``: the report's structure from a tiny run, failures as rows, the time cap."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crypto_backends import registry
from securefl import config
from securefl.cli.main import main
from securefl.errors import ConfigError
from securefl.tools import compare
from securefl.tools.compare import DEFAULT_SIZES, CompareOptions, _Sweep
from securefl.tools.report import TABLE_HEADERS
from tests.paths import CONFIGS
from tests.plugins import plugin_scheme

ROUNDS = 1  # test presets may allow one publication per key set (ckks: flooding_queries = 1)
LR_DP = CONFIGS / "logistic_dp.toml"


def fast_config(directory: Path) -> Path:
    """A 3-party, one-round config with every registered scheme's ``test`` preset (generic over schemes)."""
    lines = ["[federation]", "parties = 3", f"rounds = {ROUNDS}", "seed = 1", "", "[crypto]", 'scheme = "plain"']
    for name in registry.available():
        if "test" in registry.params_type(name).presets():
            lines += ["", f"[crypto.{name}]", 'preset = "test"']
    path = directory / "fast.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def summary_table(md: str) -> list[list[str]]:
    """Cells of the summary table's body rows (split on unescaped pipes)."""
    header = "| " + " | ".join(TABLE_HEADERS) + " |"
    assert header in md, "the summary table's header row is missing or its columns changed"
    rows = []
    for line in md.split(header, 1)[1].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("compare")
    out = tmp / "report"
    argv = ["compare", "--config", str(fast_config(tmp)), "--params", "200", "400", "--out", str(out)]
    code = main(argv)
    return {"code": code, "out": out, "argv": argv, "md": (out / "report.md").read_text(),
            "html": (out / "report.html").read_text(), "json": json.loads((out / "report.json").read_text())}


def test_every_registered_scheme_has_a_full_row(report):
    assert report["code"] == 0, report["md"]
    rows = summary_table(report["md"])
    assert [r[0].strip("`") for r in rows] == registry.available()
    for row in rows:
        assert len(row) == len(TABLE_HEADERS)
        cells = dict(zip(TABLE_HEADERS, row, strict=True))
        assert re.fullmatch(r"\d+( \(INSECURE: test parameters\))?|none: updates are not hidden",
                            cells["security (bits)"])
        for col in ("protect (s)", "combine (s)", "reveal (s)"):
            assert re.fullmatch(r"[\d.]+ m?s", cells[col]), (col, cells[col])
        assert re.fullmatch(r"[\d.]+ (B|KiB|MiB)", cells["bytes per party"])
        assert re.fullmatch(r"\d\.\de[+-]\d+", cells["fused-vector error"])
        assert re.fullmatch(r"[01]\.\d{4}( \([+-]\d\.\d{4}\))?", cells["final accuracy"])
        assert "party" in cells["who holds which key"] and cells["what an honest-but-curious aggregator learns"]
        declared = registry.get(row[0].strip("`")).threat_model
        malicious = cells["what a malicious aggregator learns"]
        assert " ".join(declared.malicious_aggregator.split()) in malicious
        assert " ".join(declared.malicious_aggregator_unverified.split()) in malicious
        assert malicious.index('"full"') < malicious.index('"off"')


def test_the_threat_section_states_both_aggregators_for_every_scheme(report):
    threat = report["md"].split("## Threat model per scheme", 1)[1].split("## Machine", 1)[0]
    for name in registry.available():
        tm = registry.get(name).threat_model
        assert tm.aggregator_learns in threat and tm.malicious_aggregator in threat
        assert tm.malicious_aggregator_unverified in threat
    assert threat.count("**an actively malicious aggregator learns**") == len(registry.available())


def test_plots_exist_are_pngs_and_are_linked(report):
    for name in ("cost.png", "accuracy.png"):
        data = (report["out"] / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        assert f"]({name})" in report["md"]


def test_html_is_self_contained(report):
    html = report["html"]
    assert "<style>" in html and html.count('src="data:image/png;base64,') == 2
    assert not re.search(r'(src|href)="(?!data:)', html), "the HTML must not load anything from elsewhere"
    assert "<script" not in html and "<link" not in html
    assert all(f"<th>{h}</th>" in html for h in ("scheme", "bytes per party", "final accuracy"))


def test_json_holds_the_raw_numbers_machine_and_command(report):
    data = report["json"]
    assert data["command"] == "securefl " + " ".join(report["argv"])
    assert {"cpu", "cores", "memory_bytes", "python", "libraries"} <= set(data["machine"])
    assert data["options"]["sizes"] == [200, 400] and data["options"]["table_size"] == 200
    assert [s["name"] for s in data["schemes"]] == registry.available()
    for s in data["schemes"]:
        assert s["error"] is None and s["training"]["error"] is None
        assert [p["params"] for p in s["points"]] == [200, 400]
        assert all(p["parties"] == 3 and p["bytes_per_party"] > 0 and p["extra"]["first_round_s"] > 0
                   for p in s["points"])
        assert len(s["training"]["rounds"]) == ROUNDS
        assert s["facts"]["threat"]["key_holders"] and s["facts"]["security_bits"] > 0
        if s["facts"]["security_bits"] < 112:  # a test preset: the report must say so, loudly
            assert any(w.startswith("InsecureParametersWarning") for w in s["warnings"])
            assert f"`{s['name']}` | {s['facts']['security_bits']} (INSECURE" in report["md"]
    md = report["md"]
    assert "## Machine" in md and data["machine"]["python"] in md
    assert f"```\n{data['command']}\n```" in md


BROKEN = """
    from crypto_backends.plaintext import PlainScheme

    class Plugin(PlainScheme):
        name = "broken"

        def protect(self, key, values, *, weight, round):
            raise RuntimeError("boom")
"""

SLOW = """
    from crypto_backends.plaintext import PlainScheme

    class Plugin(PlainScheme):
        name = "sleepy"
        clock = None  # the test's fake clock

        def protect(self, key, values, *, weight, round):
            type(self).clock.advance(len(values) * 2e-4)  # 0.2 ms per value, on the clock compare reads
            return super().protect(key, values, weight=weight, round=round)
"""


class FakeClock:
    """Seconds that pass only when a test says so: the sweep's predictions become exact, and nothing sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_failing_scheme_is_a_row_and_a_slow_one_is_capped(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(compare, "clock", clock)
    with plugin_scheme(tmp_path, monkeypatch, "broken", BROKEN), plugin_scheme(tmp_path, monkeypatch, "sleepy", SLOW):
        registry.get("sleepy").clock = clock  # type: ignore[attr-defined]
        out = tmp_path / "out"
        code = main(["compare", "--schemes", "plain,broken,sleepy", "--params", "200", "20000", "--rounds", "1",
                     "--parties", "3", "--point-budget", "5", "--out", str(out)])
    assert code == 1  # a scheme failed; the report is still complete
    rows = {r[0].strip("`"): dict(zip(TABLE_HEADERS, r, strict=True))
            for r in summary_table((out / "report.md").read_text())}
    assert set(rows) == {"plain", "broken", "sleepy"}
    assert rows["broken"]["protect (s)"] == "failed" and rows["broken"]["final accuracy"] == "failed"
    assert "RuntimeError: boom" in rows["broken"]["notes"]
    assert rows["plain"]["notes"] == "" and rows["plain"]["protect (s)"].endswith("s")
    assert "budget" in rows["sleepy"]["notes"]
    data = {s["name"]: s for s in json.loads((out / "report.json").read_text())["schemes"]}
    # two rounds of 3 parties: 1.2 ms per value, 0.24 s at 200; 20k would take 24 s, the 5 s budget buys
    # 4,166 values, so 2,000 (1-2-5 series) is measured instead, then the sweep stops
    sleepy = [p["params"] for p in data["sleepy"]["points"]]
    assert sleepy == [200, 2000]
    assert data["sleepy"]["skipped"][0]["params"] == 20000 and "24 s" in data["sleepy"]["skipped"][0]["reason"]
    assert [p["params"] for p in data["plain"]["points"]] == [200, 20000]
    assert data["broken"]["points"] == [] and "boom" in data["broken"]["training"]["error"]


def test_params_option_semantics():
    assert CompareOptions.from_params(5).sizes == DEFAULT_SIZES
    one = CompareOptions.from_params(5, [20_000])
    assert one.table_size == 20_000 and one.sizes == tuple(sorted({*DEFAULT_SIZES, 20_000}))
    several = CompareOptions.from_params(5, [300, 100, 300])
    assert several.sizes == (100, 300) and several.table_size == 300
    with pytest.raises(ConfigError, match="positive"):
        CompareOptions.from_params(5, [0])
    with pytest.raises(ConfigError, match="point-budget"):
        CompareOptions.from_params(5, point_budget=0)


def test_sweep_skips_what_it_predicts_over_budget_but_never_the_table_size():
    sweep = _Sweep(CompareOptions(3, (1_000, 10_000, 100_000), table_size=100_000, point_budget=60))
    sweep.record("s", 1_000, wall=5.0, keygen=2.0)
    assert sweep.plan("s", 10_000) == (10_000, None)  # 2 + 3 * 10 = 32 s
    sweep.record("s", 10_000, wall=32.0, keygen=2.0)
    assert sweep.plan("s", 100_000) == (100_000, None)  # over budget, but it is the table's size


def test_sweep_measures_the_largest_affordable_size_instead_then_stops():
    sweep = _Sweep(CompareOptions(3, (1_000, 10_000, 100_000), table_size=1_000, point_budget=60))
    sweep.record("s", 1_000, wall=8.0, keygen=2.0)  # 6 ms per value: 62 s at 10k, 58 s buy 9.6k
    instead, why = sweep.plan("s", 10_000)
    assert instead == 5_000 and "62 s" in why and "60 s budget" in why and "5,000 instead" in why
    assert sweep.plan("s", 100_000)[0] is None
    assert sweep.plan("other", 10_000) == (10_000, None)
    sweep.record("t", 1_000, wall=40.0, keygen=2.0)  # the budget buys less than twice the last size
    assert sweep.plan("t", 10_000)[0] is None


@pytest.mark.filterwarnings("ignore::crypto_backends.base.InsecureParametersWarning")
def test_each_training_run_gets_its_config_from_replace(monkeypatch):
    made: list[dict] = []
    real = config.Config.replace

    def spy(self, overrides=(), /, **changes):
        made.append(changes)
        return real(self, overrides, **changes)

    monkeypatch.setattr(config.Config, "replace", spy)
    base = config.loads("[federation]\nparties = 3\nrounds = 1\n[crypto]\nscheme = 'paillier'\n"
                        "[crypto.paillier]\npreset = 'test'\nclip = 128.0\n"  # room for the noise shares' tail
                        "[privacy]\nmode = 'distributed'\nclip_norm = 2.0")
    result = compare.run(base, CompareOptions(2, (50,), 50), names=["plain", "paillier"])
    rows = {r.name: r for r in result.schemes}
    assert made == [{"crypto.scheme": "plain", "privacy.mode": "off"}, {"crypto.scheme": "paillier",
                    "privacy.mode": "off"}, {"crypto.scheme": "plain"}, {"crypto.scheme": "paillier"}]
    assert rows["plain"].training and rows["paillier"].training and rows["paillier+dp(distributed)"].training
    assert rows["paillier+dp(distributed)"].training[0].epsilon_spent == 1.0
    # distributed noise shares under plain: replace() applies the rule that spans sections, and the row says so
    assert rows["plain+dp(distributed)"].training_error.startswith("ConfigError: privacy.mode: 'distributed'")
    assert result.failed == ["plain+dp(distributed)"]
    assert compare.training_config(base, "plain", private=False).privacy.mode == "off"


def test_a_callers_config_for_is_still_used():
    base = config.loads("[federation]\nparties = 2\nrounds = 1\n")
    asked = []

    def config_for(name: str, private: bool) -> config.Config:
        asked.append(name)
        raise ConfigError(f"crypto.scheme: {name} refused by a cross-section rule")

    result = compare.run(base, CompareOptions(2, (50,), 50), config_for=config_for, names=["plain"])
    (plain,) = result.schemes
    assert asked == ["plain"] and plain.points and not plain.training
    assert plain.training_error == "ConfigError: crypto.scheme: plain refused by a cross-section rule"
    assert result.failed == ["plain"]


def test_markdown_and_html_render_the_same_blocks_safely():
    from securefl.tools.report import Bullets, Code, Heading, Para, Table, to_html, to_markdown

    blocks = [Heading(2, "A *b*"), Para("x <script>alert(1)</script> `a|b` **bold**"),
              Table(("k", "v"), (("a|b", "<i>"),)), Bullets(("one", "two")), Code("securefl compare --out r")]
    md = to_markdown(blocks)
    assert "## A *b*" in md and "| a\\|b | <i> |" in md and "- two" in md and "```\nsecurefl compare --out r\n```" in md
    page = to_html(blocks, "t<")
    assert "<script>" not in page and "&lt;script&gt;" in page and "<title>t&lt;</title>" in page
    assert "<h2>A <em>b</em></h2>" in page and "<code>a|b</code>" in page and "<strong>bold</strong>" in page
    assert "<td>&lt;i&gt;</td>" in page


@pytest.mark.parametrize("mode", ["local", "distributed"])
def test_privacy_adds_a_wrapped_row_per_scheme(tmp_path, mode):
    out = tmp_path / "dp"
    code = main(["compare", "--config", str(LR_DP), "--schemes", "plain,paillier", "--params", "100", "200",
                 "--rounds", "1", "--set", f"privacy.mode={mode}", "--set", "crypto.scheme=paillier",
                 "--set", "crypto.paillier.preset=test", "--out", str(out)])
    data = {s["name"]: s for s in json.loads((out / "report.json").read_text())["schemes"]}
    label = f"plain+dp({mode})"
    assert set(data) == {"plain", "paillier", label, f"paillier+dp({mode})"}
    assert data[label]["scheme"] == "plain" and data[label]["private"]
    assert "epsilon_spent" not in data["plain"]["training"]["rounds"][0]  # the bare row trains without DP
    hiding = data[f"paillier+dp({mode})"]  # a scheme that hides updates takes either mode
    threat = hiding["facts"]["threat"]  # the wrapper's threat model, not the bare scheme's
    assert f"{mode} differential privacy" in threat["aggregator_learns"]
    if mode == "distributed":
        assert "signed statements" in threat["malicious_aggregator"]
        assert "zero-pad" in threat["malicious_aggregator_unverified"]
    assert hiding["error"] is None and hiding["training"]["error"] is None
    assert hiding["training"]["rounds"][0]["epsilon_spent"] > 0
    assert [p["params"] for p in hiding["points"]] == [100, 200]
    if mode == "local":
        assert code == 0
        assert data[label]["training"]["rounds"][0]["epsilon_spent"] > 0
        assert [p["params"] for p in data[label]["points"]] == [100, 200]
    else:  # distributed noise shares over a scheme that shows each update: refused, and reported
        assert code == 1 and data[label]["error"] and data[label]["training"]["error"].startswith("ConfigError")
        assert data["plain"]["error"] is None
