"""What differs between the engines the plan compiles for: quoting, literals, row order and top-2 aggregates.

Names in the SQL are schema names (checked against ``NAME_RE``: lower-case letters, digits and ``_``) and are
quoted anyway; constants are finite numbers (written as DOUBLE literals with an exponent, so that neither engine
reads them as DECIMAL) and schema categories (escaped for the dialect). Nothing an analyst types reaches the SQL
except through those two forms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sandbox._private.shared.errors import InternalError
from sandbox._private.shared.wire import NAME_RE

__all__ = ["Dialect", "DUCKDB", "SPARK"]


@dataclass(frozen=True)
class Dialect:
    r"""One SQL dialect.

    Attributes
    ----------
    name : str
        ``"duckdb"`` or ``"spark"``.
    quote : str
        Identifier quote character.
    backslash_escapes : bool
        Whether string literals treat ``\\`` as an escape (Spark) or not (DuckDB, standard SQL).
    top_n : bool
        Whether ``max(x, 2)`` returns the two largest values as a list (DuckDB); else a two-phase form is used.
    streaming_lag : bool
        Whether ``lag(...) OVER ()`` streams in scan order (DuckDB keeps insertion order), so the ordered
        strategy for household-contiguous tables is available.
    """

    name: str
    quote: str
    backslash_escapes: bool
    top_n: bool
    streaming_lag: bool

    def ident(self, name: str) -> str:
        """Return a quoted identifier; only schema names and the compiler's own ``_``-names are allowed."""
        if not (NAME_RE.match(name) or (name.startswith("_") and NAME_RE.match(name.lstrip("_") or "x"))):
            raise InternalError(f"refusing to quote {name!r} as an SQL identifier")
        return f"{self.quote}{name}{self.quote}"

    def string(self, value: str) -> str:
        """Return a string literal."""
        text = value.replace("\\", "\\\\") if self.backslash_escapes else value
        if self.backslash_escapes:
            return "'" + text.replace("'", "\\'") + "'"
        return "'" + text.replace("'", "''") + "'"

    def number(self, value: float) -> str:
        """Return a DOUBLE literal (``1.5e0``): finite only."""
        v = float(value)
        if not math.isfinite(v):
            raise InternalError(f"refusing a non-finite SQL constant {value!r}")
        text = repr(v + 0.0)
        return text if ("e" in text or "E" in text) else f"{text}e0"

    def category_code(self, expr: str, categories: tuple[str, ...] | list[str]) -> str:
        """Return the 0-based position of ``expr`` among ``categories`` (NULL for a missing or unknown value).

        DuckDB looks the value up in a list constant (one hash probe instead of a chain of string comparisons);
        Spark gets a ``CASE``.
        """
        if self.name == "duckdb":
            items = ", ".join(self.string(c) for c in categories)
            return f"(list_position([{items}], {expr}) - 1)"
        whens = " ".join(f"WHEN {self.string(c)} THEN {i}" for i, c in enumerate(categories))
        return f"(CASE {expr} {whens} END)"

    def sum_double(self, expr: str) -> str:
        """Return the sum of a DOUBLE expression: DuckDB's compensated ``fsum`` (faster there than its ``sum``)."""
        return f"fsum({expr})" if self.name == "duckdb" else f"sum({expr})"

    def integer(self, value: int) -> str:
        return str(int(value))


DUCKDB = Dialect("duckdb", '"', backslash_escapes=False, top_n=True, streaming_lag=True)
SPARK = Dialect("spark", "`", backslash_escapes=True, top_n=False, streaming_lag=False)
