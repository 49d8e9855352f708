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
import json
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
from crypto_backends.keys import KeySet, PartyKey
from securefl.core.aggregator import Aggregator

_LEN = struct.Struct(">Q")
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


def measure(*, parties: int, params: int, scheme: str = "plain", preset: str = "default",
            seed: int = 0, changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the aggregator side on ``parties`` streamed uploads of ``params`` values (see the module docstring)."""
    changes = dict(changes or {})
    sch = _scheme(scheme, preset, parties, changes)
    ids = [f"party-{i + 1}" for i in range(parties)]
    keys: KeySet = sch.keygen(ids)
    aggregator = Aggregator(sch, keys.aggregator, num_parameters=params, quorum=1)
    child = subprocess.Popen(
        [sys.executable, "-m", "securefl.tools.memory", "--produce", "--parties", str(parties), "--params",
         str(params), "--scheme", scheme, "--preset", preset, "--seed", str(seed),
         *(arg for k, v in changes.items() for arg in ("--param", f"{k}={json.dumps(v)}"))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    for pid in ids:  # each party's key goes to the process that plays that party, as explicit bytes
        _write(child.stdin, sch.dump_key(keys.parties[pid], secret_access=SECRET_ACCESS))
    child.stdin.close()
    del keys
    baseline = reset_peak_mib()
    t0 = time.perf_counter()
    stream = aggregator.stream(0)
    received = 0
    for pid in ids:
        data = _read(child.stdout)
        if data is None:
            raise EOFError(f"the producer stopped after {received} uploads")
        stream.accept(pid, data)  # type: ignore[arg-type]  # a bytearray parses like bytes; folded here
        received += 1
        del data
    combined = aggregator.finish(stream)
    seconds = time.perf_counter() - t0
    if child.wait() != 0:
        raise RuntimeError(f"the producer exited with status {child.returncode}")
    peak = peak_rss_mib()
    model = params * 8 / MIB
    return {
        "scheme": scheme, "parties": parties, "params": params, "changes": changes,
        "contributors": len(combined.contributors),
        "baseline_mib": round(baseline, 1), "peak_mib": round(peak, 1), "model_mib": round(model, 2),
        "growth_models": round((peak - baseline) / model, 3) if model else 0.0,
        # the verdict compares the figures as reported (rounded), so that a reader re-checking them agrees
        "limit_mib": round(baseline + 3 * model, 1), "ok": round(peak, 1) < round(baseline + 3 * model, 1),
        "seconds": round(seconds, 2),
    }


def produce(*, parties: int, params: int, scheme: str, preset: str, seed: int,
            changes: Mapping[str, Any] | None = None) -> None:
    """The parties' side: read the keys from stdin, write one protected update after another to stdout."""
    sch = _scheme(scheme, preset, parties, changes)
    keys: list[PartyKey] = []
    while (raw := _read(sys.stdin.buffer)) is not None:
        key = sch.load_key(bytes(raw))
        if not isinstance(key, PartyKey):
            raise TypeError(f"expected party keys on stdin, got {type(key).__name__}")
        keys.append(key)
    rng = np.random.default_rng(seed)  # test data, not secrets
    out = sys.stdout.buffer
    for i, key in enumerate(keys):
        _write(out, sch.protect(key, rng.standard_normal(params), weight=float(i + 1), round=0).to_bytes())
    out.flush()


def main(argv: Sequence[str] | None = None) -> int:
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
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
