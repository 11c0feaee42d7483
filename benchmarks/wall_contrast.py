"""Wall-clock contrasts: more work measures slower, side by side in one run.

Pairs whose work differs by a known factor, measured by the `wall` backend in one call each
(interleaved repeats), `--rounds` times:
- Python: sum of squares over 300,000 against 10,000 numbers (30x the work);
- C++: primes up to n by trial division against a sieve, n = 200,000 and 1,000,000 (the binary
  runs through its Python wrapper, so its start-up, ~10 ms, is inside each timed call).

Prints each round's ratio (slow / fast), then per pair the median and the range over rounds, and
the load average: the margin behind the unit tests' contrasts (tests/test_timing.py: 30x the work
measures > 5x; tests/test_optimization_cpp.py: trial division > 5x the sieve at 1,000,000). At
200,000 the C++ contrast is mostly start-up: a unit test asserting > 3x there failed CI at 1.70x.

    python benchmarks/wall_contrast.py [--rounds 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfrepro.config import TimingConfig  # noqa: E402
from perfrepro.execution.compile import cpp_program  # noqa: E402
from perfrepro.execution.harness import build_program  # noqa: E402
from perfrepro.records import Task  # noqa: E402
from perfrepro.timing.base import make_backend  # noqa: E402

SUM_OF_SQUARES = Task(
    id="sum-of-squares", statement="", starter_code="", examples="", source="benchmarks/wall_contrast.py",
    canonical_solution="class Solution:\n    def f(self, n):\n        return sum(i * i for i in range({n}))\n",
    test_code="def check(candidate):\n    assert candidate(0) >= 0\n", entry_point="Solution().f",
)
PRIMES_COUNTS = {200_000: 17984, 1_000_000: 78498}
FIXTURES = ROOT / "tests" / "fixtures"  # the C++ programs of tests/test_optimization_cpp.py
PRIMES_TRIAL_DIVISION = (FIXTURES / "primes_trial_division.cpp").read_text()
PRIMES_SIEVE = (FIXTURES / "primes_sieve.cpp").read_text()


def pairs() -> dict[str, tuple]:
    def squares(role: str, n: int):
        return build_program(SUM_OF_SQUARES, SUM_OF_SQUARES.canonical_solution.format(n=n), role=role)

    def primes(n: int):
        tests = [(f"{n}\n", f"{PRIMES_COUNTS[n]}\n")]
        return (cpp_program("t", "slow", PRIMES_TRIAL_DIVISION, tests), cpp_program("t", "reference", PRIMES_SIEVE, tests))

    return {"python_sum_of_squares_30x": (squares("completion", 300_000), squares("canonical", 10_000)),
            **{f"cpp_trial_division_vs_sieve_{n}": primes(n) for n in PRIMES_COUNTS}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="wall: processes per Measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "wall_contrast.json")
    args = parser.parse_args(argv)
    config = TimingConfig(backend="wall", repeats=args.repeats, min_sample_ms=20.0, timeout_s=20.0,
                          memory_limit_mb=1024, rss_interval_ms=1.0)
    backend = make_backend(config)
    load_before = os.getloadavg()
    results = {}
    for name, (slow, fast) in pairs().items():
        ratios = []
        for round_ in range(args.rounds):
            slow_m, fast_m = backend.measure([slow, fast])
            if not (slow_m.passed and fast_m.passed):
                raise SystemExit(f"{name}: {slow_m.status} / {fast_m.status}: {slow_m.error or fast_m.error}")
            ratios.append(slow_m.execution_time / fast_m.execution_time)
            print(f"{name} round {round_}: {slow_m.execution_time:.3f} / {fast_m.execution_time:.3f} ms "
                  f"= {ratios[-1]:.2f}x", flush=True)
        results[name] = {"ratios": ratios, "median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
        print(f"{name}: median {results[name]['median']:.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x")
    summary = {"rounds": args.rounds, "repeats": args.repeats, "load_before": load_before,
               "load_after": os.getloadavg(), "pairs": results}
    print(f"load average before {load_before[0]:.2f}, after {summary['load_after'][0]:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
