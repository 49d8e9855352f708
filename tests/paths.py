"""Where the repository's files are, whatever the working directory of the test run."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
CONFIGS = EXAMPLES / "configs"
