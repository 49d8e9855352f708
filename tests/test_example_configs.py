"""Each example config's opening comment describes its own scheme, not another one's."""

from __future__ import annotations

import pytest

from securefl import config
from tests.paths import CONFIGS


def _opening_comment(name: str) -> str:
    lines = (CONFIGS / name).read_text(encoding="utf-8").splitlines()
    head = []
    for line in lines:
        if not line.startswith("#"):
            break
        head.append(line.lstrip("# "))
    return " ".join(head)


@pytest.mark.parametrize("name, says", [("ckks.toml", "CKKS"), ("paillier.toml", "Paillier"),
                                        ("plain.toml", "in the clear")])
def test_the_opening_comment_names_the_files_own_scheme(name, says):
    text = _opening_comment(name)
    assert says in text
    scheme = config.load(CONFIGS / name).crypto.scheme
    if scheme != "plain":
        assert "in the clear" not in text and "The baseline" not in text
