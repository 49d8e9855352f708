from __future__ import annotations

import platform

from securefl.tools import machine


def test_the_machine_description_is_enough_to_judge_a_measurement():
    info = machine.describe()
    assert info["cores"] >= 1 and info["memory_bytes"] > 2**20
    assert info["python"].endswith(platform.python_version())
    assert {"numpy", "scikit-learn", "cryptography"} <= set(info["libraries"])
    assert info["cpu"] is None or info["cpu"].strip()
