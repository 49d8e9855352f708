"""Test helper: a federation of real processes on 127.0.0.1 with fresh certificates and free ports."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from crypto_backends import registry
from securefl import config
from securefl.transport.grpc.certs import make_certificates
from tests.paths import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(scheme: str = "plain", *, parties: int = 3, rounds: int = 3, quorum: int = 0,
                round_timeout: float = 60, model: str = 'kind = "logistic"\nlocal_epochs = 2',
                dataset: str = "breast_cancer", extra: str = "") -> str:
    # fast test presets, except ckks's: its 20-bit scale is too coarse to compare accuracies, and its
    # default (N=4096) costs milliseconds for these models anyway
    fast = scheme != "ckks" and "test" in registry.params_type(scheme).presets()
    preset = f"\n[crypto.{scheme}]\npreset = \"test\"\n" if fast else ""
    return (f"[federation]\nparties = {parties}\nrounds = {rounds}\nquorum = {quorum}\nseed = 7\n"
            f"round_timeout = {round_timeout}\n\n[data]\ndataset = \"{dataset}\"\n\n[model]\n{model}\n\n"
            f"[crypto]\nscheme = \"{scheme}\"\n{preset}\n{extra}")


class Deployment:
    """Writes CONFIG (TOML text + a [transport] section), makes certificates, starts and stops roles."""

    def __init__(self, tmp: Path, text: str, *, connect_timeout: float = 30, poll_seconds: float = 2,
                 transport: str = "") -> None:
        self.tmp = tmp
        self.certs = tmp / "certs"
        self.checkpoint = tmp / "aggregator.ckpt"
        self.keystore = tmp / "authority.keys"
        self.state_dir = tmp / "state"
        self.json = tmp / "result.json"
        self.ports = {"aggregator": free_port(), "authority": free_port()}
        # ``transport``: extra lines for the [transport] section
        transport = (f"[transport]\nkind = \"grpc\"\naggregator_port = {self.ports['aggregator']}\n"
                     f"authority_port = {self.ports['authority']}\ncert_dir = \"{self.certs}\"\n"
                     f"checkpoint = \"{self.checkpoint}\"\nauthority_keys = \"{self.keystore}\"\n"
                     f"state_dir = \"{self.state_dir}\"\n"
                     f"connect_timeout = {connect_timeout}\npoll_seconds = {poll_seconds}\n{transport}")
        self.path = tmp / "federation.toml"
        self.path.write_text(text + "\n" + transport)
        self.cfg = config.load(self.path)
        make_certificates(self.certs, self.cfg.federation.ids)
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.killed: set[str] = set()

    def start(self, name: str, *args: str) -> subprocess.Popen:
        """Start ``securefl ROLE CONFIG ARGS`` as its own process; ``name`` labels its log."""
        return self.start_module(name, "securefl", name.split(":")[0], str(self.path), *args)

    def start_module(self, name: str, module: str, *args: str) -> subprocess.Popen:
        """Start ``python -m MODULE ARGS`` (e.g. a user's own party program); ``name`` labels its log."""
        log = self.tmp / f"{name.replace(':', '-')}.log"
        self.logs[name] = log
        with log.open("ab") as fh:
            proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO,
                                    stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.procs[name] = proc
        return proc

    def start_all(self, parties: list[str] | None = None) -> None:
        self.start("authority")
        self.start("aggregator", "--json", str(self.json))
        for pid in parties if parties is not None else self.cfg.federation.ids:
            self.start(f"party:{pid}", "--id", pid)

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def wait_for(self, name: str, pattern: str, timeout: float = 60) -> re.Match:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if m := re.search(pattern, self.log(name)):
                return m
            if self.procs[name].poll() is not None and not re.search(pattern, self.log(name)):
                raise AssertionError(f"{name} exited ({self.procs[name].returncode}) before {pattern!r}:\n"
                                     + self.log(name)[-3000:])
            time.sleep(0.1)
        raise AssertionError(f"{name}: no {pattern!r} within {timeout} s:\n" + self.log(name)[-3000:])

    def wait_exit(self, name: str, timeout: float = 120) -> int:
        try:
            return self.procs[name].wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{name} still running after {timeout} s:\n" + self.log(name)[-3000:]) from None

    def finish(self, timeout: float = 120) -> dict:
        """Wait for the aggregator and every party to exit cleanly; the aggregator's JSON."""
        for name in [n for n in self.procs if not n.startswith("authority") and n not in self.killed]:
            code = self.wait_exit(name, timeout)
            assert code == 0, f"{name} exited with {code}:\n{self.log(name)[-3000:]}"
        return json.loads(self.json.read_text())

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        self.killed.add(name)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
