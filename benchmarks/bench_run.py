"""Overhead of ``sandbox run`` over plain papermill on the same notebook (target: at most 1.5 s extra).

Both sides run the same parameterised notebook with the same kernel, alternating, ``--repeats`` times each:

- CLI: ``sandbox run NB -p ...`` versus ``papermill NB OUT -p ...``, each a fresh process (what a user types);
- library: :func:`sandbox.run_study` versus :func:`papermill.execute_notebook` in this process.

The extra work of ``sandbox run`` is parameter checking, hashing, the git lookup, package versions, the run
record and scrubbing the output. Medians of wall time and of CPU time (this process and its children, kernel
included; steadier than wall time on a shared machine) are printed with their difference and ratio.

Run: ``.venv/bin/python -m benchmarks.bench_run [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

TARGET_EXTRA_S = 1.5
BIN = Path(sys.executable).parent


def _notebook(path: Path) -> Path:
    nb = new_notebook()
    params = new_code_cell('epsilon = 1.0\nlabel = "x"\nn = 1000\n')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        new_code_cell("import numpy as np\nrng = np.random.default_rng(0)\nx = rng.normal(size=n)"),
        new_code_cell("print(label, round(float(x.mean()), 3))"),
        new_code_cell("import pandas as pd\npd.DataFrame({'x': x[:5]})"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process and its waited-for children: the CLI, the kernel)."""
    start, cpu = time.perf_counter(), _cpu()
    fn()
    return time.perf_counter() - start, _cpu() - cpu


def _cli_pair(nb: Path, work: Path) -> tuple[Callable[[], object], Callable[[], object]]:
    def sandbox_cli() -> object:
        cmd = [str(BIN / "sandbox"), "run", str(nb), "-p", "label", "007", "-p", "n", "500", "--no-progress"]
        return subprocess.run([*cmd, "--workspace", str(work / "ws")], check=True, capture_output=True)

    def papermill_cli() -> object:
        cmd = [str(BIN / "papermill"), str(nb), str(work / "out.ipynb"), "-p", "label", "007", "-p", "n", "500"]
        return subprocess.run([*cmd, "--no-progress-bar"], check=True, capture_output=True)

    return sandbox_cli, papermill_cli


def _lib_pair(nb: Path, work: Path) -> tuple[Callable[[], object], Callable[[], object]]:
    import papermill

    from sandbox import run_study

    def sandbox_lib() -> object:
        return run_study(nb, {"label": "007", "n": 500}, workspace=work / "ws", progress=False)

    def papermill_lib() -> object:
        return papermill.execute_notebook(
            str(nb), str(work / "out.ipynb"), parameters={"label": "007", "n": 500}, progress_bar=False
        )

    return sandbox_lib, papermill_lib


def _compare(name: str, ours: Callable[[], object], peer: Callable[[], object], repeats: int) -> float:
    ours(), peer()  # warm-up: kernelspec lookup, file-system caches
    t_ours, t_peer = [], []
    for _ in range(repeats):
        t_ours.append(_time(ours))
        t_peer.append(_time(peer))
    extras = {}
    for i, kind in enumerate(("wall", "CPU")):
        m_ours = statistics.median(t[i] for t in t_ours)
        m_peer = statistics.median(t[i] for t in t_peer)
        extras[kind] = m_ours - m_peer
        verdict = "ok" if extras[kind] <= TARGET_EXTRA_S else "OVER TARGET"
        print(
            f"{name:8s} {kind:4s} sandbox run {m_ours:6.2f} s   papermill {m_peer:6.2f} s   "
            f"extra {extras[kind]:+.2f} s (target <= {TARGET_EXTRA_S} s: {verdict})   ratio {m_ours / m_peer:.2f}"
        )
    return extras["wall"]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print medians; exit 1 when the CLI overhead is over the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        nb = _notebook(work / "bench.ipynb")
        print(f"notebook: 4 cells, {args.repeats} runs each side, medians")
        extra_lib = _compare("library", *_lib_pair(nb, work), args.repeats)
        extra_cli = _compare("CLI", *_cli_pair(nb, work), args.repeats)
    return 0 if max(extra_cli, extra_lib) <= TARGET_EXTRA_S else 1


if __name__ == "__main__":
    sys.exit(main())
