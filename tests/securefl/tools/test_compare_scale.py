"""``securefl compare``: cost against the number of parties, and sizes that do not fit in memory."""

from __future__ import annotations

import json

import pytest

from securefl.cli.main import EXIT_ERROR, main
from securefl.tools import machine
from securefl.tools.compare import CompareOptions
from tests.securefl.tools.test_compare import fast_config

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def by_parties(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("parties")
    out = tmp / "report"
    code = main(["compare", "--config", str(fast_config(tmp)), "--schemes", "plain,ckks", "--parties", "3", "6",
                 "--params", "200", "--out", str(out)])
    return {"code": code, "out": out, "md": (out / "report.md").read_text(),
            "json": json.loads((out / "report.json").read_text())}


def test_several_party_counts_give_a_party_sweep_per_scheme(by_parties):
    assert by_parties["code"] == 0, by_parties["md"]
    data = by_parties["json"]
    assert data["options"]["party_counts"] == [3, 6]
    for row in data["schemes"]:
        assert [p["parties"] for p in row["party_points"]] == [3, 6], row["name"]
        assert all(p["params"] == 200 and p["work_s"] > 0 for p in row["party_points"])
    assert data["workload"]["parties"] == 3  # training and the size sweep use the first count


def test_the_party_plot_is_embedded_in_the_report(by_parties):
    md, out = by_parties["md"], by_parties["out"]
    assert "## Cost against the number of parties" in md and "![" in md and "(parties.png)" in md
    assert (out / "parties.png").read_bytes()[:8] == PNG
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 3


def test_one_party_count_makes_no_party_section(tmp_path):
    out = tmp_path / "r"
    assert main(["compare", "--config", str(fast_config(tmp_path)), "--schemes", "plain", "--parties", "3",
                 "--params", "100", "200", "--out", str(out)]) == 0
    assert "Cost against the number of parties" not in (out / "report.md").read_text()
    assert not (out / "parties.png").exists()


def test_party_counts_must_be_positive():
    with pytest.raises(Exception, match="party count"):
        CompareOptions(3, party_counts=(0, 5))


def test_a_size_past_memory_is_skipped_and_the_report_still_written(tmp_path, monkeypatch):
    monkeypatch.setattr(machine, "available_memory_bytes", lambda: 2_000_000)
    out = tmp_path / "r"
    code = main(["compare", "--config", str(fast_config(tmp_path)), "--schemes", "plain", "--params", "200",
                 "1000000", "--out", str(out)])
    assert code == 0
    data = json.loads((out / "report.json").read_text())
    plain = data["schemes"][0]
    assert [p["params"] for p in plain["points"]] == [200]
    assert any(s["params"] == 1_000_000 and "memory" in s["reason"] for s in plain["skipped"])
    assert "memory" in (out / "report.md").read_text()


def test_a_table_size_past_memory_is_an_error_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(machine, "available_memory_bytes", lambda: 100_000)
    out = tmp_path / "r"
    code = main(["compare", "--config", str(fast_config(tmp_path)), "--schemes", "plain", "--params", "1000000",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and "memory" in err and "Traceback" not in err
    assert not out.exists()
