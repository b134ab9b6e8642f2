"""The disk's floor under durable intake: one ``pwrite`` and ``fdatasync`` per transaction.

    .venv/bin/python bench/fsync_floor.py [--count 1500] [--dir DIR]

Synapse sends an appservice one transaction at a time, so every 200 of the SQLite inbox at
``synchronous=FULL`` waits for one fsync of the WAL. This times that step alone, for several write
sizes, overwriting a file written and synced beforehand (as SQLite reuses its WAL): the median
wall time per call, the kernel and user CPU per call, and the voluntary context switches per call
(each one a wait for the device). DIR defaults to the system's temporary directory, where the
appservice benchmarks keep their databases.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time

from _machine import machine

SIZES = (4096, 16384, 32768, 65536)
SLOT = max(SIZES)


def measure(directory: str, size: int, count: int) -> tuple[float, float, float, float]:
    """Median µs per write+fdatasync, kernel and user CPU µs per call, context switches per call."""
    fd, path = tempfile.mkstemp(dir=directory, prefix="fsync-floor-")
    try:
        os.write(fd, b"\0" * (SLOT * count))
        os.fsync(fd)
        data = b"x" * size
        took: list[float] = []
        before = resource.getrusage(resource.RUSAGE_SELF)
        for i in range(count):
            started = time.perf_counter_ns()
            os.pwrite(fd, data, i * SLOT)
            os.fdatasync(fd)
            took.append((time.perf_counter_ns() - started) / 1000)
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        os.close(fd)
        os.unlink(path)
    return (
        statistics.median(took),
        (after.ru_stime - before.ru_stime) / count * 1e6,
        (after.ru_utime - before.ru_utime) / count * 1e6,
        (after.ru_nvcsw - before.ru_nvcsw) / count,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    print(f"# {machine()}; directory {args.dir}; {args.count} calls per size")
    print(f"{'bytes':>8} {'median us':>10} {'kernel us':>10} {'user us':>8} {'waits':>6}")
    for size in SIZES:
        median, kernel, user, waits = measure(args.dir, size, args.count)
        print(f"{size:>8} {median:>10.1f} {kernel:>10.1f} {user:>8.1f} {waits:>6.2f}")


if __name__ == "__main__":
    main()
