"""The fe aggregator's point sums (crypto_backends/fe/pointsum.py and its C kernel).

The C kernel is checked against libsecp256k1 (through coincurve) on the cases where
affine addition formulas break: doubling, a point and its negative, the identity as
an input and as a sum; and on every kind of bad point, which must be reported by
sender and position with nothing returned.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto_backends.errors import InvalidInputError, MalformedCiphertextError
from crypto_backends.fe import group, kernels, pointsum
from tests.audit import pointsum_fuzz as fuzz
from tests.paths import REPO

ORDER = group.ORDER
W = group.WIRE_BYTES
native = pytest.mark.skipif(not pointsum.native(), reason="the C kernel is not built (no C compiler)")


def wire(k: int) -> bytes:
    return group.to_wire(group.base_mul(k))


def reference(payloads: list[bytes], length: int) -> bytes:
    return kernels.add_updates(payloads, [f"p{i}" for i in range(len(payloads))], 0)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler here")
def test_the_c_kernel_is_built_wherever_a_compiler_is():
    # An install that silently skipped it would make fe's combining about 6x slower.
    assert pointsum.native()


@native
@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(min_value=0, max_value=ORDER - 1), min_size=3, max_size=3),
                min_size=1, max_size=6))
def test_sums_of_multiples_of_g_are_the_multiple_of_the_sum(columns):
    # parties x coordinates, by columns: k * G for each party's scalar (0 is the identity)
    parties = len(columns[0])
    payloads = [b"".join(wire(col[i]) for col in columns) for i in range(parties)]
    out = pointsum.add(payloads, [f"p{i}" for i in range(parties)], len(columns), 1)
    assert out == b"".join(wire(sum(col)) for col in columns)


@native
@pytest.mark.parametrize("length", [1, 7, 513, 5000])
def test_the_kernel_gives_libsecp256k1s_bytes_on_the_awkward_cases(length):
    ks = [[secrets.randbelow(ORDER - 1) + 1 for _ in range(length)] for _ in range(5)]
    for j in range(0, length, 3):
        ks[1][j] = ks[0][j]  # P + P: a doubling
    for j in range(1, length, 5):
        ks[2][j] = (-(ks[0][j] + ks[1][j])) % ORDER  # the first three sum to the identity
    for j in range(2, length, 7):
        ks[3][j] = 0  # the identity as an input
    for j in range(4, length, 11):
        ks[4][j] = (-sum(ks[i][j] for i in range(4))) % ORDER  # the whole column sums to the identity
    payloads = [b"".join(wire(k) for k in row) for row in ks]
    expected = b"".join(wire(sum(col)) for col in zip(*ks, strict=True))
    if length > 4:
        assert expected[W * 4 : W * 5] == group.WIRE_IDENTITY
    assert reference(payloads, length) == expected
    for workers in (1, 2):
        assert pointsum.add(payloads, [f"p{i}" for i in range(5)], length, workers) == expected


@native
def test_ranges_on_threads_join_to_the_whole():
    length = pointsum.MIN_THREADED + 123
    row = [wire(secrets.randbelow(1 << 40) + 1) for _ in range(64)]
    payloads = [b"".join(row[(i + j) % 64] for j in range(length)) for i in range(3)]
    one = pointsum.add(payloads, ["a", "b", "c"], length, 1)
    assert pointsum.add(payloads, ["a", "b", "c"], length, 2) == one
    assert one == reference(payloads, length)


BAD = {
    "off the curve": lambda p: p[:63] + bytes([p[63] ^ 1]),
    "x >= p": lambda p: b"\xff" * 32 + p[32:],
    "y >= p": lambda p: p[:32] + b"\xff" * 32,
    "x = 0": lambda p: bytes(32) + p[32:],
    "no y for x = 7": lambda p: (7).to_bytes(32, "big") + p[32:],
    "y = 0": lambda p: p[:32] + bytes(32),
}


@pytest.mark.parametrize("use_native", [True, False])
@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_bad_point_names_its_sender_and_position_and_returns_nothing(monkeypatch, kind, use_native):
    if use_native and not pointsum.native():
        pytest.skip("the C kernel is not built")
    if not use_native:
        monkeypatch.setattr(pointsum, "_native", None)
    length = 700
    payloads = [b"".join(wire(secrets.randbelow(1 << 30) + 1) for _ in range(length)) for _ in range(4)]
    for sender, where in ((0, 0), (2, 513), (3, length - 1)):
        bad = list(payloads)
        at = W * where
        bad[sender] = bad[sender][:at] + BAD[kind](bad[sender][at : at + W]) + bad[sender][at + W :]
        with pytest.raises(MalformedCiphertextError, match=f"party 'p{sender}' holds no curve point at position "
                                                           f"{where}:"):
            pointsum.add(bad, [f"p{i}" for i in range(4)], length, 1)


@native
def test_the_fallback_gives_the_same_bytes_and_says_once_how_to_get_the_fast_path(monkeypatch, caplog):
    length = 300
    payloads = [b"".join(wire(secrets.randbelow(ORDER)) for _ in range(length)) for _ in range(3)]
    fast = pointsum.add(payloads, ["a", "b", "c"], length, 1)
    monkeypatch.setattr(pointsum, "_native", None)
    monkeypatch.setattr(pointsum, "_warned", False)
    with caplog.at_level("WARNING", logger="crypto_backends.fe.pointsum"):
        assert pointsum.add(payloads, ["a", "b", "c"], length, 1) == fast
        assert pointsum.add(payloads, ["a", "b", "c"], length, 1) == fast
    said = [r.getMessage() for r in caplog.records if r.name == "crypto_backends.fe.pointsum"]
    assert len(said) == 1 and "reinstall securefl where a C compiler" in said[0]


@native
def test_the_c_kernel_refuses_inputs_shorter_than_the_range():
    from crypto_backends.fe import _pointsum  # type: ignore[attr-defined]

    with pytest.raises(ValueError, match="fewer than 2 points"):
        _pointsum.add([wire(1) * 2, wire(2)], 0, 2)
    with pytest.raises(ValueError, match="at least one input"):
        _pointsum.add([], 0, 0)
    with pytest.raises(TypeError):
        _pointsum.add([wire(1), 5], 0, 1)
    assert _pointsum.add([wire(1), wire(2)], 1, 1) == (b"", -1, -1)


def _coincurve_accepts(data: bytes) -> bool:
    try:
        group.from_wire(data)
    except MalformedCiphertextError:
        return False
    return True


@native
@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(min_size=W, max_size=W),  # random bytes: almost never a point
    st.integers(min_value=1, max_value=ORDER - 1).map(wire),  # a point
    st.tuples(st.integers(min_value=1, max_value=ORDER - 1), st.integers(min_value=0, max_value=8 * W - 1))
      .map(lambda kb: (lambda p, b: p[: b // 8] + bytes([p[b // 8] ^ (1 << (b % 8))]) + p[b // 8 + 1 :])(
          wire(kb[0]), kb[1])),  # a point with one bit flipped
))
def test_the_kernel_accepts_exactly_the_points_libsecp256k1_accepts(data):
    from crypto_backends.fe import _pointsum  # type: ignore[attr-defined]

    out, bad, where = _pointsum.add([data], 0, 1)
    if _coincurve_accepts(data):
        assert (out, bad) == (data, -1)  # one input: the sum is the point itself
        two, bad2, _ = _pointsum.add([data, wire(1)], 0, 1)
        assert bad2 == -1 and two == group.to_wire(group.add([group.from_wire(data), group.base_mul(1)]))
    else:
        assert (out, bad, where) == (b"", 0, 0)
        assert _pointsum.add([wire(1), data], 0, 1)[1:] == (1, 0)


# --- issue 21 item 3: the kernel checks its caller's sizes -------------------------------------------------------
def _child(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m tests.audit.pointsum_fuzz args`` in a fresh process: a segfault there fails the test, not pytest."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "tests.audit.pointsum_fuzz", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=600, input=stdin, check=False)


def _expected(case: fuzz.Case, data: bytes) -> str:
    """What the raw entry must answer: a typed refusal for a bad range or a short input, else the exact sum."""
    if not 0 <= case.start <= case.stop <= fuzz.MAX_POINTS or not case.inputs:
        return "refused InvalidInputError"
    if any(length // W < case.stop for _, length in case.inputs):
        return "refused MalformedCiphertextError"
    if case.start == case.stop:
        out = b""
    else:
        views = [data[W * (off + case.start) : W * (off + case.stop)] for off, _ in case.inputs]
        out = reference(views, case.stop - case.start)
    return f"sum {hashlib.sha256(out).hexdigest()[:16]} -1 -1"


def _fuzz(count: int, seed: int) -> None:
    done = _child("--cases", str(count), "--seed", str(seed))
    lines = done.stdout.splitlines()
    assert done.returncode == 0, (
        f"the kernel's process ended with {done.returncode} after case {len(lines)} of seed {seed} "
        f"({list(fuzz.cases(count, seed))[len(lines)] if len(lines) < count else '?'}): {done.stderr[-2000:]}"
    )
    data = fuzz.blob()
    assert len(lines) == count
    for line, case in zip(lines, fuzz.cases(count, seed), strict=True):
        index, outcome = line.split(" ", 1)
        assert outcome == _expected(case, data), f"case {index}: {case}"


@native
def test_a_stop_beyond_2_to_the_57_is_refused_not_a_segfault():
    """``pointsum.add([32 KiB of zeros], ['a'], 2**58 + 1, 1)`` ended the process with SIGSEGV (stop * 64 wrapped)."""
    done = _child("--crash")
    assert done.returncode == 0, f"ended with {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.startswith("refused InvalidInputError: point sums need an integer length in [0, ")
    from crypto_backends.fe import _pointsum  # type: ignore[attr-defined]

    # the raw entry, in this process: refused before any product of the sizes is formed
    for length in (2**58 + 1, fuzz.MAX_POINTS + 1, 2**63):
        with pytest.raises(InvalidInputError, match="integer length"):
            pointsum.add([bytes(32 * 1024)], ["a"], length, 1)
    for start, stop in ((0, 2**58 + 1), (2**58, 2**58 + 1), (0, 2**63 - 1), (-1, 0), (3, 2)):
        with pytest.raises(InvalidInputError, match="need 0 <= start <= stop"):
            _pointsum.add([bytes(32 * 1024)], start, stop)
    with pytest.raises(MalformedCiphertextError, match="fewer than 513 points"):
        _pointsum.add([bytes(W * 513), bytes(W * 512)], 0, 513)


@pytest.mark.parametrize("length", [-1, True, 3.0, "3"])
def test_the_public_add_checks_the_length_itself(length):
    # (lengths beyond MAX_POINTS crashed the process: test_a_stop_beyond_2_to_the_57_is_refused_not_a_segfault
    # tries them in a subprocess first)
    with pytest.raises(InvalidInputError, match="integer length"):
        pointsum.add([bytes(32 * 1024)], ["a"], length, 1)


def test_the_public_add_checks_payloads_and_labels():
    with pytest.raises(InvalidInputError, match="at least one payload"):
        pointsum.add([], [], 1, 1)
    with pytest.raises(InvalidInputError, match="2 payloads but 1 labels"):
        pointsum.add([wire(1), wire(2)], ["a"], 1, 1)
    with pytest.raises(MalformedCiphertextError, match="party 'b' holds 64 bytes, fewer than 2 points"):
        pointsum.add([wire(1) * 2, wire(2)], ["a", "b"], 2, 1)
    with pytest.raises(MalformedCiphertextError, match="party 'a' holds 66 bytes, fewer than 3 points of 33"):
        pointsum.add([bytes(66)], ["a"], 3, 1, compressed=True)
    with pytest.raises(InvalidInputError, match="integer workers"):
        pointsum.add([wire(1)], ["a"], 1, -1)
    assert pointsum.add([wire(1) * 3], ["a"], 2, 1) == wire(1) * 2  # longer payloads: the first length points


@native
def test_the_raw_entry_survives_hostile_sizes():
    """Sizes near the limits, negative, reversed, empty, overlapping views of one buffer: typed refusal or exact sum."""
    _fuzz(300, seed=21)


@native
@pytest.mark.slow
def test_the_raw_entry_survives_hostile_sizes_at_length():
    for seed in range(4):
        _fuzz(2000, seed=1000 + seed)


@native
def test_a_thread_with_a_64_kib_stack_can_sum():
    """``sum_span`` kept about 106 KB of arrays on the stack; its working set is on the heap now."""
    done = _child("--small-stack")
    assert done.returncode == 0, f"ended with {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.strip() == f"summed {W * fuzz.POOL}"
