"""The README's main job, run as a user runs it: `python -m bridges.irc.demo --once`."""

from __future__ import annotations

import subprocess
import sys

from appservice.testing.plugin import require_synapse
from bridges.irc.pytest_fixtures import require_ngircd


def test_demo_crosses_a_message_each_way_and_exits_zero() -> None:
    require_synapse()
    require_ngircd()
    proc = subprocess.run(
        [sys.executable, "-m", "bridges.irc.demo", "--once"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    lines = proc.stdout.splitlines()
    to_matrix = [ln for ln in lines if ln.startswith("IRC -> Matrix:")]
    to_irc = [ln for ln in lines if ln.startswith("Matrix -> IRC:")]
    assert len(to_matrix) == 1, out
    assert "arrived as @_test_bob:localhost" in to_matrix[0]
    assert len(to_irc) == 1, out
    assert "arrived as relaybot: '<Alice> hello from Matrix" in to_irc[0]
    assert lines[-1] == "demo: OK, a message crossed each way"
