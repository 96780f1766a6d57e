"""Numbers for reading on the review page: rounded to what the DP noise lets a reviewer know, in Dutch or English.

The vault stores full floats (``3.3333333333333335``, ``0.0060717826469936925``); a reviewer reads ``3.33`` and
``0.006``. Dutch uses a decimal comma and a dot between thousands (``20.036``; ``0,047``), English the reverse
(``20,036``; ``0.047``). Missing and non-finite values are shown as a dash, never as ``nan``.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

__all__ = ["number", "significant", "count", "epsilon", "interval", "is_number", "LANGS"]

LANGS = ("nl", "en")
_SEPARATORS = {"en": (",", "."), "nl": (".", ",")}  # (thousands, decimal)
DASH = "\u2013"


def is_number(value: Any) -> TypeGuard[float]:
    """Whether ``value`` is a finite int or float (bools are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _localise(text: str, lang: str) -> str:
    thousands, decimal = _SEPARATORS[lang]
    return text.replace(",", "\0").replace(".", decimal).replace("\0", thousands).replace("-", "\u2212")


def number(value: Any, lang: str = "en", digits: int = 3) -> str:
    """Format with ``digits`` decimals and thousands separators (``-0`` shown as ``0``); a dash when missing."""
    if not is_number(value):
        return DASH
    x = round(float(value), digits)
    if x == 0:
        x = 0.0
    return _localise(f"{x:,.{digits}f}", lang)


def significant(value: Any, lang: str = "en", digits: int = 3) -> str:
    """Format with ``digits`` significant digits, without exponent for readable magnitudes (coefficients, scales)."""
    if not is_number(value):
        return DASH
    x = float(value)
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude >= 15 or magnitude < -6:
        return _localise(f"{x:.{digits - 1}e}", lang)
    decimals = max(0, digits - 1 - magnitude)
    rounded = round(x, decimals)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > magnitude:  # 9.996 -> 10.0: one decimal fewer
        decimals = max(0, decimals - 1)
    return _localise(f"{rounded:,.{decimals}f}", lang)


def count(value: Any, lang: str = "en") -> str:
    """Format a (noisy) count as a whole number with thousands separators."""
    if not is_number(value):
        return DASH
    return number(round(float(value)), lang, 0)


def epsilon(value: Any, lang: str = "en") -> str:
    """Format a privacy loss: up to 4 decimals, trailing zeros dropped (``0.3``, ``1.8``, ``0.0125``)."""
    if not is_number(value):
        return DASH
    text = f"{round(float(value), 4):.4f}".rstrip("0").rstrip(".")
    return _localise(text if text not in ("-0", "") else "0", lang)


def interval(value: Any, low: Any, high: Any, lang: str = "en", digits: int = 3) -> str:
    """Format ``value (low to high)``: ``0.047 (−0.015 to 0.108)`` or ``0,047 (−0,015 tot 0,108)``."""
    point = number(value, lang, digits)
    if not (is_number(low) and is_number(high)):
        return point
    to = "tot" if lang == "nl" else "to"
    return f"{point} ({number(low, lang, digits)} {to} {number(high, lang, digits)})"
