"""Upload limits per party, against a real aggregator process over real mutual TLS, measured in its RSS."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from securefl.transport.grpc import certs, wire
from securefl.transport.grpc.certs import Identity
from securefl.transport.grpc.channels import Endpoint
from securefl.transport.grpc.clients import AGGREGATOR_SERVICE

from .deployment import Deployment, config_text

pytestmark = pytest.mark.slow

MiB = 1 << 20
BIG = 256 * MiB


def _rss(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def _frames(announced: int, sent: int, chunk: int, hold: threading.Event | None = None) -> Iterator[bytes]:
    """The upload's frames; with ``hold``, the rest waits after the first block until ``hold`` is set."""
    yield wire.header("upload", step="train", round=0, stage=0, bytes=announced)
    block = wire.DATA + b"\x00" * chunk  # one buffer reused: the client's own memory stays small
    for i in range(sent // chunk):
        if hold is not None and i == 1:
            assert hold.wait(60), "the held upload was never released"
        yield block


def _upload(d: Deployment, frames: Iterator[bytes]) -> grpc.StatusCode:
    endpoint = Endpoint(Identity(certs.PARTY, "party-1"), certs.load_tls(d.certs, "party-1", role=certs.PARTY),
                        d.cfg.transport)
    channel = endpoint.channel(certs.AGGREGATOR)
    try:
        channel.stream_unary(f"/{AGGREGATOR_SERVICE}/Upload")(frames, timeout=120)
    except grpc.RpcError as exc:
        return exc.code()
    finally:
        channel.close()
    return grpc.StatusCode.OK


@pytest.fixture
def aggregator(tmp_path):
    d = Deployment(tmp_path, config_text(parties=2, rounds=1, round_timeout=120))
    d.start("authority")
    d.start("aggregator", "--json", str(d.json))
    d.wait_for("aggregator", "round 0 open")
    yield d
    d.stop()


def test_four_parallel_256_mib_uploads_from_one_certificate_grow_the_aggregator_by_at_most_64_mib(aggregator):
    d = aggregator
    pid = d.procs["aggregator"].pid
    chunk = d.cfg.transport.chunk_bytes
    # alone first, so that no other upload of this certificate holds its one slot: an announced size over the
    # limit is refused before its bytes are read (in the burst below, which upload takes the slot is a race)
    assert _upload(d, _frames(BIG, BIG, chunk)) == grpc.StatusCode.INVALID_ARGUMENT
    assert "exceeds the limit" in d.log("aggregator")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    before = _rss(pid)
    codes: list[grpc.StatusCode] = []
    # two announce their true size, two announce an honest size and then send 256 MiB anyway
    streams = [_frames(BIG, BIG, chunk), _frames(BIG, BIG, chunk), _frames(1000, BIG, chunk),
               _frames(1000, BIG, chunk)]
    threads = [threading.Thread(target=lambda f=f: codes.append(_upload(d, f))) for f in streams]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    peak, after = _rss(pid, "VmHWM"), _rss(pid)
    print(f"aggregator RSS {before / MiB:.1f} MiB before, peak +{(peak - before) / MiB:.1f} MiB, "
          f"after +{(after - before) / MiB:.1f} MiB; statuses {sorted(c.name for c in codes)}")
    assert len(codes) == 4 and grpc.StatusCode.OK not in codes, codes
    assert peak - before <= 64 * MiB, f"the aggregator grew by {(peak - before) / MiB:.0f} MiB at its peak"
    assert after - before <= 16 * MiB, f"{(after - before) / MiB:.0f} MiB did not come back after the refusals"
    assert d.procs["aggregator"].poll() is None  # it goes on serving


def test_a_party_has_at_most_one_upload_in_flight(aggregator):
    d = aggregator
    chunk = 1000
    slow: list[grpc.StatusCode] = []
    # an upload within the limit (the model's 31 values, with the margin) held after its first block: once the
    # aggregator says it is in progress, it holds its slot until released
    hold = threading.Event()
    first = threading.Thread(target=lambda: slow.append(_upload(d, _frames(60 * chunk, 60 * chunk, chunk, hold))))
    first.start()
    try:
        d.wait_for("aggregator", "upload of party-1 in progress")
        assert _upload(d, _frames(chunk, chunk, chunk)) is grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        hold.set()
    first.join(60)
    assert slow and slow[0] is not grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "already has an upload in progress" in d.log("aggregator") or "second concurrent upload" in d.log(
        "aggregator")
