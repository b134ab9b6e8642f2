"""What a benchmark prints about where it ran, and a process's CPU time read from /proc.

Import it from a script in bench/ (``from _machine import machine``): the script's own folder is
first on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
from collections.abc import Iterable
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or ``?``."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def machine() -> str:
    """``<CPU model>, <n> cores; <platform>``."""
    return f"{cpu_model()}, {os.cpu_count()} cores; {platform.platform()}"


def package_versions(names: Iterable[str]) -> str:
    """``name 1.2.3, ...`` for installed distributions (``name missing`` for the others)."""
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    return ", ".join(found)


def process_cpu_ms(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (all its threads) so far, in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK  # utime, stime (fields 14, 15)


def thread_run_ns(pid: int) -> dict[int, int]:
    """Each live thread of ``pid`` (by thread id) and the nanoseconds it has run on a CPU, as
    the scheduler counts them (``schedstat``: exact, where utime/stime are sampled per tick)."""
    runs: dict[int, int] = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            runs[int(stat.parent.name)] = int(stat.read_text().split()[0])
    return runs
