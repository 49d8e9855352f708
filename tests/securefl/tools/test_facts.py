"""Scheme facts come from the declarations alone, for any registered scheme."""

from __future__ import annotations

from crypto_backends import registry
from securefl.tools.facts import THREAT_COLUMNS, cell, facts_table, scheme_facts
from tests.plugins import plugin_scheme

DECLARED = """
    from dataclasses import dataclass
    from crypto_backends.base import ThreatModel
    from crypto_backends.plaintext import PlainParams, PlainScheme

    @dataclass(frozen=True)
    class Params(PlainParams):
        bits: int = 192
        def security_bits(self):
            return self.bits
        @classmethod
        def presets(cls):
            return {"default": cls(), "test": cls(bits=40, allow_insecure=True)}

    class Plugin(PlainScheme):
        name = "masked"
        params_type = Params
        hides_updates = True
        threat_model = ThreatModel(
            key_holders={"party": "a pairwise | mask seed", "aggregator": "nothing"},
            aggregator_learns="the sum\\nonly", party_learns="the fused model",
            collusion="k parties and the aggregator learn the rest's sum", dropouts="needs every party",
            not_protected="integrity", malicious_aggregator="the signed sum",
            malicious_aggregator_unverified="any one update")
"""


def test_a_plug_in_scheme_is_described_by_its_own_declarations(tmp_path, monkeypatch):
    with plugin_scheme(tmp_path, monkeypatch, "masked", DECLARED):
        facts = scheme_facts("masked")
        assert facts.security_bits == 192 and facts.presets == {"default": 192, "test": 40}
        assert facts.key_holders_text() == "party: a pairwise | mask seed; aggregator: nothing"
        table = facts_table([facts])
        test_preset = scheme_facts("masked", registry.params_type("masked").presets()["test"])
    header, rule, row = table.splitlines()
    assert header == "| " + " | ".join(h for h, _ in THREAT_COLUMNS) + " |"
    assert row.startswith("| `masked` | 192 | party: a pairwise \\| mask seed;") and "the sum only" in row
    assert test_preset.insecure and test_preset.security_text() == "40 (INSECURE: test parameters)"


def test_a_scheme_that_hides_nothing_claims_no_security_level():
    plain = scheme_facts("plain")
    assert not plain.hides_updates and plain.security_text().startswith("none")
    assert "bit" not in plain.presets_text()


def test_cells_are_one_line_and_escape_pipes():
    assert cell("a |\n b") == "a \\| b"


def test_the_sampled_setting_is_stated_from_what_the_scheme_can_sample():
    # the schemes whose uploads are blocks that fold one by one state the detection chance; the others say
    # that their verifiers check the signed statements only, as under "full"
    for name in registry.available():
        facts = scheme_facts(name)
        text = facts.malicious_aggregator_text()
        assert 'with "sampled": ' in text and text.index('"full"') < text.index('"sampled"') < text.index('"off"')
        assert ("C(B-b, k) / C(B, k)" in text) == facts.samples_blocks
    assert {n for n in registry.available() if scheme_facts(n).samples_blocks} == {"paillier", "ckks",
                                                                             "threshold_paillier"}
