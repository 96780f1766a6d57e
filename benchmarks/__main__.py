"""Run every ``benchmarks/bench_*.py`` module's ``main()`` in turn (``make bench``).

Each module is imported and its ``main([])`` called with its defaults; the exit code is the worst of theirs.
Run one alone with ``python -m benchmarks.bench_<name> [options]``.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path


def main() -> int:
    names = sorted(p.stem for p in Path(__file__).resolve().parent.glob("bench_*.py"))
    worst = 0
    for name in names:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        start = time.perf_counter()
        try:
            code = importlib.import_module(f"benchmarks.{name}").main([])
        except Exception:  # one broken benchmark must not hide the others
            traceback.print_exc()
            code = 1
        print(f"=== benchmarks.{name}: exit {code} after {time.perf_counter() - start:.1f} s ===", flush=True)
        worst = max(worst, int(code or 0))
    return worst


if __name__ == "__main__":
    sys.exit(main())
