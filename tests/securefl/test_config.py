from __future__ import annotations

import dataclasses
import warnings

import pytest

import crypto_backends.base
from crypto_backends.base import InsecureParametersWarning
from crypto_backends.paillier import PaillierParams
from securefl import config
from securefl.errors import ConfigError
from tests.paths import CONFIGS
from tests.plugins import plugin_scheme

PLAIN = CONFIGS / "plain.toml"


def test_example_config_loads_into_frozen_dataclasses():
    cfg = config.load(PLAIN)
    assert cfg.federation.parties == 5 and cfg.crypto.scheme == "plain" and cfg.model.kind == "logistic"
    with pytest.raises(AttributeError):
        cfg.federation.parties = 6  # type: ignore[misc]


def test_defaults_fill_missing_sections():
    cfg = config.loads("")
    assert cfg.federation.min_parties == cfg.federation.parties
    assert cfg.federation.ids[0] == "party-1"


@pytest.mark.parametrize(
    "text, key",
    [
        ("[federation]\nroundz = 3", "federation.roundz"),
        ("[nonsense]\na = 1", "[nonsense]"),
        ("[model]\nkind = 'forest'", "model.kind"),
        ("[federation]\nparties = 'five'", "federation.parties"),
        ("[federation]\nparties = true", "federation.parties"),
        ("[federation]\nparties = 3\nquorum = 4", "federation.quorum"),
        ("[data]\ntest_fraction = 1.5", "data.test_fraction"),
        ("[data]\npartition = 'random'", "data.partition"),
        ("[crypto]\nscheme = 'rot13'", "crypto.scheme"),
        ("[crypto]\nscheme = 'plain'\nfoo = 1", "crypto.foo"),
        ("[crypto.plain]\nbar = 1", "crypto.plain.bar"),
        ("[model]\nhidden_layers = [32, 'x']", "model.hidden_layers[1]"),
        ("[federation]\nparty_ids = ['a', 'a']\nparties = 2", "federation.party_ids"),
        ("[federation]\nparty_ids = ['a b']\nparties = 1", "federation.party_ids"),
        ("[privacy]\nmode = 'maybe'", "privacy.mode"),
        ("[transport]\nkind = 'carrier-pigeon'", "transport.kind"),
        ("[federation]\nparties = 3\n[crypto]\nscheme = 'threshold_paillier'\n[crypto.threshold_paillier]\n"
         "preset = 'test'\nthreshold = 4", "crypto.threshold_paillier.threshold"),
        ("[crypto.threshold_paillier]\nthreshold = -1", "crypto.threshold_paillier.threshold"),
        ("[crypto.threshold_paillier]\nthreshold = 3\nshare_requests = 2", "crypto.threshold_paillier.share_requests"),
        ("[crypto]\nverify_aggregate = 'sometimes'", "crypto.verify_aggregate"),
        ("[crypto]\nverify_samples = 0", "crypto.verify_samples"),
        ("[crypto]\nverify_samples = 5000", "crypto.verify_samples"),
        ("[crypto]\nverify_samples = true", "crypto.verify_samples"),
    ],
)
def test_bad_configs_name_the_key(text, key):
    with pytest.raises(ConfigError) as info:
        config.loads(text)
    assert key in str(info.value)


def test_unknown_key_lists_what_is_allowed():
    with pytest.raises(ConfigError, match="allows: parties, rounds"):
        config.loads("[federation]\nroundz = 3")


def test_set_overrides_are_typed_like_the_file():
    cfg = config.load(PLAIN, ["federation.rounds=3", "model.learning_rate=0.5", "crypto.scheme=plain",
                              "model.hidden_layers=[8, 4]", "data.standardize=false"])
    assert cfg.federation.rounds == 3 and cfg.model.learning_rate == 0.5
    assert cfg.model.hidden_layers == (8, 4) and cfg.data.standardize is False
    with pytest.raises(ConfigError, match="federation.rounds"):
        config.load(PLAIN, ["federation.rounds=many"])
    with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
        config.load(PLAIN, ["rounds"])


