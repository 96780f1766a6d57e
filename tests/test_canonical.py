"""The one canonical JSON: its text equals the rule's reference form, and the form is stable.

The reference below is the rule written out the slow, obvious way (round trip through JSON, then null every
non-finite float, then encode with sorted keys); :func:`canonical_json` must give the same text for every value,
including non-finite floats, numpy values, tuples, sets and non-text keys.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from numpy.random import SFC64, Generator, SeedSequence

from sandbox._private.shared.canonical import canonical_join, canonical_json


def _reference(obj: object) -> str:
    def plain(o: object) -> object:
        if hasattr(o, "tolist"):
            return o.tolist()
        if isinstance(o, set | frozenset | tuple):
            return list(o)
        raise TypeError(type(o).__name__)

    def finite(o: object) -> object:
        if isinstance(o, float):
            return o if math.isfinite(o) else None
        if isinstance(o, dict):
            return {str(k): finite(v) for k, v in o.items()}
        if isinstance(o, list):
            return [finite(v) for v in o]
        return o

    text = json.dumps(obj, default=plain, allow_nan=True)
    return json.dumps(finite(json.loads(text)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _value(rng: Generator, depth: int) -> object:
    pick = int(rng.integers(0, 12 if depth < 3 else 7))
    if pick == 0:
        return float(rng.choice([0.1, -0.0, 1e300, math.nan, math.inf, -math.inf, 2.5]))
    if pick == 1:
        return int(rng.integers(-(10**6), 10**6))
    if pick == 2:
        return str(rng.choice(["a", "é", "\u2603", "", "z\n"]))
    if pick == 3:
        return None if rng.random() < 0.5 else bool(rng.random() < 0.5)
    if pick == 4:
        return np.float64(rng.choice([0.25, math.nan]))
    if pick == 5:
        return np.int64(rng.integers(0, 100))
    if pick == 6:
        return np.array([1.5, math.nan, 3.0])[: int(rng.integers(0, 4))]
    if pick == 7:
        return [_value(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))]
    if pick == 8:
        return tuple(_value(rng, depth + 1) for _ in range(int(rng.integers(0, 3))))
    if pick == 9:  # text keys
        return {str(rng.choice(["b", "a", "c", "ä", "10", "9"])): _value(rng, depth + 1) for _ in range(3)}
    if pick == 10:  # numeric keys: sorted as text after the round trip ("10" before "9")
        return {int(k): _value(rng, depth + 1) for k in rng.integers(0, 20, size=3)}
    return {float(k): _value(rng, depth + 1) for k in rng.choice([0.5, 10.0, 9.0], size=2)}


def test_equals_the_reference_on_random_values() -> None:
    rng = Generator(SFC64(SeedSequence(11)))
    values = [_value(rng, 0) for _ in range(3000)]
    nonfinite = sum(
        "NaN" in json.dumps(v, default=lambda o: o.tolist() if hasattr(o, "tolist") else list(o)) for v in values
    )
    assert nonfinite > 100  # the slow path (a non-finite float somewhere) is exercised too
    for v in values:
        assert canonical_json(v) == _reference(v)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"b": 1, "a": [1.0, math.nan]}, '{"a":[1.0,null],"b":1}'),
        ({10: "x", 9: "y"}, '{"10":"x","9":"y"}'),
        ({"k": (1, 2)}, '{"k":[1,2]}'),
        ({"k": np.array([0.5, np.inf])}, '{"k":[0.5,null]}'),
        ("é", '"é"'),
    ],
)
def test_known_forms(value: object, text: str) -> None:
    assert canonical_json(value) == text


def test_stable_and_refuses_objects() -> None:
    v = {"x": [math.nan, {"y": np.float32(0.5)}], "a": {3: (1, 2)}}
    once = canonical_json(v)
    assert canonical_json(json.loads(once)) == once
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        canonical_json({"a": object()})


def test_join_equals_encoding_the_whole() -> None:
    rng = Generator(SFC64(SeedSequence(12)))
    for _ in range(500):
        fields = {k: _value(rng, 2) for k in ("id", "b", "zeta", "é")[: int(rng.integers(0, 5))]}
        inner = {k: _value(rng, 1) for k in ("values", "query", "a", "ü")[: int(rng.integers(1, 5))]}
        encoded = {k: canonical_json(v) for k, v in inner.items() if k not in fields}
        whole = {**fields, **{k: json.loads(t) for k, t in encoded.items()}}
        assert canonical_join(fields, encoded) == canonical_json(whole)
    # a key in both: the encoded member wins, as in the reference
    assert canonical_join({"a": 1}, {"a": "[2]"}) == '{"a":[2]}'
