"""What the harness changes inside a vault process it starts: data-blind noise, and (negative control) a leaky gate.

**Data-blind noise** (``blind``). Every noise source of the vault (each function of
``sandbox._private.vault.dp.mechanisms.__all__`` that draws noise) is replaced, in every module that imported
it, by a draw that ignores the true values: a generator seeded by the public arguments alone (vector length,
epsilon, delta, sensitivity; quantile and bounds). Both vaults of a pair then give the *same* DP values for the
same question, so everything computed from DP values (verdicts, statuses, suppression, the gate's outcome) must
be byte-identical too; any difference is a path from the rows to the analyst that bypasses the mechanisms. The
metadata of the noise (mechanism, scale, interval) still comes from the real function. The audit's bootstrap
generator, and that of a model's quality figures (``noise_sd``), are seeded the same way. diffprivlib's model
fits keep their own noise: their parameters are DP values that the harness compares by shape only.

**Leaky gate** (``leaky_gate``, the negative control): the analyst's disclosure verdict is taken from the exact
rules on the true counts again (with the numbers left out of the reasons), as the gate did before issue 10. The
harness must catch it.

Both are switched per request by files in a folder the harness names (``--flags DIR``: ``DIR/blind``,
``DIR/leaky-gate``), so one pair of vault processes serves every phase of the harness. A new noise function in
``mechanisms.__all__`` that is not listed here makes :func:`install_blind` fail, so the harness cannot silently
compare real noise.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Names in ``mechanisms.__all__`` that draw no noise.
_NOT_NOISE = frozenset(
    {"Noise", "no_privacy_leaks", "laplace_ci95", "geometric_ci95", "GRID_BITS", "grid_exponent"}
    | {"quantile_grid_exponent", "zcdp_rho"}  # the grid and the zCDP conversion: functions of public inputs only
)
_BLIND_SOURCES = ("noisy_vector", "dp_quantile")


_FLAGS = Path(".")


def _on(flag: str) -> bool:
    return (_FLAGS / flag).exists()


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def _rng(*parts: Any) -> np.random.Generator:
    return np.random.Generator(np.random.SFC64(_seed(*parts)))


def _import_vault() -> None:
    import sandbox._private.vault as vault

    for info in pkgutil.walk_packages(vault.__path__, vault.__name__ + "."):
        importlib.import_module(info.name)


def _replace_everywhere(original: Callable[..., Any], replacement: Callable[..., Any]) -> int:
    hits = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("sandbox") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is original:
                setattr(module, attr, replacement)
                hits += 1
    return hits


def install_blind() -> None:
    """Replace every noise source of the vault by a data-blind, seeded draw (see the module docstring)."""
    _import_vault()
    from sandbox._private.vault.dp import fairness_audit, mechanisms, quality

    unknown = sorted(set(mechanisms.__all__) - _NOT_NOISE - set(_BLIND_SOURCES))
    if unknown:
        raise RuntimeError(f"mechanisms exports {unknown}: add them to the harness's blind noise (tests/neighbours)")
    real_vector, real_quantile = mechanisms.noisy_vector, mechanisms.dp_quantile

    def blind_vector(true: Any, *, epsilon: float, delta: float, sensitivity: float, integer: bool) -> Any:
        if not _on("blind"):
            return real_vector(true, epsilon=epsilon, delta=delta, sensitivity=sensitivity, integer=integer)
        size = int(np.size(true))
        _, noise = real_vector(np.zeros(size), epsilon=epsilon, delta=delta, sensitivity=sensitivity, integer=integer)
        rng = _rng("vector", size, epsilon, delta, sensitivity, integer)
        values = rng.integers(-3, 41, size).astype(np.float64) if integer else rng.uniform(-25.0, 75.0, size)
        return values, noise

    def blind_quantile(values: Any, q: float, *, epsilon: float, bounds: tuple[float, float]) -> float:
        if not _on("blind"):
            return real_quantile(values, q, epsilon=epsilon, bounds=bounds)
        lo, hi = float(bounds[0]), float(bounds[1])
        return float(_rng("quantile", q, epsilon, lo, hi).uniform(lo, hi)) if hi > lo else lo

    for real, blind in ((real_vector, blind_vector), (real_quantile, blind_quantile)):
        if _replace_everywhere(real, blind) == 0:
            raise RuntimeError(f"{real.__name__} is used nowhere: the harness's blind noise is out of date")
    real_rng = fairness_audit._bootstrap_rng
    fairness_audit._bootstrap_rng = lambda: _rng("bootstrap") if _on("blind") else real_rng()
    real_quality_rng = quality._bootstrap_rng
    quality._bootstrap_rng = lambda: _rng("quality-bootstrap") if _on("blind") else real_quality_rng()


def leaky_check(real: Callable[..., Any]) -> Callable[..., Any]:
    """The gate's disclosure check of before issue 10: the verdict from the exact rules, numbers left out."""
    from sandbox._private.vault.gate import dp_sdc, findings

    def leaky(record: Any, test: Any, policy: Any, schema: Any) -> Any:
        seen = real(record, test, policy, schema)
        exact = findings.exact_findings(record, policy).sdc
        if seen is None or exact is None:
            return seen
        return dp_sdc.DPCheck(exact.verdict, exact.coarse_reasons, seen.basis, seen.test_id, seen.epsilon)

    return leaky


def install_leaky_gate() -> None:
    """Negative control: decide the analyst's disclosure verdict on the true counts while ``leaky-gate`` is on."""
    _import_vault()
    from sandbox._private.vault.gate import checks

    real = checks.dp_check
    leaky = leaky_check(real)
    checks.dp_check = lambda *a: leaky(*a) if _on("leaky-gate") else real(*a)  # type: ignore[assignment]


#: Environment variable that names the flag folder to the worker processes (:mod:`worker_patches`).
FLAGS_ENV = "SANDBOX_HARNESS_FLAGS"


def configure(flags: Path) -> None:
    """Read the switches from the files of ``flags`` (see the module docstring)."""
    global _FLAGS
    _FLAGS = flags


def install_in_workers() -> None:
    """Make the vault's fork server import :mod:`worker_patches`, so every worker process is patched too."""
    from sandbox._private.vault.workers import pool

    os.environ[FLAGS_ENV] = str(_FLAGS)
    # Python 3.11's fork server ignores the parent's sys.path (it takes it, but never sets it): name this folder
    # in the environment it inherits, or its import of worker_patches fails silently (ImportError is skipped).
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    pool._PRELOAD = [*pool._PRELOAD, "worker_patches"]


def main(argv: list[str]) -> None:
    """``launch.py --flags DIR -- <sandbox CLI arguments>``: install both patches, then run the CLI."""
    if len(argv) < 3 or argv[0] != "--flags" or argv[2] != "--":
        raise SystemExit("usage: launch.py --flags DIR -- vault serve ...")
    configure(Path(argv[1]))
    install_blind()
    install_leaky_gate()
    install_in_workers()
    from sandbox.cli import run

    sys.argv = ["sandbox", *argv[3:]]
    run()
