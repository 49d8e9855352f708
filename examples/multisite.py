"""Each site on its own data: split one CSV into per-site files, then run the deployment with each party on its file.

    python examples/multisite.py DATA.csv [--sites 3] [--label label] [--scheme plain] [--rounds 5] [--work DIR]
    python examples/multisite.py --demo-csv breast_cancer.csv      # write a CSV to try it with, then exit

What an organisation would do by hand, on one machine: the sites' files are
written to ``WORK/site-N.csv``; the key authority, the aggregator and one
process per site start over gRPC with mutual TLS (fresh certificates), and
each party reads only its own file (``securefl party CONFIG --id party-N
--data WORK/site-N.csv``).  The config says ``data.dataset = "own"``: the
aggregator and the authority read no data at all; the round metrics are the
sites' own held-out accuracies, averaged.  Prints the aggregator's JSON (the
``securefl run --json`` format).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def split_csv(source: Path, label: str, sites: int, out: Path, seed: int = 7) -> list[Path]:
    """Deal ``source``'s rows to ``sites`` files, class by class, so that every site holds every class."""
    import numpy as np

    with source.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    if label not in header:
        raise SystemExit(f"{source}: no column {label!r}; pass --label with one of {header}")
    col = header.index(label)
    rng = np.random.default_rng(seed)  # experiment design: which rows go to which site
    shares: list[list[list[str]]] = [[] for _ in range(sites)]
    for value in sorted({r[col] for r in body}):
        members = [r for r in body if r[col] == value]
        for i, idx in enumerate(rng.permutation(len(members))):
            shares[i % sites].append(members[idx])
    paths = []
    for i, share in enumerate(shares, 1):
        path = out / f"site-{i}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(share)
        paths.append(path)
    return paths


def demo_csv(path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([f"f{j}" for j in range(bunch.data.shape[1])] + ["label"])
        for x, y in zip(bunch.data, bunch.target, strict=True):
            writer.writerow([*map(repr, x.tolist()), int(y)])


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def labels_of(files: list[Path], label: str) -> list[str]:
    """Every label the sites' files hold, sorted: the ``[data] classes`` every site declares alike."""
    found: set[str] = set()
    for path in files:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            col = next(reader).index(label)
            found.update(r[col] for r in reader if r)
    return sorted(found)


def config_text(sites: int, label: str, scheme: str, rounds: int, work: Path, classes: list[str] | None = None
                ) -> str:
    agg, auth = free_ports(2)
    declared = f"classes = {json.dumps(classes)}  # the labels every site numbers alike\n" if classes else ""
    return f"""[federation]
parties = {sites}
rounds = {rounds}
seed = 7

[data]
dataset = "own"          # each party trains on its own file (--data); the aggregator reads none
label_column = "{label}"
{declared}
[model]
kind = "logistic"
local_epochs = 2

[crypto]
scheme = "{scheme}"

[transport]
kind = "grpc"
aggregator_host = "127.0.0.1"
authority_host = "127.0.0.1"
bind_host = "127.0.0.1"
aggregator_port = {agg}
authority_port = {auth}
cert_dir = "{work / 'certs'}"
checkpoint = "{work / 'aggregator.ckpt'}"
state_dir = "{work / 'state'}"
"""


def run(files: list[Path], label: str, scheme: str, rounds: int, work: Path) -> dict:
    cfg = work / "federation.toml"
    cfg.write_text(config_text(len(files), label, scheme, rounds, work, labels_of(files, label)))
    py = [sys.executable, "-m", "securefl"]
    subprocess.run([*py, "certs", str(work / "certs"), "--config", str(cfg)], check=True, stdout=subprocess.DEVNULL)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {}

    def start(name: str, *args: str) -> None:
        logs[name] = (work / f"{name}.log").open("wb")
        procs[name] = subprocess.Popen([*py, *args], stdout=logs[name], stderr=subprocess.STDOUT,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})

    try:
        start("authority", "authority", str(cfg))
        start("aggregator", "aggregator", str(cfg), "--json", str(work / "result.json"))
        for i, path in enumerate(files, 1):
            start(f"party-{i}", "party", str(cfg), "--id", f"party-{i}", "--data", str(path))
        deadline = time.monotonic() + 600
        for name in [n for n in procs if n != "authority"]:
            code = procs[name].wait(max(1.0, deadline - time.monotonic()))
            if code != 0:
                raise SystemExit(f"{name} exited with {code}:\n{(work / f'{name}.log').read_text()[-3000:]}")
        return dict(json.loads((work / "result.json").read_text()))
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for fh in logs.values():
            fh.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", nargs="?", type=Path, help="the CSV to deal to the sites")
    parser.add_argument("--demo-csv", type=Path, metavar="PATH", help="write breast_cancer as a CSV and exit")
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--label", default="label", help="the label column")
    parser.add_argument("--scheme", default="plain", help="[crypto] scheme (the only thing that changes)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=Path, help="where the site files, certificates and logs go (default: temp)")
    args = parser.parse_args(argv)
    if args.demo_csv:
        demo_csv(args.demo_csv)
        return 0
    if args.csv is None:
        parser.error("give a CSV file (or --demo-csv PATH to make one)")
    work = args.work or Path(tempfile.mkdtemp(prefix="securefl-multisite."))
    work.mkdir(parents=True, exist_ok=True)
    files = split_csv(args.csv, args.label, args.sites, work)
    print(json.dumps(run(files, args.label, args.scheme, args.rounds, work), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
