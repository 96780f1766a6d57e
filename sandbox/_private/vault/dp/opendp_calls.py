"""Lean calls into OpenDP 0.16 for the engine's integer samplers: the same library functions, less Python around them.

:func:`~.mechanisms.noisy_vector` builds a discrete Laplace or Gaussian measurement on ``i64`` vectors for every new
epsilon, checks OpenDP's privacy map of it and invokes it once on a zero vector. Through OpenDP's Python wrappers,
each of those steps asks the library for type names, parses them, converts the arguments and unloads the results
generically; for a small answer that was most of the CPU the vault spent on it. Here:

- the input domain (``vector_domain(atom_domain(T="i64"))``) and the metrics (``l1_distance``, ``l2_distance`` on
  ``i64``) are built once per process; OpenDP's constructors copy them into each measurement;
- :func:`make_laplace`, :func:`make_gaussian`, :func:`privacy_map` and :func:`sample_zeros` call the library
  functions the wrappers call (``opendp_measurements__make_laplace`` / ``__make_gaussian`` with the wrappers'
  default ``k`` and ``MO``; ``opendp_core__measurement_map``; ``opendp_core__measurement_invoke``) through
  function objects of their own (``lib[name]``), with the arguments already in the library's form (the distance,
  and the zero vector of each length, converted once and kept), and unload the result as OpenDP's ``c_to_py``
  does for atoms (``object_as_slice``, read, ``slice_free``, ``object_free``) without asking its type again;
- those types are checked once per process, at import, with OpenDP's own type queries (:func:`_check_types`):
  they follow from the domain, the metric and the constructor, not from the scale.

Nothing about the noise or its accounting changes: the measurement is OpenDP's, its privacy map is OpenDP's (and
the caller checks that map of the very measurement it invokes), the draw is OpenDP's (from the operating system's
CSPRNG), and a failing call raises OpenDP's own exception.
``tests/test_dp_mechanisms.py`` compares these calls with the wrappers'.
"""

from __future__ import annotations

import contextlib
import ctypes
from functools import lru_cache
from typing import Any

import opendp.prelude as dp
from opendp._convert import py_to_c
from opendp._lib import AnyObjectPtr, FfiResult, FfiSlice, lib, unwrap
from opendp.core import (
    measurement_input_carrier_type,
    measurement_input_distance_type,
    measurement_output_distance_type,
)
from opendp.mod import Domain, Measurement, Metric

from sandbox._private.shared.errors import InternalError

__all__ = ["VECTOR_I64", "L1_I64", "L2_I64", "make_laplace", "make_gaussian", "privacy_map", "sample_zeros"]

dp.enable_features("contrib")  # make_laplace and make_gaussian on integer vectors, as mechanisms.py enables it

VECTOR_I64 = dp.vector_domain(dp.atom_domain(T="i64"))
L1_I64 = dp.l1_distance(T="i64")
L2_I64 = dp.l2_distance(T="i64")

_CARRIER, _DISTANCE_IN, _DISTANCE_OUT = "Vec<i64>", "i64", "f64"
_ZERO_CACHE_MAX = 4096  # zero vectors up to this length are converted once and kept (8 bytes a cell)


def _entry(name: str, argtypes: list[Any], restype: Any = FfiResult) -> Any:
    """Return our own function object of OpenDP's library (``lib[name]``): its argument types are ours alone."""
    fn = lib[name]
    fn.argtypes, fn.restype = argtypes, restype
    return fn


_MAP = _entry("opendp_core__measurement_map", [Measurement, AnyObjectPtr])
_INVOKE = _entry("opendp_core__measurement_invoke", [Measurement, AnyObjectPtr])
_AS_SLICE = _entry("opendp_data__object_as_slice", [ctypes.c_void_p])
_SLICE_FREE = _entry("opendp_data__slice_free", [ctypes.c_void_p])
_OBJECT_FREE = _entry("opendp_data__object_free", [ctypes.c_void_p])
_MAKE = [Domain, Metric, ctypes.c_double, ctypes.c_void_p, ctypes.c_char_p]  # domain, metric, scale, k, MO
_MAKE_LAPLACE = _entry("opendp_measurements__make_laplace", _MAKE)
_MAKE_GAUSSIAN = _entry("opendp_measurements__make_gaussian", _MAKE)


_MEASUREMENT_FREE = _entry("opendp_core___measurement_free", [Measurement])


