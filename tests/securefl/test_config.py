from __future__ import annotations

import pytest

from securefl import config
from securefl.errors import ConfigError

PLAIN = "examples/configs/plain.toml"


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
