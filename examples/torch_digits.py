"""A small PyTorch CNN on scikit-learn's 8x8 digits, federated across the config's parties.

    python examples/torch_digits.py examples/configs/torch_digits.toml
    python examples/torch_digits.py examples/configs/torch_digits.toml --set crypto.scheme=paillier
    python examples/torch_digits.py examples/configs/torch_digits.toml --set federation.rounds=2 --json out.json

Needs the torch extra (``pip install -e ".[torch]"``).  The program names no
scheme: ``[crypto]`` in the config (or ``--set crypto.scheme=...``) is the whole
change between an unprotected and an encrypted run.  ``[federation] seed``
drives the split, the initial weights and the batch order.

Each party holds one stratified fifth of the 1797 images and keeps a quarter of
its rows (stratified) as its own held-out set; the printed accuracy pools every
contributor's held-out rows.  Pixels (0..16) are divided by 16, their public
range, so no party needs statistics of another party's data.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch import nn

import securefl
from securefl.errors import SecureFLError
from securefl.ml.torch_trainer import TorchTrainer

HELD_OUT = 0.25
LOCAL_EPOCHS = 3
BATCH_SIZE = 32
LEARNING_RATE = 5e-3


def cnn() -> nn.Module:
    """Two 3x3 convolutions and a linear read-out: 6090 parameters (one CKKS chunk holds 2048)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 16 x 4 x 4
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 32 x 2 x 2
        nn.Flatten(), nn.Linear(128, 10),
    )


def trainers(party_ids: tuple[str, ...], seed: int) -> dict[str, TorchTrainer]:
    """One trainer per party, each on its own stratified share of the digits."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    shares = StratifiedKFold(len(party_ids), shuffle=True, random_state=seed).split(X, y)
    out = {}
    for i, (pid, (_, rows)) in enumerate(zip(party_ids, shares, strict=True)):
        X_train, X_test, y_train, y_test = train_test_split(X[rows], y[rows], test_size=HELD_OUT, stratify=y[rows],
                                                            random_state=seed + i)
        torch.manual_seed(seed)  # the same start everywhere (the engine uses the first party's anyway)
        out[pid] = TorchTrainer(cnn(), nn.CrossEntropyLoss(), lambda p: torch.optim.Adam(p, lr=LEARNING_RATE),
                                X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
                                local_epochs=LOCAL_EPOCHS, batch_size=BATCH_SIZE, seed=seed + i)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a TOML config ([federation] and [crypto] are used)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config key; repeatable")
    parser.add_argument("--json", metavar="PATH", help="write the run's result as JSON (securefl run --json format)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the parties already run on threads of their own; tiny convolutions gain nothing
    try:
        cfg = securefl.load_config(args.config, args.set)
        parties = trainers(cfg.federation.ids, cfg.federation.seed)
        print(f"{cfg.crypto.scheme}: {len(parties)} parties, {cfg.federation.rounds} rounds, "
              f"{parties[cfg.federation.ids[0]].num_parameters} parameters", flush=True)

        def on_round(m: securefl.RoundMetrics) -> None:
            print(f"round {m.round:>2}: accuracy {m.accuracy:.4f}  loss {m.metrics.get('loss', float('nan')):.4f}"
                  f"  {m.seconds:6.2f} s  {m.bytes_up / 1024:8.1f} KiB up/party", flush=True)

        result = securefl.simulate(cfg, parties, on_round)
    except SecureFLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"final accuracy: {result.final_accuracy:.4f}")
    if args.json:
        target = Path(args.json)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
