"""The README's main job, run as a user runs it: `python -m appservice.demo --once`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from appservice.testing.synapse import synapse_missing_reason


def test_demo_round_trip_exits_zero() -> None:
    missing = synapse_missing_reason()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Synapse is required in CI: {missing}")
        pytest.skip(missing)
    proc = subprocess.run(
        [sys.executable, "-m", "appservice.demo", "--once"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    sent = [line.split()[1].rstrip(":") for line in lines if line.startswith("sent ")]
    synced = [line.split()[1] for line in lines if line.startswith("synced ")]
    assert len(sent) == 1
    assert sent[0] == synced[0]
    assert any("_test_demo_puppet" in line and "identity assertion" in line for line in lines)
    assert lines[-1].startswith("demo: OK")