class _Measurement(Measurement):
    """A measurement made here: OpenDP's own type, freed with one library call when dropped (as its ``__del__``)."""

    _type_ = Measurement._type_

    def __del__(self) -> None:
        with contextlib.suppress(TypeError, AttributeError):  # Python is shutting down (as OpenDP's __del__)
            _ok(_MEASUREMENT_FREE(self))


def make_laplace(scale: float) -> Measurement:
    """``dp.m.make_laplace(VECTOR_I64, L1_I64, scale=scale)``: the discrete Laplace on ``i64`` vectors, pure DP.

    The library's constructor with the wrapper's arguments (``k`` None, ``MO="MaxDivergence"``); the caller
    checks the measurement's own privacy map (:func:`privacy_map`), which is what certifies the release.
    """
    return unwrap(_MAKE_LAPLACE(VECTOR_I64, L1_I64, float(scale), None, b"MaxDivergence"), _Measurement)


def make_gaussian(scale: float) -> Measurement:
    """``dp.m.make_gaussian(VECTOR_I64, L2_I64, scale=scale)``: the discrete Gaussian on ``i64`` vectors, zCDP."""
    return unwrap(_MAKE_GAUSSIAN(VECTOR_I64, L2_I64, float(scale), None, b"ZeroConcentratedDivergence"), _Measurement)


def _ok(result: Any) -> int:
    """Return the address an OK ``FfiResult`` holds; raise an error as OpenDP raises it (``unwrap``)."""
    if result.tag != 0:
        unwrap(result, ctypes.c_void_p)  # frees the error and raises OpenDPException
        raise InternalError("OpenDP returned an error that unwrap did not raise.")
    return int(result.payload.Ok)


def _check_types(meas: Measurement) -> None:
    """Check that ``meas`` takes ``Vec<i64>`` and an ``i64`` distance, and maps it to an ``f64`` (OpenDP's queries)."""
    got = (
        str(measurement_input_carrier_type(meas)),
        str(measurement_input_distance_type(meas)),
        str(measurement_output_distance_type(meas)),
    )
    if got != (_CARRIER, _DISTANCE_IN, _DISTANCE_OUT):
        raise InternalError(f"OpenDP measurement has types {got}, expected {(_CARRIER, _DISTANCE_IN, _DISTANCE_OUT)}.")


# the types follow from the domain, the metric and the constructor, not from the scale: checked once, at import
_check_types(make_laplace(1.0))
_check_types(make_gaussian(1.0))


def _unload(result: Any, ctype: Any) -> list[Any]:
    """Return the values of the AnyObject an OK ``result`` holds (``ctype`` values), and free the object.

    What OpenDP's ``c_to_py`` does for an atom or a vector of atoms (``object_as_slice``, read the values,
    ``slice_free``; the object is freed when its pointer is dropped), without asking the object's type again.
    """
    obj = _ok(result)
    try:
        raw = _ok(_AS_SLICE(obj))
        try:
            view = FfiSlice.from_address(raw)
            return (ctype * view.len).from_address(view.ptr)[:] if view.len else []
        finally:
            _ok(_SLICE_FREE(raw))
    finally:
        _ok(_OBJECT_FREE(obj))


@lru_cache(maxsize=1024)
def _distance(units: int) -> Any:
    return py_to_c(units, c_type=AnyObjectPtr, type_name=_DISTANCE_IN)


@lru_cache(maxsize=256)
def _zeros(n: int) -> Any:
    return py_to_c([0] * n, c_type=AnyObjectPtr, type_name=_CARRIER)


def privacy_map(meas: Measurement, units: int) -> float:
    """``meas.map(units)`` for a ``make_laplace`` or ``make_gaussian`` measurement on ``VECTOR_I64``.

    The measurement must have been built on :data:`VECTOR_I64` with :data:`L1_I64` or :data:`L2_I64` (the types
    checked at import).
    """
    return float(_unload(_MAP(meas, _distance(int(units))), ctypes.c_double)[0])


def sample_zeros(meas: Measurement, n: int) -> list[int]:
    """``meas([0] * n)``: one release of the measurement on a zero vector of length ``n``, which is its noise."""
    arg = _zeros(n) if n <= _ZERO_CACHE_MAX else py_to_c([0] * n, c_type=AnyObjectPtr, type_name=_CARRIER)
    out = _unload(_INVOKE(meas, arg), ctypes.c_int64)
    if len(out) != n:
        raise InternalError(f"OpenDP returned {len(out)} noise values for a vector of {n}.")
    return out
