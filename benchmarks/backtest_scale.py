"""Time and peak memory of `carbon-pipe backtest`, one policy per command, each command run several times.

    python benchmarks/backtest_scale.py [--repeats 3] [--cases five-minute-year,hourly-10k-jobs]

Cases (synthetic traces: a daily cycle, a slow wander and noise; written as CSV, read as a user's would be):
- five-minute-year: 105,120 points at 5 min, evenly spaced jobs (4 h, 24 h slack, one an hour: 8,760 jobs).
- hourly-10k-jobs: 8,760 hourly points and a jobs file of 10,000 varied jobs (1-24 h long, 0-72 h of slack or a
  next-workday deadline, a third interruptible), as `carbon-pipe workload` or a scheduler's log would give.
- ten-million-points: 10,000,000 points at 5 min (95 years), evenly spaced jobs (opt-in: slow to write and read).
Each command is the whole process (Python start, reading the files, the backtest); the peak resident memory is
that process's own (wait4). Figures: median and range over the repeats.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from carbon_pipe.backtest.policies import POLICIES  # every single-job policy, as `backtest` knows them

START = 1_577_836_800  # 2020-01-01T00:00Z


def write_trace(path: Path, points: int, step: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    hours = np.arange(points) * step / 3600
    wander = np.cumsum(rng.normal(0, 3, points))
    wander -= np.linspace(0, wander[-1], points)
    values = np.clip(300 + 80 * np.sin(2 * np.pi * hours / 24) + 0.3 * wander + rng.normal(0, 10, points), 1, None)
    times = (START + step * np.arange(points)).astype("datetime64[s]").astype(str)
    with open(path, "w") as handle:
        handle.write("timestamp,carbon_intensity\n")
        for block in range(0, points, 1_000_000):
            handle.writelines(
                f"{t}Z,{v:.2f}\n" for t, v in zip(times[block : block + 1_000_000], values[block : block + 1_000_000])
            )


def write_varied_jobs(path: Path, count: int, hours: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    duration = rng.integers(1, 25, count)
    slack = rng.integers(0, 73, count)
    arrival = np.sort(rng.integers(0, hours - 24 - 72 - 1, count))
    by_deadline = rng.random(count) < 0.5
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("id", "arrival", "duration", "deadline", "slack", "interruptible"))
        for j in range(count):
            stamp = lambda h: np.datetime64(START + 3600 * int(h), "s").astype(str) + "Z"  # noqa: E731
            deadline = stamp(arrival[j] + duration[j] + slack[j]) if by_deadline[j] else ""
            writer.writerow(
                (
                    j,
                    stamp(arrival[j]),
                    f"{duration[j]}h",
                    deadline,
                    "" if by_deadline[j] else f"{slack[j]}h",
                    str(j % 3 == 0).lower(),
                )
            )


def measure(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one command."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "carbon_pipe.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        sys.exit(f"backtest {' '.join(args)} failed: {process.stderr.read().decode().strip()}")
    return seconds, usage.ru_maxrss / 1024


def run_case(name: str, args: list[str], repeats: int) -> str:
    lines = [f"**{name}**", "", "| policy | seconds, median (range) | peak RSS MB, median (range) |", "|---|---|---|"]
    for policy in POLICIES:
        samples = [measure([*args, "--policy", policy, "--threshold", "300"]) for _ in range(repeats)]
        seconds, memory = zip(*samples)
        lines.append(
            f"| {policy} | {statistics.median(seconds):.2f} ({min(seconds):.2f}-{max(seconds):.2f}) | "
            f"{statistics.median(memory):.0f} ({min(memory):.0f}-{max(memory):.0f}) |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="five-minute-year,hourly-10k-jobs")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="backtest-scale-") as scratch:
        folder = Path(scratch)
        for case in options.cases.split(","):
            trace = folder / f"{case}.csv"
            if case == "five-minute-year":
                write_trace(trace, 105_120, 300.0)
                args = ["backtest", "--trace", str(trace)]
            elif case == "hourly-10k-jobs":
                write_trace(trace, 8_760, 3600.0)
                write_varied_jobs(folder / "jobs.csv", 10_000, 8_760)
                args = ["backtest", "--trace", str(trace), "--jobs", str(folder / "jobs.csv")]
            elif case == "ten-million-points":
                write_trace(trace, 10_000_000, 300.0)
                args = ["backtest", "--trace", str(trace)]
            else:
                sys.exit(f"unknown case {case!r}")
            print(run_case(case, args, options.repeats), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
