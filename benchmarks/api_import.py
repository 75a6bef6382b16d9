"""How long `from carbon_pipe import track, plan, wait_for_window` and `carbon-pipe --help` take, each in fresh
processes (the process is the unit of variance): the API's import must stay well under 0.3 s and bring no torch.

    python benchmarks/api_import.py --runs 10
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

API = "import sys; from carbon_pipe import track, plan, wait_for_window; sys.exit('torch' in sys.modules)"


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    baseline = [timed([sys.executable, "-c", "pass"]) for _ in range(args.runs)]
    cases = {
        "python -c 'from carbon_pipe import track, plan, wait_for_window'": [sys.executable, "-c", API],
        "carbon-pipe --help": [sys.executable, "-m", "carbon_pipe.cli", "--help"],
    }
    print(f"{args.runs} fresh processes each; the interpreter alone: {statistics.mean(baseline):.3f} s "
          f"+- {statistics.stdev(baseline):.3f}")
    for name, command in cases.items():
        samples = [timed(command) - statistics.mean(baseline) for _ in range(args.runs)]
        print(f"{name}: {statistics.mean(samples):.3f} s +- {statistics.stdev(samples):.3f} beyond the interpreter "
              f"(min {min(samples):.3f}, max {max(samples):.3f})")


if __name__ == "__main__":
    main()
