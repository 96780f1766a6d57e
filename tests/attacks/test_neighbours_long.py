"""The neighbouring-dataset harness, long case (``make attack``): 2000 households, 39 bin counts, 600 repetitions.

The small case runs in ``make test`` (``tests/neighbours/test_neighbours.py``); see ``tests/neighbours/harness.py``
for what the battery does and what is compared.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from neighbours.harness import LONG, battery, compare, repeated, start_pair

from ._attack_stats import epsilon_lower_bound

CONFIDENCE = 0.9999


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.system
@pytest.mark.attack("neighbouring datasets", defence="the analyst channel: public or DP only (invariant 10)")
def test_neighbouring_datasets_long(tmp_path: Path, attack_figure: Callable[[str], None]) -> None:
    with start_pair(tmp_path, LONG) as pair:
        with ThreadPoolExecutor(2) as pool:
            a, b = pool.submit(battery, pair.d, LONG), pool.submit(battery, pair.d1, LONG)
            on_d, on_d1 = a.result(), b.result()
        differences = compare(on_d, on_d1)
        pair.mode(blind=True, leaky_gate=True)
        with ThreadPoolExecutor(2) as pool:
            a, b = (pool.submit(battery, v, LONG, gate_only=True, analyst="lea") for v in (pair.d, pair.d1))
            leaky = compare(a.result(), b.result())
        samples = repeated(pair, LONG)
    bounds = {r.name: (epsilon_lower_bound(r.on_d, r.on_d1).at_confidence(CONFIDENCE), r.epsilon) for r in samples}
    steps = sum(o.role == "analyst" for o in on_d)
    attack_figure(
        f"{steps} analyst steps byte-identical: {not differences}; leaky gate caught at {len(leaky)} steps; ε lower "
        "bounds (99.99%) vs charged: " + ", ".join(f"{n} {lb:.3f}/{eps:g}" for n, (lb, eps) in bounds.items())
    )
    assert not differences, "\n".join(map(str, differences[:8]))
    assert leaky, "the negative control (a gate answering from the true counts) was not caught"
    for name, (lb, eps) in bounds.items():
        assert lb <= eps, f"{name}: ε ≥ {lb:.3f} at {CONFIDENCE:.2%}, charged {eps}"
