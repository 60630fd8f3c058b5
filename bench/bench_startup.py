"""Benchmark 4: start-up time of the command line.

Run: ``.venv/bin/python bench/bench_startup.py`` (``--runs N``, default 15;
``--importtime`` also prints the 15 most expensive imports of ``--help`` and
``plugins`` from ``python -X importtime``).

Printed: the median wall time of ``ledgerlink --help``, ``ledgerlink plugins``
and ``python -c pass`` (each a fresh process, the venv's console script),
goal: ``--help`` under 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import benchkit

GOAL = 0.3


def timed(cmd: list[str], runs: int) -> list[float]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    subprocess.run(cmd, capture_output=True, env=env, check=True)  # warm the file cache and .pyc files
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, check=True)
        out.append(time.perf_counter() - started)
    return out


def import_costs(cmd: list[str], top: int = 15) -> list[tuple[int, str]]:
    result = subprocess.run([benchkit.python(), "-X", "importtime", *cmd], capture_output=True, text=True)
    rows = []
    for line in result.stderr.splitlines():
        # "import time:   self [us] | cumulative | imported package"
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|", 2)
        rows.append((int(cumulative), name.rstrip()))
    return sorted(rows, reverse=True)[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args(argv)
    benchkit.header(f"start-up: median of {args.runs} runs")
    ledgerlink = str(benchkit.VENV_BIN / "ledgerlink")
    python = benchkit.python()
    cases = [
        ("python -c pass", [python, "-c", "pass"]),
        ("ledgerlink --help", [ledgerlink, "--help"]),
        ("ledgerlink plugins", [ledgerlink, "plugins"]),
    ]
    medians = {}
    for label, cmd in cases:
        times = timed(cmd, args.runs)
        medians[label] = benchkit.median(times)
        print(f"   {label:<20} median {medians[label]:.3f} s  (min {min(times):.3f}, max {max(times):.3f})")
    help_time = medians["ledgerlink --help"]
    print(f"   --help goal < {GOAL} s: {'met' if help_time < GOAL else 'NOT met'} "
          f"({help_time - medians['python -c pass']:.3f} s above a bare interpreter)")
    if args.importtime:
        for label, cmd in (("--help", ["-m", "ledgerlink._cli", "--help"]), ("plugins", ["-m", "ledgerlink._cli", "plugins"])):
            print(f"   most expensive imports of {label} (cumulative, ms):")
            for cumulative, name in import_costs(cmd):
                print(f"     {cumulative / 1000:8.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
