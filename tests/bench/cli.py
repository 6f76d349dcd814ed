"""Start-up of CLI commands (the issue's target: under 0.3 s for --help and queries), each the median wall time
of RUNS runs against a `maxwell dev` subprocess, after one warm-up run. Python caches bytecode as it does by
default (this sandbox sets PYTHONDONTWRITEBYTECODE, which would compile every module at every start).
Baseline: the bare interpreter (`python -c pass`), same run."""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers import ALICE, MAXWELL, init_funded_home, start_dev_chain, stop_dev_chain

RUNS = 9
TARGET_S = 0.3


ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def measure(command: list[str]) -> float:
    subprocess.run(command, check=True, capture_output=True, env=ENV)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=ENV)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> list[tuple[str, str, str, str]]:
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        init_funded_home(home, chain_id="maxwell-bench-cli-1")
        process, url = start_dev_chain(home, "1s")
        try:
            baseline = measure([sys.executable, "-c", "pass"])
            commands = {
                "maxwell --help": ["--help"],
                "maxwell tx send --help": ["tx", "send", "--help"],
                "maxwell status": ["status", "--node", url],
                "maxwell query balances ADDRESS": ["query", "balances", ALICE, "--node", url],
                "maxwell market providers": ["market", "providers", "--node", url],
            }
            rows = []
            for name, args in commands.items():
                seconds = measure([str(MAXWELL), *args])
                rows.append((f"{name} (target < {TARGET_S} s: {'met' if seconds < TARGET_S else 'NOT met'})",
                             f"{seconds * 1000:.0f} ms", f"{baseline * 1000:.0f} ms python", f"{seconds / baseline:.1f}"))
            return rows
        finally:
            stop_dev_chain(process)


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
