"""Benchmark: the national synthetic population on this machine, and a peer generator on the same table.

Run: ``.venv/bin/python -m benchmarks.bench_synth --households 8000000`` (options: ``--workers``, ``--seed``,
``--peer-rows``, ``--fit-rows``, ``--skip-peer``, ``--keep DIR``).

1. Ours: :func:`synthetic.write_population` of the whole population (households, persons, signals, ground
   truth, schemas, manifest with sha256s) to Parquet. Reports wall time, peak memory (the summed RSS of this
   process and all its descendants, sampled every 50 ms with psutil), and rows per second. Targets for 8.0 M
   households: <= 60 s wall and <= 4 GiB peak.
2. Peer: SDV's ``GaussianCopulaSynthesizer`` fitted on ``--fit-rows`` rows of OUR household table (without
   ``household_id``) and timed sampling ``--peer-rows`` rows, in memory. SDV needs pandas < 3, so it runs in its
   own virtualenv ``benchmarks/.envs/sdv``, created on first use (sdv is installed without its deep-learning
   extras ctgan/deepecho/torch, which GaussianCopulaSynthesizer does not import); ``.venv`` is never touched.
   Also a naive in-process peer: independent bootstrap of each column (numpy), the floor of any generator.
   Ratios are households per second, ours (the full national run, written to disk) over the peer's (sampling
   only, in memory), and ours in memory on ``--peer-rows`` households over the peer on the same count.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow.parquet as pq

import synthetic

ROOT = Path(__file__).resolve().parent
SDV_ENV = ROOT / ".envs" / "sdv"
SDV_PACKAGES = [
    ["sdv==2.0.0", "--no-deps"],
    [
        "pandas<3",
        "numpy",
        "scipy",
        "scikit-learn",
        "tqdm",
        "pyyaml",
        "faker",
        "cloudpickle",
        "platformdirs",
        "graphviz",
        "boto3",
        "rdt==2.0.0",
        "copulas==0.14.1",
        "sdmetrics==0.32.0",
        "plotly",
        "pyarrow",
    ],
]
GIB = 1024**3

_SDV_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from sdv.metadata import Metadata
from sdv.single_table import GaussianCopulaSynthesizer
df = pd.read_parquet(sys.argv[1])
for c in df.columns:
    if isinstance(df[c].dtype, pd.CategoricalDtype):
        df[c] = df[c].astype(str)
md = Metadata.detect_from_dataframes(data={"households": df}, infer_keys=None)
syn = GaussianCopulaSynthesizer(md)
t0 = time.perf_counter(); syn.fit({"households": df}); fit = time.perf_counter() - t0
n = int(sys.argv[2])
t0 = time.perf_counter(); out = syn.sample(num_rows=n); sample = time.perf_counter() - t0
out = out["households"] if isinstance(out, dict) else out
print(json.dumps({"fit_s": fit, "sample_s": sample, "rows": len(out), "columns": out.shape[1]}))
"""


class PeakRSS:
    """Samples the summed RSS of this process and all its descendants in a background thread."""

    def __init__(self, interval: float = 0.05) -> None:
        self.peak = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):  # a worker may exit between listing and reading
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds() -> tuple[float, float]:
    """User + system CPU seconds of this process, and of its waited-for children (the pool's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def run_ours(n: int, seed: int, workers: int, out: Path) -> dict[str, float]:
    with PeakRSS() as mem:
        cpu0 = _cpu_seconds()
        start = time.perf_counter()
        synthetic.write_population(out, n, seed=seed, workers=workers, progress=True)
        wall = time.perf_counter() - start
        cpu1 = _cpu_seconds()
    rows = json.loads((out / "manifest.json").read_text())["rows"]
    total = rows["households"] + rows["persons"] + rows["signals"]
    return {
        "wall_s": wall,
        "peak_gib": mem.peak / GIB,
        "main_cpu_s": cpu1[0] - cpu0[0],
        "worker_cpu_s": cpu1[1] - cpu0[1],
        "households": rows["households"],
        "persons": rows["persons"],
        "signals": rows["signals"],
        "rows_per_s": total / wall,
        "households_per_s": rows["households"] / wall,
    }


def ensure_sdv_env() -> Path | None:
    """The SDV virtualenv's python, created on first use; ``None`` (with the reason printed) if it fails."""
    python = SDV_ENV / "bin" / "python"
    if python.exists():
        return python
    try:
        base = shutil.which("python3.11") or "python3"
        subprocess.run([base, "-m", "venv", str(SDV_ENV)], check=True)
        for pkgs in SDV_PACKAGES:
            subprocess.run([str(SDV_ENV / "bin" / "pip"), "install", "-q", *pkgs], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"SDV peer unavailable: could not create {SDV_ENV} ({exc}); only the naive peer runs.")
        shutil.rmtree(SDV_ENV, ignore_errors=True)
        return None
    return python


