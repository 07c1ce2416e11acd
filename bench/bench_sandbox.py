"""Sandbox throughput: calls/s of `Sandbox.run` (one caller) and `Sandbox.map` (parallel), next to
two references measured in the same process: calling the tool in-process (no isolation, the upper
bound) and starting a fresh Python process per call (what the warm workers avoid).

    python bench/bench_sandbox.py [--calls 600] [--workers 2]

Target (issue #4): >= 100 calls/s on 2 cores for ordinary tools.
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tasks.toolbox import TOOLS  # noqa: E402
from tl.calls import Call  # noqa: E402
from tl.sandbox import Sandbox, run_in_process  # noqa: E402

CALLS = [
    Call("get_weather_current", {"city": "Paris"}),
    Call("convert_currency", {"amount": 250, "from_currency": "USD", "to_currency": "JPY"}),
    Call("get_weekday", {"date": "2025-03-14"}),
    Call("calculate", {"expression": "(17 + 25) * 3 / 7"}),
]


def rate(fn, n: int) -> float:
    """Calls per second of `fn(n)`, which makes n calls."""
    t = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=600)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    calls = [CALLS[i % len(CALLS)] for i in range(args.calls)]

    in_process = rate(lambda n: [run_in_process(TOOLS, c) for c in calls[:n]], args.calls)
    fresh_code = (
        f"import sys; sys.path.insert(0, {os.getcwd()!r}); from tasks.toolbox import TOOLS; "
        "print(TOOLS['get_weekday'].fn('2025-03-14'))"
    )

    def fresh_processes(n):
        for _ in range(n):
            subprocess.run([sys.executable, "-c", fresh_code], check=True, capture_output=True)

    fresh = rate(fresh_processes, 10)  # slow: 10 calls are enough

    t = time.perf_counter()
    box = Sandbox(TOOLS, workers=args.workers)
    startup = time.perf_counter() - t
    box.map(calls[:20])  # warm-up
    sequential = rate(lambda n: [box.run(c) for c in calls[:n]], args.calls)
    parallel = rate(lambda n: box.map(calls[:n]), args.calls)
    assert all(r.ok for r in box.map(calls[:8]))
    isolation = box.isolation
    box.close()

    print(f"machine: {os.cpu_count()} CPU cores; isolation applied: {isolation}")
    print(f"sandbox start-up ({args.workers} workers): {startup * 1000:.0f} ms")
    print(f"{'mode':<34}{'calls/s':>10}{'x fresh process':>18}")
    rows = [
        ("in-process (no isolation)", in_process),
        ("fresh python process per call", fresh),
        ("Sandbox.run, 1 caller", sequential),
        (f"Sandbox.map, {args.workers} workers", parallel),
    ]
    for name, calls_per_s in rows:
        print(f"{name:<34}{calls_per_s:>10.0f}{calls_per_s / fresh:>18.1f}")
    print(f"target >= 100 calls/s: {'met' if max(sequential, parallel) >= 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
