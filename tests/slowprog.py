"""A user's own party program whose first evaluation is slow: the party that dies while it measures.

Run as a networked party: ``python -m tests.slowprog CONFIG PARTY_ID SECONDS``.  The trainer is
:class:`tests.userprog.Drift`, except that its first ``evaluate`` prints ``evaluating slowly`` and
sleeps ``SECONDS`` first (long enough for a test to kill the process in the middle of it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

import numpy as np

import securefl
from tests.userprog import Drift


class SlowFirstEvaluate(Drift):
    def __init__(self, party_id: str, seconds: float) -> None:
        super().__init__(party_id)
        self.seconds, self.slowed = seconds, False

    def evaluate(self, parameters: np.ndarray) -> Mapping[str, float]:
        if not self.slowed:
            self.slowed = True
            print("evaluating slowly", flush=True)
            time.sleep(self.seconds)
        return super().evaluate(parameters)


def main(argv: list[str]) -> int:
    config, party_id, seconds = argv
    securefl.serve_party(config, party_id, SlowFirstEvaluate(party_id, float(seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