def test_missing_file_and_bad_toml():
    with pytest.raises(ConfigError, match="does not exist"):
        config.load("no/such/file.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.loads("[federation\n")


def test_scheme_tables_load_into_scheme_params():
    cfg = config.loads("[crypto]\nscheme = 'plain'\n[crypto.plain]\npreset = 'default'")
    assert cfg.crypto.scheme_params().__class__.__name__ == "PlainParams"
    with pytest.raises(ConfigError, match="preset"):
        config.loads("[crypto.plain]\npreset = 'turbo'")


@pytest.mark.parametrize(
    "text, key",
    [
        ("[transport]\nkind = 'http'", "transport.kind"),
        ("[transport]\naggregator_port = 0", "transport.aggregator_port"),
        ("[transport]\nauthority_port = 70000", "transport.authority_port"),
        ("[transport]\naggregator_port = 5000\nauthority_port = 5000", "transport.authority_port"),
        ("[transport]\naggregator_host = 'a b'", "transport.aggregator_host"),
        ("[transport]\ncert_dir = ''", "transport.cert_dir"),
        ("[transport]\nconnect_timeout = 0", "transport.connect_timeout"),
        ("[transport]\npoll_seconds = 0.01", "transport.poll_seconds"),
        ("[transport]\nchunk_bytes = 100", "transport.chunk_bytes"),
        ("[transport]\nchunk_bytes = 1048576\nmax_message_bytes = 1000", "transport.max_message_bytes"),
        ("[transport]\ninsecure = true", "transport.insecure"),  # plaintext is a command-line flag only
    ],
)
def test_transport_errors_name_the_key(text, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        config.loads(text)


def test_transport_addresses():
    cfg = config.loads("[transport]\nkind = 'grpc'\naggregator_host = 'agg.example.org'\nauthority_host = '::1'")
    assert cfg.transport.address("aggregator") == "agg.example.org:50051"
    assert cfg.transport.address("authority") == "[::1]:50052"


# --- every Config is validated, however it is made ---------------------------------
def test_a_config_built_in_python_runs_the_cross_section_rules():
    with pytest.raises(ConfigError, match="privacy.mode: 'distributed' needs a scheme that hides"):
        config.Config(privacy=config.PrivacyConfig(mode="distributed"))
    with pytest.raises(ConfigError, match="privacy.row_norm"):
        config.Config(model=config.ModelConfig(kind="mlp"), privacy=config.PrivacyConfig(mode="local", row_norm=2.0))
    with pytest.raises(ConfigError, match="privacy.mode"):  # dataclasses.replace goes through __post_init__ too
        dataclasses.replace(config.Config(), privacy=config.PrivacyConfig(mode="distributed"))


def test_sections_built_in_python_check_their_types_and_ranges():
    with pytest.raises(ConfigError, match="federation.parties: '5' has the wrong type; expected an integer"):
        config.FederationConfig(parties="5")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="federation.quorum"):
        config.FederationConfig(parties=3, quorum=4)
    fed = config.FederationConfig(parties=2, party_ids=["a", "b"])  # type: ignore[arg-type]
    assert fed.party_ids == ("a", "b") and config.PrivacyConfig(epsilon=2).epsilon == 2.0  # normalised as loaded
    with pytest.raises(ConfigError, match="federation: must be a FederationConfig"):
        config.Config(federation=config.DataConfig())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="crypto.scheme: 'rot13' is not a registered scheme"):
        config.CryptoConfig(scheme="rot13")
    with pytest.raises(ConfigError, match="crypto.ckks: needs CKKSParams, got PaillierParams"):
        config.CryptoConfig(params={"ckks": PaillierParams()})


def test_whole_run_false_checks_sections_but_not_the_rules_between_them():
    cfg = config.loads("[privacy]\nmode = 'distributed'", whole_run=False)  # bench: schemes from --schemes
    assert cfg.privacy.mode == "distributed" and not cfg.whole_run
    with pytest.raises(ConfigError, match="privacy.epsilon"):
        config.loads("[privacy]\nepsilon = 0", whole_run=False)
    with pytest.raises(ConfigError, match="privacy.mode"):
        config.check_consistency(cfg)


# --- replace() ------------------------------------------------------------------------
def test_replace_changes_dotted_keys_and_validates_again():
    base = config.load(PLAIN)
    cfg = base.replace(**{"crypto.scheme": "ckks", "privacy.mode": "local", "federation.rounds": 2})
    assert (cfg.crypto.scheme, cfg.privacy.mode, cfg.federation.rounds) == ("ckks", "local", 2)
    assert cfg.model == base.model and cfg.source == base.source and base.federation.rounds == 10
    assert config.replace(base, ["federation.rounds=3", "model.hidden_layers=[8, 4]"]).model.hidden_layers == (8, 4)
    assert base.replace(**{"privacy.epsilon": 2}).privacy.epsilon == 2.0  # typed as a file would be


@pytest.mark.parametrize("changes, key", [
    ({"federation.rounds": "many"}, "federation.rounds"),
    ({"federation.roundz": 3}, "federation.roundz"),
    ({"privacy.mode": "distributed"}, "privacy.mode"),  # a cross-section rule: plain shows every update
    ({"crypto.scheme": "rot13"}, "crypto.scheme"),
    ({"crypto.paillier.key_bitz": 3072}, "crypto.paillier.key_bitz"),
    ({"nonsense.key": 1}, "[nonsense]"),
    ({"federation": 3}, "federation"),
])
def test_a_bad_replacement_is_a_config_error_naming_the_key(changes, key):
    with pytest.raises(ConfigError) as info:
        config.load(PLAIN).replace(**changes)
    assert key in str(info.value)
    with pytest.raises(ConfigError, match="federation.rounds"):
        config.load(PLAIN).replace(["federation.rounds=many"])


def test_replacing_a_preset_starts_its_table_afresh():
    cfg = config.loads("[crypto.paillier]\nclip = 4.0\nbits = 12")
    fresh = cfg.replace(**{"crypto.paillier.clip": 64.0, "crypto.paillier.preset": "test"}).crypto.params["paillier"]
    assert fresh == dataclasses.replace(PaillierParams.presets()["test"], clip=64.0)  # bits back to the preset's
    kept = cfg.replace(**{"crypto.paillier.clip": 2.0}).crypto.params["paillier"]
    assert (kept.clip, kept.bits) == (2.0, 12)


# --- one security gate: the scheme's -------------------------------------------------
def test_a_too_small_key_is_refused_by_the_schemes_gate_naming_the_key():
    message = r"crypto\.paillier\.key_bits = 1024: .*below the 112-bit minimum.*preset = \"default\""
    with pytest.raises(ConfigError, match=message):
        config.loads("[crypto]\nscheme = 'paillier'\n[crypto.paillier]\nkey_bits = 1024")
    with pytest.raises(ConfigError, match=message):  # a table of a scheme that is not selected is checked too
        config.load(PLAIN).replace(**{"crypto.paillier.key_bits": 1024})
    with pytest.raises(ConfigError, match=message):  # and a Config built in Python
        config.CryptoConfig(params={"paillier": PaillierParams(key_bits=1024)})


def test_the_gate_is_the_schemes_own_not_a_copy(monkeypatch):
    # raise the scheme's minimum: the config follows, since it asks Scheme.__init__ instead of comparing bits itself
    monkeypatch.setattr(crypto_backends.base, "MIN_SECURITY_BITS", 129)
    with pytest.raises(ConfigError, match=r"crypto\.paillier: paillier parameters give about 128-bit security"):
        config.loads("[crypto]\nscheme = 'paillier'")


def test_test_presets_pass_the_gate_without_warning_at_load():
    with warnings.catch_warnings():
        warnings.simplefilter("error", InsecureParametersWarning)  # the scheme warns where it is used, not here
        cfg = config.loads("[crypto]\nscheme = 'paillier'\n[crypto.paillier]\npreset = 'test'")
    assert cfg.crypto.scheme_params().allow_insecure


# --- scheme names and declarations come from the registry ------------------------------
HIDING_PLUGIN = """
    import dataclasses
    from crypto_backends.plaintext import PlainScheme

    class Plugin(PlainScheme):
        name = "hider"
        threat_model = dataclasses.replace(PlainScheme.threat_model, hides_updates=True)
"""


def test_a_plug_in_scheme_is_a_valid_name_and_its_declaration_decides_distributed_dp(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="crypto.scheme"):
        config.loads("[crypto]\nscheme = 'hider'")
    with plugin_scheme(tmp_path, monkeypatch, "hider", HIDING_PLUGIN):
        cfg = config.loads("[crypto]\nscheme = 'hider'\n[privacy]\nmode = 'distributed'")
        assert cfg.crypto.scheme == "hider" and "hider" in config.hiding_schemes()


INSECURE_PRESET = """
    from dataclasses import dataclass
    from crypto_backends.plaintext import PlainParams, PlainScheme

    @dataclass(frozen=True)
    class Params(PlainParams):
        bits: int = 128

        def security_bits(self):
            return self.bits

        @classmethod
        def presets(cls):
            return {"default": cls(), "weak": cls(bits=64)}

    class Plugin(PlainScheme):
        name = "weakling"
        params_type = Params
"""


def test_an_insecure_preset_is_named_as_the_key_to_change(tmp_path, monkeypatch):
    with plugin_scheme(tmp_path, monkeypatch, "weakling", INSECURE_PRESET):
        with pytest.raises(ConfigError, match=r"crypto\.weakling\.preset = 'weak': .*64-bit security"):
            config.loads("[crypto]\nscheme = 'weakling'\n[crypto.weakling]\npreset = 'weak'")
        assert config.loads("[crypto]\nscheme = 'weakling'").crypto.scheme_params().security_bits() == 128


def test_secagg_parameters_are_validated_when_the_config_is_read():
    cfg = config.load(PLAIN, ["crypto.scheme=secagg", "crypto.secagg.neighbours=6", "crypto.secagg.threshold=4"])
    params = cfg.crypto.scheme_params()
    assert (params.neighbours, params.threshold, params.degree(100), params.share_threshold(100)) == (6, 4, 6, 4)
    with pytest.raises(ConfigError, match=r"crypto.secagg: .*64"):  # the ring Z_(2**k) cannot hold the sum
        config.load(PLAIN, ["crypto.scheme=secagg", "crypto.secagg.bits=40",
                            "crypto.secagg.max_total_weight=1073741824"])
    with pytest.raises(ConfigError, match="crypto.secagg.colour: unknown key"):
        config.load(PLAIN, ["crypto.scheme=secagg", "crypto.secagg.colour=1"])


def test_distributed_dp_needs_the_schemes_policy_to_keep_every_noise_share():
    """Issue 15 item 3: fe.min_parties below the quorum (the noise plan's min_contributors) is a config error."""
    text = ("[federation]\nparties = 5\nquorum = {quorum}\n[crypto]\nscheme = 'fe'\n[crypto.fe]\npreset = 'test'\n"
            "min_parties = {least}\n[privacy]\nmode = 'distributed'\n")
    with pytest.raises(ConfigError, match=r"crypto.fe: its policy reveals sums of as few as 3 parties .* at least 4"):
        config.loads(text.format(quorum=4, least=3))
    with pytest.raises(ConfigError, match="set crypto.fe.min_parties to at least 5"):
        config.loads(text.format(quorum=0, least=3))  # quorum 0: every party, five noise shares
    assert config.loads(text.format(quorum=3, least=3)).federation.min_parties == 3
    assert config.loads(text.format(quorum=4, least=3).replace("distributed", "local")).privacy.mode == "local"


@pytest.mark.parametrize("parties", [1, 2])
def test_a_scheme_that_hides_updates_refuses_a_federation_of_fewer_than_three(parties):
    """Issue 21 item 10: with two parties the revealed sum minus one's own update is the other's update."""
    hiding = config.hiding_schemes()
    assert {"secagg", "paillier", "ckks", "fe", "threshold_paillier"} <= set(hiding)
    for scheme in hiding:  # one rule for every scheme that declares hides_updates, not one per scheme
        with pytest.raises(ConfigError, match=rf"federation.parties = {parties}: the '{scheme}' scheme promises "
                                              r"that individual updates stay hidden.*at least 3 parties"):
            config.loads(f"[federation]\nparties = {parties}\n[crypto]\nscheme = '{scheme}'\n")
        assert config.loads(f"[federation]\nparties = 3\n[crypto]\nscheme = '{scheme}'\n").federation.parties == 3
    # a scheme that promises nothing of the kind still runs two parties (and one)
    plain = config.loads(f"[federation]\nparties = {parties}\n[crypto]\nscheme = 'plain'\n")
    assert plain.federation.parties == parties
    with pytest.raises(ConfigError, match="federation.parties = 2"):  # also when changed after loading
        config.load(PLAIN).replace(["crypto.scheme=secagg", "federation.parties=2", "federation.quorum=0"])


def test_secagg_min_contributors_is_read_checked_against_the_federation_and_resolved_for_it():
    """Issue 21 item 4: ``[crypto.secagg] min_contributors``, default 0 = the share threshold plus one."""
    from securefl.core.federation import make_scheme

    cfg = config.load(PLAIN, ["crypto.scheme=secagg"])  # five parties: 4 neighbours, t = 3
    assert cfg.crypto.scheme_params().min_contributors == 0
    assert make_scheme(cfg).params.min_contributors == 4  # fixed from federation.parties, not each round's roster
    assert config.load(PLAIN, ["crypto.scheme=secagg", "crypto.secagg.min_contributors=5"]).crypto.scheme_params() \
        .fewest_contributors(5) == 5
    with pytest.raises(ConfigError, match=r"no sum of the 5 parties could be unmasked.*at most 5"):
        config.load(PLAIN, ["crypto.scheme=secagg", "crypto.secagg.min_contributors=6"])
    with pytest.raises(ConfigError, match="crypto.secagg: min_contributors=1: the sum of one update is that update"):
        config.load(PLAIN, ["crypto.scheme=secagg", "crypto.secagg.min_contributors=1"])
    # the distributed-DP rule reads the same policy (fewest_contributors), naming secagg's key
    text = "[federation]\nparties = 5\nquorum = {q}\n[crypto]\nscheme = 'secagg'\n[privacy]\nmode = 'distributed'\n"
    with pytest.raises(ConfigError, match="set crypto.secagg.min_contributors to at least 5"):
        config.loads(text.format(q=0))
    assert config.loads(text.format(q=4)).federation.min_parties == 4


def test_sampled_verification_and_its_samples_round_trip_through_the_mapping():
    cfg = config.loads("[crypto]\nverify_aggregate = 'sampled'\nverify_samples = 7")
    assert (cfg.crypto.verify_aggregate, cfg.crypto.verify_samples) == ("sampled", 7)
    again = config.from_mapping(config.to_mapping(cfg))
    assert (again.crypto.verify_aggregate, again.crypto.verify_samples) == ("sampled", 7)
    assert config.loads("").crypto.verify_samples == 32
