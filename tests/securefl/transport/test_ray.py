"""The Ray engine: parties in Ray actors beneath the one round engine, the same rounds as on threads.

A real local Ray runtime (2 CPUs, no dashboard) is started once for the module; every federation here
runs real keys and ciphertexts of each scheme's small test preset.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator

import numpy as np
import pytest

from crypto_backends import InsecureParametersWarning
from crypto_backends.statements import parse_upload
from securefl import config
from securefl.core.federation import RunResult
from securefl.core.messages import GlobalModel
from securefl.errors import ConfigError, TransportError, UsageError
from securefl.simulation import Simulation
from securefl.transport.base import Request
from tests.paths import CONFIGS, REPO

ray = pytest.importorskip("ray")  # CI installs the [ray] extra (.ci/run); skipped only where it is absent
from securefl.transport.ray import (  # noqa: E402 - after the skip
    RayTransport,
    check_ray_address,
    config_text,
    connect,
    read_config_text,
)

BASE = """
[federation]
parties = 4
rounds = 2
seed = 3
[data]
dataset = "synthetic"
samples = 400
features = 6
[model]
kind = "logistic"
local_epochs = 2
"""
SCHEMES = {
    "plain": ["crypto.scheme=plain"],
    "paillier": ["crypto.scheme=paillier", "crypto.paillier.preset=test"],
    # the default (128-bit, N=4096) preset: keygen takes milliseconds, and the test preset's flooding noise
    # drowns a model this small (two threads runs of it disagree as much as any two engines would)
    "ckks": ["crypto.scheme=ckks"],
    "fe": ["crypto.scheme=fe", "crypto.fe.preset=test", "crypto.fe.dlog_table_bits=14"],
    "dp-local": ["crypto.scheme=plain", "privacy.mode=local", "privacy.epsilon=4", "privacy.epsilon_budget=8"],
    "dp-distributed": ["crypto.scheme=paillier", "crypto.paillier.preset=test", "privacy.mode=distributed",
                       "privacy.epsilon=4", "privacy.epsilon_budget=8"],
}
EXACT = ("plain", "paillier", "fe")
"""Schemes whose every step is deterministic given the config: the two engines agree bit for bit."""


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def _config(*overrides: str) -> config.Config:
    return config.loads(BASE, list(overrides))


def _run(cfg: config.Config) -> RunResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)  # small test keys, loudly insecure
        return Simulation(cfg).run()


def _rounds(result: RunResult) -> list[dict]:
    """What two runs of one config must agree on: everything but the wall time and the upload size (each upload's
    signed statement carries its party's certificate, whose DER length differs by a few bytes from one run's CA
    to another's: :func:`_same_sizes` compares the sizes)."""
    return [{k: v for k, v in r.as_json().items() if k not in ("seconds", "bytes_up")} for r in result.rounds]


def _same_sizes(a: RunResult, b: RunResult) -> None:
    for x, y in zip(a.rounds, b.rounds, strict=True):
        assert x.bytes_up == pytest.approx(y.bytes_up, rel=0.01)


@pytest.mark.parametrize("name", SCHEMES)
def test_ray_gives_the_rounds_and_model_of_the_threads_engine(local_ray, name):
    cfg = _config(*SCHEMES[name])
    threads = _run(cfg)
    on_ray = _run(cfg.replace(["transport.kind=ray"]))
    assert [r.parties for r in on_ray.rounds] == [r.parties for r in threads.rounds]
    assert all(len(r.parties) == 4 and not r.dropped for r in on_ray.rounds)
    assert on_ray.final_parameters is not None and threads.final_parameters is not None
    _same_sizes(on_ray, threads)
    if name in EXACT:
        assert _rounds(on_ray) == _rounds(threads)
        np.testing.assert_array_equal(on_ray.final_parameters, threads.final_parameters)
        return
    # CKKS's encryption noise and DP's noise come from the OS CSPRNG on purpose: no seed repeats them, on
    # either engine.  Who took part and the privacy spent are the same; ciphertext sizes (CKKS compresses
    # its random-looking polynomials) and the models agree to within the noise.
    noisy = ("accuracy", "metrics")
    for a, b in zip(_rounds(on_ray), _rounds(threads), strict=True):
        assert {k: v for k, v in a.items() if k not in noisy} == {k: v for k, v in b.items() if k not in noisy}
    assert on_ray.privacy == threads.privacy
    if name == "ckks":
        for a, b in zip(on_ray.rounds, threads.rounds, strict=True):
            assert a.accuracy == pytest.approx(b.accuracy, abs=0.02)
        np.testing.assert_allclose(on_ray.final_parameters, threads.final_parameters, atol=1e-3)
    else:  # differential privacy: the same shape of model, its noise of the same (accounted) size
        assert on_ray.final_parameters.shape == threads.final_parameters.shape
        assert np.isfinite(on_ray.final_parameters).all()


@pytest.fixture(scope="module")
def pool(local_ray) -> Iterator[tuple[Simulation, RayTransport]]:
    """Five Paillier parties (test keys) on the runtime's actor pool, shared by the tests of the transport itself."""
    cfg = _config("crypto.scheme=paillier", "crypto.paillier.preset=test", "federation.parties=5",
                  "transport.kind=ray")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        sim = Simulation(cfg)
        transport = sim.transport()
    assert isinstance(transport, RayTransport)
    yield sim, transport
    transport.close()


def test_each_actor_holds_the_keys_of_its_own_parties_only(pool):
    sim, transport = pool
    assert sim.parties == {}  # nothing of a party is built in the driver
    held = [json.loads(ray.get(h.held.remote())) for h in transport._hosts]
    assert len(held) == 2  # one actor per CPU of the runtime
    assert sorted(p for ids in held for p in ids) == sorted(sim.cfg.federation.ids)
    assert not set(held[0]) & set(held[1])
    for host, ids in zip(transport._hosts, held, strict=True):
        assert all(transport._host_of[p] is host for p in ids)


def test_a_key_handle_cannot_be_handed_to_ray(local_ray):
    from crypto_backends import registry

    key = registry.create("plain").keygen(["a", "b"]).parties["a"]
    with pytest.raises(TypeError, match="cannot be pickled"):  # Ray wraps the key's own refusal
        ray.put(key)


def test_a_party_that_fails_in_its_actor_is_dropped_with_its_message(pool):
    sim, transport = pool
    good = GlobalModel.open(sim.federation.initial).to_bytes()
    request = Request("train", 0, {"party-1": b"garbage", "party-2": good})
    replies = transport.exchange(request, lambda sender, reply: reply, timeout=60)
    assert set(replies.accepted) == {"party-2"}
    assert replies.dropped["party-1"].startswith("MalformedCiphertextError: ")


def test_parties_answer_in_batches_each_with_its_own_upload(pool, monkeypatch):
    import securefl.transport.ray as ray_transport

    sim, transport = pool
    monkeypatch.setattr(ray_transport, "CALLS_PER_ACTOR", 1)  # one call per actor, holding all its parties
    model = GlobalModel.open(sim.federation.initial).to_bytes()
    ids = sim.cfg.federation.ids
    # rounds of their own: the parties of this module's pool answer each round once (their replay guard)
    uploads = transport.exchange(Request("train", 20, dict.fromkeys(ids, model)),
                                 lambda sender, reply: sim.aggregator.check_upload(sender, parse_upload(reply)[1], 20),
                                 timeout=120)
    assert sorted(uploads.accepted) == sorted(ids) and not uploads.dropped  # each envelope names its sender
    assert len({transport._busy[p] for p in ids}) == 2  # two batches: one per actor
    # per-party payloads (as a setup step's messages) reach their own party each, within a batch too
    mixed = transport.exchange(Request("train", 21, {p: b"garbage" if p == "party-4" else model for p in ids}),
                               lambda sender, reply: reply, timeout=120)
    assert sorted(mixed.accepted) == sorted(set(ids) - {"party-4"})
    assert mixed.dropped["party-4"].startswith("MalformedCiphertextError: ")


def test_a_party_that_does_not_answer_in_time_is_dropped_and_rejoins_when_done(pool):
    sim, transport = pool
    model = GlobalModel.open(sim.federation.initial).to_bytes()
    late = transport.exchange(Request("train", 30, {"party-3": model}), lambda s, r: r, timeout=1e-9)
    assert late.dropped["party-3"] == "no answer within 1e-09 s" and not late.accepted
    ray.wait([transport._busy["party-3"]], timeout=60)  # it finishes its late reply ...
    again = transport.exchange(Request("train", 31, {"party-3": model}), lambda s, r: r, timeout=60)
    assert set(again.accepted) == {"party-3"}  # ... and takes part in the next round


def test_a_pool_that_cannot_be_scheduled_is_a_clear_error_not_a_hang(local_ray):
    from securefl.core.authority import Authority

    cfg = _config("transport.kind=ray", "federation.round_timeout=3")
    sim = Simulation(cfg)
    free = ray.available_resources().get("CPU", 0)  # fewer than 3, whatever other tests' actors hold
    with pytest.raises(TransportError, match=r"[123] of 3 Ray actors were not ready within"):
        # 3 actors, 2 CPUs: one never starts
        RayTransport(cfg, Authority(sim.scheme, cfg.federation.ids), identities=sim.ca, actors=3)
    deadline = time.monotonic() + 30  # the actors that did start are stopped: their CPUs come back
    while (cpus := ray.available_resources().get("CPU", 0)) != free:
        assert time.monotonic() < deadline, (f"{free - cpus} CPU(s) still held 30 s after the error: the actors "
                                             "that started were not stopped")
        time.sleep(0.1)


def test_the_config_travels_to_the_actors_as_json_and_reads_back_the_same():
    cfg = _config("crypto.scheme=ckks", "crypto.ckks.preset=test", "privacy.mode=local")
    assert read_config_text(config_text(cfg)) == cfg


def test_importing_securefl_and_running_on_threads_never_imports_ray():
    code = ("import sys, securefl\n"
            "from securefl import config\n"
            "from securefl.simulation import Simulation\n"
            f"Simulation(config.loads({BASE!r}, ['federation.rounds=1'])).run()\n"
            "print('ray' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_without_ray_installed_the_ray_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[ray\]"'):
        Simulation(_config("transport.kind=ray")).run()


def test_the_seam_key_is_checked():
    with pytest.raises(ConfigError, match="transport.kind"):
        _config("transport.kind=spark")
    with pytest.raises(ConfigError, match="transport.ray_address: is for transport.kind = 'ray', not 'threads'"):
        _config("transport.ray_address=auto")
    with pytest.raises(ConfigError, match="transport.ray_address: is for transport.kind = 'ray', not 'grpc'"):
        _config("transport.kind=grpc", "transport.ray_address=auto")
    assert _config("transport.kind=ray", "transport.ray_address=auto").transport.ray_address == "auto"


@pytest.mark.parametrize(("override", "message"), [
    ("federation.engine=ray", 'federation.engine was replaced by [transport] kind = "ray"'),
    ("federation.engine=threads", 'federation.engine was replaced by [transport] kind = "threads"'),
    ("federation.ray_address=auto", "federation.ray_address was replaced by [transport] ray_address"),
    ("transport.kind=inproc", 'transport.kind = "inproc" was replaced by [transport] kind = "threads"'),
])
def test_the_old_seam_keys_are_refused_naming_the_new_one(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        _config(override)


def test_your_own_trainers_are_refused_on_ray_rather_than_pickled():
    from tests.userprog import Drift

    cfg = config.loads("[federation]\nparties = 2\n[data]\ndataset = \"own\"\n[transport]\nkind = \"ray\"\n")
    with pytest.raises(UsageError, match="transport.kind = 'threads'"):
        Simulation(cfg, {p: Drift(p) for p in cfg.federation.ids})


RELAY = """
import json, sys, warnings
import ray
from securefl import config
from securefl.simulation import Simulation
ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
cfg = config.loads(sys.argv[1], ["crypto.scheme=relay-test"])
out = {}
for engine in ("threads", "ray"):
    result = Simulation(cfg.replace([f"transport.kind={engine}"])).run()
    # sizes differ by the certificates' few bytes of DER (each Simulation has its own CA)
    out[engine] = {"rounds": [{k: v for k, v in r.as_json().items() if k not in ("seconds", "bytes_up")}
                              for r in result.rounds],
                   "model": result.final_parameters.tolist()}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_a_scheme_with_setup_and_share_exchanges_gives_the_threads_rounds_on_ray(tmp_path, monkeypatch):
    """tests/stepscheme.py's relay-test (setup stages every round, a share exchange) as a plug-in of its own Ray
    runtime's processes: the engine's every step goes through the actors."""
    from tests.stepscheme import registered

    with registered(tmp_path / "plugin", monkeypatch):
        proc = subprocess.run([sys.executable, "-c", RELAY, BASE], capture_output=True, text=True, timeout=600,
                              cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ray"]["rounds"] == out["threads"]["rounds"]
    # its pads are fresh random multiples of 2**-31 each run: adding and removing them costs a last bit
    np.testing.assert_allclose(out["ray"]["model"], out["threads"]["model"], rtol=1e-12, atol=1e-15)
    assert all(len(r["parties"]) == 4 and not r["dropped"] for r in out["ray"]["rounds"])


@pytest.mark.slow
def test_securefl_run_of_the_scale_example_agrees_on_ray_and_threads(tmp_path):
    """The 1,000-party example, cut to 100 parties and 2 rounds, through the command line on both engines."""
    results = {}
    for engine in ("ray", "threads"):
        out = tmp_path / f"{engine}.json"
        proc = subprocess.run([sys.executable, "-m", "securefl", "run", str(CONFIGS / "synthetic_1000.toml"),
                               "--set", "federation.parties=100", "--set", "federation.rounds=2",
                               "--set", f"transport.kind={engine}", "--json", str(out)],
                              capture_output=True, text=True, timeout=600, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[engine] = json.loads(out.read_text())
    for run in results.values():
        for r in run["rounds"]:
            r.pop("seconds")
            r.pop("bytes_up")  # each Simulation has its own CA: certificates differ by a few bytes of DER
    assert results["ray"] == results["threads"]
    assert results["ray"]["parties"] == 100 and results["ray"]["final_accuracy"] > 0.8


def test_the_scale_example_is_a_thousand_parties_of_about_a_hundred_rows_on_ray():
    cfg = config.load(CONFIGS / "synthetic_1000.toml")
    assert cfg.federation.parties == 1000 and cfg.transport.kind == "ray" and cfg.data.dataset == "synthetic"
    train_rows = cfg.data.samples * (1 - cfg.data.test_fraction)
    assert 95 <= train_rows / cfg.federation.parties <= 105
    # the CKKS variant's total weight (every party's rows) fits its declared bound
    ckks = config.load(CONFIGS / "synthetic_1000.toml", ["crypto.scheme=ckks"]).crypto.scheme_params()
    assert ckks.max_total_weight >= train_rows  # type: ignore[attr-defined]


def test_a_ray_address_of_the_wrong_form_is_refused_before_ray_is_asked():
    for bad in ("bogus", "ray://", "ray://host", "http://head:10001", "head:0", "head:70000", "ray://head:port"):
        with pytest.raises(ConfigError, match=r"transport.ray_address = .* is not a Ray address; set"):
            check_ray_address(bad)
    assert check_ray_address("ray://head-1.example.org:10001") == ("head-1.example.org", 10001)
    assert check_ray_address("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert check_ray_address("ray://ray_head:10001") == ("ray_head", 10001)  # a Compose service name
    assert check_ray_address("ray://[::1]:10001") == ("::1", 10001)
    assert check_ray_address("auto") is None and check_ray_address("local") is None


@pytest.mark.parametrize(("address", "error"), [
    ("bogus", "transport.ray_address = 'bogus' is not a Ray address"),
    ("ray://127.0.0.1:1", r"cannot reach the Ray cluster at transport.ray_address = 'ray://127.0.0.1:1' "
                          r"\(Connection refused on 127.0.0.1:1\): start it there"),
])
def test_securefl_run_with_a_bad_or_unreachable_ray_address_exits_2_with_the_fix_at_once(tmp_path, address, error):
    """Was a ValueError traceback ("bogus") and a ConnectionError traceback after ~33 s of Ray's retries."""
    path = tmp_path / "ray.toml"
    path.write_text(BASE)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "securefl", "run", str(path), "--set", "transport.kind=\"ray\"",
                           "--set", f"transport.ray_address={address}"],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert re.search(error, proc.stderr), proc.stderr
    assert "leave it empty to start a local Ray runtime" in proc.stderr
    assert time.monotonic() - t0 < 25


def test_a_failure_of_ray_init_itself_is_a_transport_error_naming_the_address():
    class FakeRay:
        __version__ = ray.__version__

        @staticmethod
        def init(**kwargs: object) -> None:
            raise ConnectionError("ray client connection timeout")

    with pytest.raises(TransportError, match=r"cannot join the Ray cluster at transport.ray_address = 'auto' "
                                             r"\(ConnectionError: ray client connection timeout\); check that"):
        connect(FakeRay, "auto")


SAMPLED = ["crypto.verify_aggregate=sampled", "crypto.verify_samples=1"]
"""Each party checks one block of each upload (of the paillier test preset's two) in the challenge step."""


@pytest.mark.parametrize("name", ["paillier", "ckks"])
def test_sampled_verification_on_ray_gives_the_model_of_full_on_threads(local_ray, name):
    """Issue 22 item 2 on Ray: the challenge step goes to the actors (each party draws its blocks there, then is
    shown their openings) and the model is the one full verification makes on threads."""
    threads = _run(_config(*SCHEMES[name]))
    on_ray = _run(_config(*SCHEMES[name], *SAMPLED, "transport.kind=ray"))
    assert all(len(r.parties) == 4 and not r.dropped for r in on_ray.rounds)
    for r in on_ray.rounds:
        v = r.verification
        assert v["mode"] == "sampled" and v["samples"] == 1 and v["verifiers"] == 4, v
    assert on_ray.final_parameters is not None and threads.final_parameters is not None
    if name in EXACT:
        assert [{k: v for k, v in a.items() if k != "verification"} for a in _rounds(on_ray)] == _rounds(threads)
        np.testing.assert_array_equal(on_ray.final_parameters, threads.final_parameters)
    else:  # ckks's encryption noise comes from the OS CSPRNG: equal up to it
        np.testing.assert_allclose(on_ray.final_parameters, threads.final_parameters, atol=1e-3)


def test_a_cheating_aggregator_is_refused_by_every_party_in_its_actor_under_sampled(local_ray):
    """The hostile aggregator of the in-process suite (tests/adversary.py) above parties in Ray actors: each
    refuses the substituted aggregate with AggregateMismatchError before it opens it (none of the four takes the
    sealed model: an opening party would measure it) and the run stops for want of a quorum."""
    from securefl.errors import QuorumError
    from tests.adversary import ATTACKS, hostile

    fn, why = ATTACKS["single upload decrypted"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        sim = Simulation(_config(*SCHEMES["paillier"], *SAMPLED, "transport.kind=ray"))
        sim.aggregator = hostile(sim.aggregator, fn)
        with pytest.raises(QuorumError) as raised:
            sim.run()
    message = str(raised.value)
    assert "only 0 usable taker" in message and message.count("AggregateMismatchError") == 4 and why in message, message