def run_sdv(fit_table: Path, rows: int) -> dict[str, float] | None:
    python = ensure_sdv_env()
    if python is None:
        return None
    proc = subprocess.run([str(python), "-c", _SDV_SCRIPT, str(fit_table), str(rows)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"SDV peer failed:\n{proc.stderr[-2000:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_naive(fit: pd.DataFrame, rows: int, seed: int) -> float:
    """Seconds to sample ``rows`` rows by bootstrapping each column independently (numpy)."""
    rng = np.random.Generator(np.random.SFC64(seed))
    start = time.perf_counter()
    out = {c: fit[c].to_numpy()[rng.integers(0, len(fit), rows)] for c in fit.columns}
    pd.DataFrame(out)
    return time.perf_counter() - start


def run_ours_in_memory(rows: int, seed: int, workers: int) -> float:
    synthetic.generate_population(1_000, seed=seed)  # warm the calibration cache, as the peer fits first
    start = time.perf_counter()
    synthetic.generate_population(rows, seed=seed, workers=workers)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=8_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--peer-rows", type=int, default=200_000)
    parser.add_argument("--fit-rows", type=int, default=20_000)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="keep the population in this directory")
    args = parser.parse_args(argv)
    print(
        f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / GIB:.1f} GiB; "
        f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every figure)"
    )
    work = Path(tempfile.mkdtemp(prefix="bench_synth-"))
    try:
        out = args.keep or work / "population"
        ours = run_ours(args.households, args.seed, args.workers, out)
        print(
            f"ours: {ours['households']:,} households, {ours['persons']:,} persons, {ours['signals']:,} signals "
            f"in {ours['wall_s']:.1f} s wall, peak {ours['peak_gib']:.2f} GiB; {ours['rows_per_s']:,.0f} rows/s "
            f"({ours['households_per_s']:,.0f} households/s)"
        )
        print(
            f"CPU: {ours['main_cpu_s']:.1f} s in the writer (main process), {ours['worker_cpu_s']:.1f} s in the "
            f"generator workers; on {args.workers} otherwise idle cores the wall time cannot be below "
            f"{max(ours['main_cpu_s'], (ours['main_cpu_s'] + ours['worker_cpu_s']) / args.workers):.1f} s"
        )
        ok = ours["wall_s"] <= 60 and ours["peak_gib"] <= 4
        if args.households >= 8_000_000:
            print(f"target (<= 60 s, <= 4 GiB at 8.0 M households): {'met' if ok else 'MISSED'}")
        if not args.skip_peer:
            compare_peers(out, work, args, ours)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok or args.households < 8_000_000 else 1


def compare_peers(out: Path, work: Path, args: argparse.Namespace, ours: dict[str, float]) -> None:
    fit = pq.read_table(out / "households.parquet").slice(0, args.fit_rows).to_pandas().drop(columns="household_id")
    fit_path = work / "fit.parquet"
    fit.to_parquet(fit_path)
    mine = run_ours_in_memory(args.peer_rows, args.seed, args.workers)
    mine_rate = args.peer_rows / mine
    print(
        f"ours in memory: {args.peer_rows:,} households (+ persons, signals) in {mine:.2f} s "
        f"= {mine_rate:,.0f} households/s"
    )
    naive = args.peer_rows / run_naive(fit, args.peer_rows, args.seed)
    print(
        f"naive peer (independent column bootstrap, numpy): {naive:,.0f} households/s; "
        f"ratio ours/naive = {ours['households_per_s'] / naive:.3f} (national, to disk), "
        f"{mine_rate / naive:.3f} (in memory)"
    )
    sdv = run_sdv(fit_path, args.peer_rows)
    if sdv is not None:
        rate = sdv["rows"] / sdv["sample_s"]
        print(
            f"SDV GaussianCopulaSynthesizer: fit on {args.fit_rows:,} rows in {sdv['fit_s']:.1f} s; sampled "
            f"{sdv['rows']:,} rows x {sdv['columns']} columns in {sdv['sample_s']:.2f} s = {rate:,.0f} rows/s"
        )
        print(
            f"ratio ours/SDV (households per second): {ours['households_per_s'] / rate:.2f}x national run to "
            f"disk vs SDV sampling in memory; {mine_rate / rate:.2f}x both in memory on {args.peer_rows:,} rows"
        )


if __name__ == "__main__":
    sys.exit(main())
