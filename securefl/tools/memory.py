"""``python -m securefl.tools.memory``: the aggregator's peak memory over streamed uploads.

The aggregator side runs in this process exactly as the round engine runs it: a
:class:`~securefl.core.aggregator.Stream` whose ``accept`` parses, checks and
folds each upload as it arrives (:meth:`~securefl.core.aggregator.Aggregator.stream`,
then :meth:`~securefl.core.aggregator.Aggregator.finish`).  The parties run in a
child process (``--produce``) that protects one real update after another and
writes each envelope to a pipe as length-prefixed bytes (never pickle); their
keys reach it the same way, as :meth:`~crypto_backends.base.Scheme.dump_key`
bytes.  So what this process holds is what an aggregator holds: the running
aggregate and the upload being read, never the parties' vectors.

Reported (JSON on stdout): ``baseline_mib`` (the resident set once imports, keys
and the aggregator are made: the interpreter's own footprint; the peak is reset
there, see :func:`reset_peak_mib`), ``peak_mib`` (peak RSS, Linux's ``VmHWM``, at
the end), ``model_mib`` (one fused model:
``params`` float64), ``growth_models`` = (peak - baseline) / model, and ``ok``:
the peak is below the baseline plus three fused models.  ``--param NAME=VALUE``
sets a field of the scheme's parameters (``--param exact_sum=false`` for plain's
one-model running sum).  What is not measured:
the parties' memory (another process), and memory the OS had not yet reclaimed
from earlier allocations of this process (RSS peaks are upper bounds).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import resource
import struct
import subprocess
import sys
import time
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from typing import IO, Any

import numpy as np

from crypto_backends import registry
from crypto_backends.base import SECRET_ACCESS, InsecureParametersWarning, Scheme
from crypto_backends.capabilities import InteractiveSetup
from crypto_backends.keys import FunctionKey, KeySet, PartyKey
from crypto_backends.statements import Evidence
from securefl.core.aggregator import Aggregator
from securefl.core.engine import SecureRound
from securefl.core.messages import GlobalModel
from securefl.errors import QuorumError, SecureFLError
from securefl.transport.base import Accept, PartyFailed, Replies, Request, T, Transport, take_reply

_LEN = struct.Struct(">Q")
_log = logging.getLogger(__name__)
MIB = 1 << 20


def _scheme(name: str, preset: str, parties: int, changes: Mapping[str, Any] | None = None) -> Scheme:
    params_type = registry.get(name).params_type
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        params = dataclasses.replace(params_type.preset(preset), **dict(changes or {}))
        return registry.create(name, params.for_federation(parties))


def parse_param(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` with VALUE read as TOML (``true``, ``3``, ``"x"``; a bare word is a string)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return name.strip(), parsed


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB.

    Linux's ``VmHWM`` when there is one: ``getrusage``'s ``ru_maxrss`` survives
    ``exec``, so a tool started from a large process (a test runner) would report
    that process's peak instead of its own.
    """
    hwm = _status_mib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_mib() -> float:
    """Start the peak over from now (Linux: ``clear_refs`` 5) and return the current RSS, in MiB.

    Where the peak cannot be reset, the peak so far is returned (an upper bound of the
    baseline, so growth is then under-reported by whatever transient came before)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return peak_rss_mib()
    rss = _status_mib("VmRSS")
    return rss if rss is not None else peak_rss_mib()


def _write(out: IO[bytes], data: bytes) -> None:
    out.write(_LEN.pack(len(data)))
    out.write(data)


def _read(inp: IO[bytes]) -> bytearray | None:
    head = inp.read(_LEN.size)
    if not head:
        return None
    (size,) = _LEN.unpack(head)
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        n = inp.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            raise EOFError("the producer stopped inside an upload")
        got += n
    return buf


class ProducerError(SecureFLError):
    """The child process playing the parties failed or stopped; the message carries what it printed."""


class _ChildParties(Transport):
    """The round engine's requests to the parties, carried to the child process over its pipes (never pickle).

    One request a party at a time: a JSON header (step, round, stage, party), then the
    payload; the child answers with a status frame and the reply (or its error's text).
    A ``train`` request's model is not sent: the child protects fixed-size test vectors.
    """

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stdin is not None and child.stdout is not None
        self.child, self.inp, self.out = child, child.stdin, child.stdout

    def exchange(self, request: Request, accept: Accept[T], *, timeout: float) -> Replies[T]:
        replies: Replies[T] = Replies()
        for party in request.parties:
            take_reply(replies, request, party, functools.partial(self._ask, request, party), accept, _log)
        return replies

    def _ask(self, request: Request, party: str) -> bytes:
        head = {"step": request.step, "round": request.round, "stage": request.stage, "party": party}
        try:
            _write(self.inp, json.dumps(head).encode())
            _write(self.inp, b"" if request.step == "train" else bytes(request.payloads[party]))
            self.inp.flush()
        except BrokenPipeError:
            raise ProducerError(f"the producer stopped (exit status {self.child.wait()}); "
                                "see its stderr above") from None
        return self._receive()

    def _receive(self) -> bytes:
        status, data = _read(self.out), _read(self.out)
        if status is None or data is None:
            raise ProducerError(f"the producer stopped (exit status {self.child.poll()}); see its stderr above")
        if status != b"ok":
            raise PartyFailed(data.decode(errors="replace"))
        return data  # type: ignore[return-value]  # a bytearray parses like bytes, and is not copied

    def function_key(self, round: int, weights: Mapping[str, float], evidence: Evidence | None) -> FunctionKey:
        raise ProducerError("the memory tool measures combining only: no function key is asked for")


def measure(*, parties: int, params: int, scheme: str = "plain", preset: str = "default",
            seed: int = 0, changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the aggregator side on ``parties`` streamed uploads of ``params`` values (see the module docstring).

    The setup exchanges (SecAgg+) and the uploads go through the round engine's own
    steps (:class:`~securefl.core.engine.SecureRound`), with the parties in a child
    process; :class:`ProducerError` if that process fails.
    """
    changes = dict(changes or {})
    sch = _scheme(scheme, preset, parties, changes)
    ids = [f"party-{i + 1}" for i in range(parties)]
    keys: KeySet = sch.keygen(ids)
    aggregator = Aggregator(sch, keys.aggregator, num_parameters=params, quorum=parties)
    child = subprocess.Popen(
        [sys.executable, "-m", "securefl.tools.memory", "--produce", "--parties", str(parties), "--params",
         str(params), "--scheme", scheme, "--preset", preset, "--seed", str(seed),
         *(arg for k, v in changes.items() for arg in ("--param", f"{k}={json.dumps(v)}"))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    try:
        _write(child.stdin, str(len(ids)).encode())
        for pid in ids:  # each party's key goes to the process that plays that party, as explicit bytes
            _write(child.stdin, sch.dump_key(keys.parties[pid], secret_access=SECRET_ACCESS))
        child.stdin.flush()
    except BrokenPipeError:
        raise ProducerError(f"the producer stopped before it had the parties' keys (exit status {child.wait()}); "
                            "see its stderr above") from None
    del keys
    transport = _ChildParties(child)
    # the parties ignore the model (they protect test vectors of ``params`` values): a one-value model keeps the
    # aggregator's memory what folding costs, not a copy of the model per request
    model = GlobalModel.open(np.zeros(1))
    baseline = reset_peak_mib()
    t0 = time.perf_counter()
    try:
        collected = SecureRound(aggregator, transport, timeout=math.inf).collect(0, ids, model)
    except QuorumError as exc:
        child.kill()
        raise ProducerError(f"the producer's parties did not all answer: {exc}") from None
    seconds = time.perf_counter() - t0
    child.stdin.close()
    if child.wait() != 0:
        raise ProducerError(f"the producer exited with status {child.returncode}")
    peak = peak_rss_mib()
    model_mib = params * 8 / MIB
    return {
        "scheme": scheme, "parties": parties, "params": params, "changes": changes,
        "contributors": len(collected.combined.contributors),
        "baseline_mib": round(baseline, 1), "peak_mib": round(peak, 1), "model_mib": round(model_mib, 2),
        "growth_models": round((peak - baseline) / model_mib, 3) if model_mib else 0.0,
        # the verdict compares the figures as reported (rounded), so that a reader re-checking them agrees
        "limit_mib": round(baseline + 3 * model_mib, 1), "ok": round(peak, 1) < round(baseline + 3 * model_mib, 1),
        "seconds": round(seconds, 2),
    }


def produce(*, parties: int, params: int, scheme: str, preset: str, seed: int,
            changes: Mapping[str, Any] | None = None) -> None:
    """The parties' side: read the keys, then answer the engine's requests (setup replies, protected updates)."""
    sch = _scheme(scheme, preset, parties, changes)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    count = _read(inp)
    keys: dict[str, PartyKey] = {}
    for _ in range(int(bytes(count or b"0"))):
        raw = _read(inp)
        key = sch.load_key(bytes(raw or b""))
        if not isinstance(key, PartyKey) or key.owner is None:
            raise TypeError(f"expected party keys on stdin, got {type(key).__name__}")
        keys[key.owner] = key
    setup = sch.capability(InteractiveSetup)
    rng = np.random.default_rng(seed)  # test data, not secrets
    while (raw := _read(inp)) is not None:
        head = json.loads(bytes(raw))
        payload = bytes(_read(inp) or b"")
        key, rnd, party = keys[head["party"]], int(head["round"]), head["party"]
        try:
            if head["step"] == "setup" and setup is not None:
                reply = bytes(setup.setup_reply(key, round=rnd, step=int(head["stage"]), message=payload))
            elif head["step"] == "train":
                weight = float(int(party.rsplit("-", 1)[1]))
                reply = sch.protect(key, rng.standard_normal(params), weight=weight, round=rnd).to_bytes()
            else:
                raise PartyFailed(f"the memory tool's parties answer setup and train only, not {head['step']!r}")
        except SecureFLError as exc:
            _write(out, b"error")
            _write(out, f"{type(exc).__name__}: {exc}".encode())
        else:
            _write(out, b"ok")
            _write(out, reply)
        out.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: the aggregator's peak memory over streamed uploads; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m securefl.tools.memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--parties", type=int, default=500)
    p.add_argument("--params", type=int, default=1_000_000)
    p.add_argument("--scheme", default="plain")
    p.add_argument("--preset", default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--param", type=parse_param, action="append", default=[], metavar="NAME=VALUE",
                   help="a field of the scheme's parameters, e.g. exact_sum=false (repeatable)")
    p.add_argument("--produce", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.produce:
        produce(parties=args.parties, params=args.params, scheme=args.scheme, preset=args.preset, seed=args.seed,
                changes=dict(args.param))
        return 0
    try:
        result = measure(parties=args.parties, params=args.params, scheme=args.scheme, preset=args.preset,
                         seed=args.seed, changes=dict(args.param))
    except TypeError as exc:  # dataclasses.replace: no such field
        p.error(f"--param: {exc}")
    except SecureFLError as exc:  # a bad scheme name or preset, or the producer failed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
