"""The one canonical JSON: its text equals the rule's reference form, and the form is stable.

The reference below is the rule written out the slow, obvious way (round trip through JSON, then null every
non-finite float, then encode with sorted keys); :func:`canonical_json` must give the same text for every value,
including non-finite floats, numpy values, tuples, sets and non-text keys.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.random import SFC64, Generator, SeedSequence

from sandbox._private.shared import canonical
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


_TEXTS = ["a", "é", "\u2603", "", "z\n", "\ud800", "\U0001f600", '\x00\x1f\\"', "Ω≈ç", "10", "9"]


def _wide(rng: Generator, depth: int, finite: bool) -> object:
    """A value for the one-pass path: mostly text keys and finite floats, numpy values of many kinds, odd texts."""
    pick = int(rng.integers(0, 17 if depth < 4 else 10))
    if pick == 0:
        floats = [0.1, -0.0, 1e300, 5e-324, 2.5, 1 / 3, 1e16, 123456789.125]
        return float(rng.choice(floats if finite or rng.random() < 0.9 else [math.nan, math.inf, -math.inf]))
    if pick == 1:
        return int(rng.choice([0, -1, 2**53 + 1, -(2**70), 10**30]))
    if pick == 2:
        return str(rng.choice(_TEXTS))
    if pick == 3:
        return [None, True, False][int(rng.integers(0, 3))]
    if pick == 4:
        return np.float64(rng.choice([0.25, 1e-7, -3.5]))
    if pick == 5:
        return [np.int64(7), np.int32(-3), np.uint8(200), np.bool_(True), np.float32(0.1), np.str_("np")][
            int(rng.integers(0, 6))
        ]
    if pick == 6:
        return np.arange(int(rng.integers(0, 7)), dtype=np.float64).reshape(-1, 1) / 4
    if pick == 7:
        return {int(rng.integers(0, 3)), "s"} if rng.random() < 0.5 else frozenset({1.5, 2.5})
    if pick == 8:
        return np.array([[1, 2], [3, 4]], dtype=np.int16)
    if pick == 9:
        return np.bool_(False)
    if pick in (10, 11):
        return [_wide(rng, depth + 1, finite) for _ in range(int(rng.integers(0, 4)))]
    if pick == 12:
        return tuple(_wide(rng, depth + 1, finite) for _ in range(int(rng.integers(0, 3))))
    if pick in (13, 14):  # text keys (the one-pass path)
        cls: Any = OrderedDict if rng.random() < 0.2 else dict
        return cls((str(rng.choice(_TEXTS)), _wide(rng, depth + 1, finite)) for _ in range(3))
    if pick == 15:  # keys that are not text, deep inside: the round trip's rule (text keys, merged, sorted as text)
        keys: list[Any] = [1, "1", True, None, 2.5, math.nan, -math.inf, 10, 9, np.str_("k"), "k", False, 0]
        return {keys[int(i)]: _wide(rng, depth + 1, finite) for i in rng.integers(0, len(keys), size=3)}
    return np.array([{"a": 1, 2: "b"}, None], dtype=object)  # a numpy array of objects, dict with an int key


def test_the_one_pass_path_equals_the_reference_on_wide_random_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Numpy scalars and arrays, sets, odd texts (surrogates, controls, astral), big ints, dict subclasses, and
    keys of every kind nested anywhere: the same text as the reference, on both paths (each taken often)."""
    slow = [0]
    reference = canonical._reference_json

    def counted(obj: object) -> str:
        slow[0] += 1
        return reference(obj)

    monkeypatch.setattr(canonical, "_reference_json", counted)
    rng = Generator(SFC64(SeedSequence(13)))
    values = [_wide(rng, 0, finite=bool(rng.random() < 0.7)) for _ in range(6000)]
    for v in values:
        assert canonical_json(v) == _reference(v)
    assert 1000 < slow[0] < len(values) - 1000  # both paths ran many times


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.floats(allow_nan=False, width=32).map(np.float32)
    | st.integers(-(2**63), 2**63 - 1).map(np.int64)
    | st.floats().map(np.float64)
    | st.booleans().map(np.bool_)
)
_keys = st.text() | st.integers(-20, 20) | st.booleans() | st.none() | st.floats()
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        | st.dictionaries(_keys, inner, max_size=3)
        | st.lists(st.floats(), max_size=4).map(np.array)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_equals_the_reference_on_generated_values(value: object) -> None:
    assert canonical_json(value) == _reference(value)


def test_errors_are_the_references() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        canonical_json({"a": loop})
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        canonical_json({"a": [1.0, {"b": object()}]})
    with pytest.raises(TypeError, match="keys must be"):
        canonical_json({"a": {(1, 2): 3}})


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
