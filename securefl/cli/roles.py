"""The networked roles as their own processes (``authority``, ``aggregator``, ``party``) and ``certs``."""

from __future__ import annotations

import argparse
import logging
import signal

from securefl import config as config_mod
from securefl.cli.common import check_parent, console, out, result_json
from securefl.errors import ConfigError


def cmd_certs(args: argparse.Namespace) -> int:
    """Write a CA and certificates for the aggregator, the authority and every party into ``args.outdir``."""
    from securefl.transport.grpc.certs import make_certificates

    if bool(args.config) == bool(args.parties):
        raise ConfigError("securefl certs: give the parties either with --config CONFIG (its federation.party_ids) "
                          "or with --parties a,b,c")
    ids = (config_mod.load(args.config, args.set or []).federation.ids if args.config
           else [p.strip() for p in args.parties.split(",") if p.strip()])
    hosts = [h.strip() for h in (args.hosts or "").split(",") if h.strip()]
    written = make_certificates(args.outdir, ids, hosts=hosts, days=args.days)
    out.print(f"wrote {len(written)} files to {args.outdir}: a CA, the aggregator, the authority and "
              f"{len(ids)} parties. Keep ca.key offline; give each machine ca.pem and only its own NAME.pem/NAME.key.")
    return 0


def _role_config(args: argparse.Namespace) -> config_mod.Config:
    """The grpc config of a role process; also sets up its logging and makes SIGTERM end it like Ctrl-C."""
    cfg = config_mod.load(args.config, args.set or [])
    if cfg.transport.kind != "grpc":
        raise ConfigError(f"transport.kind is {cfg.transport.kind!r}: set transport.kind = \"grpc\" (or "
                          "--set transport.kind=grpc) to run the roles as separate processes")
    if args.insecure:
        console.print("[bold red]WARNING: --insecure: no TLS; keys, updates and models travel in the clear and "
                      "peers are whoever they claim to be. Never use it with real data.[/]")
    # long-running services: timestamped progress on stderr
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("securefl", "crypto_backends"):  # the crypto layer's notes too (fe grants, secagg verifications)
        logging.getLogger(name).setLevel(logging.DEBUG if args.debug else logging.INFO)
    # a stop request (SIGTERM) ends the role like Ctrl-C: servers close, no traceback
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return cfg


def cmd_authority(args: argparse.Namespace) -> int:
    """Serve the federation's keys until stopped (Ctrl-C or SIGTERM)."""
    cfg = _role_config(args)
    from securefl.transport.grpc import tlslog

    tlslog.install()  # before grpc is imported: refused TLS handshakes are logged with the peer's address
    from securefl.transport.grpc.authority_server import serve

    server = serve(cfg, insecure=args.insecure)
    try:
        server.wait_for_termination()
    finally:
        server.stop(grace=1.0)
    return 0


def cmd_aggregator(args: argparse.Namespace) -> int:
    """Run the rounds over gRPC, print the final metric and write ``--json`` (also when stopped early)."""
    if args.json:
        check_parent(args.json, "--json")  # before the federation starts, not after its last round
    cfg = _role_config(args)
    from securefl.transport.grpc import tlslog

    tlslog.install()  # before grpc is imported: refused TLS handshakes are logged with the peer's address
    from securefl.transport.grpc.aggregator_server import NetworkedAggregator

    save = result_json(args.json)
    result = NetworkedAggregator(cfg, insecure=args.insecure).run(on_stop=save)
    out.print(f"final {result.metric}: {result.final_accuracy:.4f}")
    save(result)
    return 0


def cmd_party(args: argparse.Namespace) -> int:
    """Take part in the rounds as party ``args.id``; print the final model's metrics on its held-out rows."""
    from securefl.transport.grpc.party_client import NetworkedParty

    metrics = NetworkedParty(_role_config(args), args.id, insecure=args.insecure, data=args.data).run()
    if metrics:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        out.print(f"final model measured by {args.id} on its held-out rows: {shown}")
    return 0
