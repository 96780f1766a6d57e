"""Per-group confusion counts: the only thing the rest of the audit needs.

A :class:`CountTable` holds, for every facet (one protected attribute or an intersection of several), the counts
``[TP, FP, FN, TN]`` of each group. :func:`count_table` builds it from predictions in one vectorised pass
(``np.bincount`` over a combined group code); the vault may instead build it from DP-noised counts, mark groups
below the disclosure minimum as suppressed, and hand it to :func:`~sandbox.fairness.audit_from_counts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sandbox._private.shared.errors import FairnessInputError

from .inputs import EncodedAttribute
from .rules import FACET_SEP

__all__ = ["CELLS", "FacetCounts", "CountTable", "FinestTable", "count_table", "cell_index", "margin"]

CELLS = ("tp", "fp", "fn", "tn")
_FULL_TABLE_MAX_CELLS = 4_000_000


def cell_index(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Index of each row's confusion cell: TP 0, FP 1, FN 2, TN 3."""
    return 2 * (1 - y_pred) + (1 - y_true)


@dataclass(frozen=True)
class FacetCounts:
    """Confusion counts of the groups of one facet.

    Parameters
    ----------
    attributes : tuple of str
        The attribute, or the attributes of an intersection.
    groups : tuple of tuple of str
        One label per attribute for each group.
    counts : ndarray of shape (n_groups, 4)
        ``[TP, FP, FN, TN]`` per group; non-negative (DP counts must be post-processed first).
    suppressed : ndarray of bool, shape (n_groups,)
        Groups below the disclosure minimum: reported as suppressed, never as numbers.
    """

    attributes: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]
    counts: np.ndarray
    suppressed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts, dtype=np.float64)
        if counts.ndim != 2 or counts.shape != (len(self.groups), 4):
            raise FairnessInputError(
                f"facet {self.name!r}: counts must have shape ({len(self.groups)}, 4) for TP, FP, FN, TN; "
                f"got {counts.shape}"
            )
        if not np.isfinite(counts).all() or (counts < 0).any():
            raise FairnessInputError(
                f"facet {self.name!r}: counts must be finite and non-negative (post-process DP counts, e.g. "
                f"clip at 0); smallest is {np.nanmin(counts) if counts.size else 0:g}"
            )
        sup = np.asarray(self.suppressed, dtype=bool)
        if sup.size == 0:
            sup = np.zeros(len(self.groups), dtype=bool)
        if sup.shape != (len(self.groups),):
            raise FairnessInputError(f"facet {self.name!r}: suppressed must have one flag per group")
        if any(len(g) != len(self.attributes) for g in self.groups):
            raise FairnessInputError(f"facet {self.name!r}: each group needs one label per attribute")
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "suppressed", sup)

    @property
    def name(self) -> str:
        """The facet's display name, e.g. ``"gender × migration_background"``."""
        return FACET_SEP.join(self.attributes)

    @property
    def labels(self) -> tuple[str, ...]:
        """Display label of each group, e.g. ``"vrouw × Europa"``."""
        return tuple(FACET_SEP.join(g) for g in self.groups)


def margin(arr: np.ndarray, n_levels: int, keep: tuple[int, ...], observed: np.ndarray) -> np.ndarray:
    """Sum finest counts ``(..., *levels, 4)`` over the other axes to one facet's counts ``(..., G, 4)``.

    ``keep`` lists the facet's attribute axes in the facet's order; ``observed`` the flat indices of its groups.
    """
    lead = arr.ndim - n_levels - 1
    drop = tuple(lead + i for i in range(n_levels) if i not in keep)
    t = arr.sum(axis=drop) if drop else arr
    remaining = sorted(keep)
    perm = [*range(lead), *(lead + remaining.index(k) for k in keep), t.ndim - 1]
    return t.transpose(perm).reshape(*arr.shape[:lead], -1, 4)[..., observed, :]


@dataclass(frozen=True)
class FinestTable:
    """Counts of the finest partition (all attributes crossed); every facet is a margin of it.

    The bootstrap draws once from this table and sums to each facet, so all facets come from the same
    resample of rows (and the draw is smaller than drawing every facet on its own).
    """

    counts: np.ndarray  # (*levels, 4)
    layouts: tuple[tuple[tuple[int, ...], np.ndarray], ...]  # per facet: (axes kept, observed flat indices)

    def facet(self, arr: np.ndarray, k: int) -> np.ndarray:
        """Facet ``k``'s counts from an array of shape ``(..., *levels, 4)``."""
        keep, observed = self.layouts[k]
        return margin(arr, self.counts.ndim - 1, keep, observed)


@dataclass(frozen=True)
class CountTable:
    """Confusion counts of every facet plus the overall counts, and the Laplace scale of any DP noise in them."""

    facets: tuple[FacetCounts, ...]
    overall: np.ndarray
    noise_scale: float = 0.0
    finest: FinestTable | None = None  # set by count_table for exact counts; not part of the released table

    def __post_init__(self) -> None:
        overall = np.asarray(self.overall, dtype=np.float64)
        if overall.shape != (4,) or not np.isfinite(overall).all() or (overall < 0).any():
            raise FairnessInputError(
                f"overall counts must be four non-negative numbers (TP, FP, FN, TN), got {overall}"
            )
        if not np.isfinite(self.noise_scale) or self.noise_scale < 0:
            raise FairnessInputError(f"noise_scale must be a finite Laplace scale >= 0, got {self.noise_scale}")
        if not self.facets:
            raise FairnessInputError("a count table needs at least one facet")
        object.__setattr__(self, "overall", overall)

    def to_frame(self) -> pd.DataFrame:
        """Long table: ``attribute, group, tp, fp, fn, tn, suppressed``; the overall counts have attribute 'overall'."""
        rows = [("overall", "overall", *self.overall.tolist(), False)]
        for f in self.facets:
            for label, c, s in zip(f.labels, f.counts, f.suppressed, strict=True):
                rows.append((f.name, label, *c.tolist(), bool(s)))
        return pd.DataFrame(rows, columns=["attribute", "group", *CELLS, "suppressed"])

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, *, noise_scale: float = 0.0, suppressed: Iterable[tuple[str, str]] = ()
    ) -> CountTable:
        """Build from the long table of :meth:`to_frame` (an 'overall' row is optional: else the first facet's sum)."""
        missing = {"attribute", "group", *CELLS} - set(frame.columns)
        if missing:
            raise FairnessInputError(f"count frame lacks columns {sorted(missing)}; expected attribute, group, {CELLS}")
        sup = {(str(a), str(g)) for a, g in suppressed}
        if "suppressed" in frame.columns:
            sup |= {(str(a), str(g)) for a, g, s in frame[["attribute", "group", "suppressed"]].itertuples(False) if s}
        facets, overall = [], None
        for name, part in frame.groupby("attribute", sort=False):
            cnt = part[list(CELLS)].to_numpy(dtype=np.float64)
            if name == "overall":
                overall = cnt.sum(axis=0)
                continue
            attrs = tuple(str(name).split(FACET_SEP))
            groups = tuple(tuple(str(g).split(FACET_SEP)) for g in part["group"])
            flags = np.array([(str(name), str(g)) in sup for g in part["group"]], dtype=bool)
            facets.append(FacetCounts(attrs, groups, cnt, flags))
        if not facets:
            raise FairnessInputError("count frame has no facet rows (only 'overall'); add per-group counts")
        if overall is None:
            overall = facets[0].counts.sum(axis=0)
        return cls(tuple(facets), overall, noise_scale)


def _facet_from_table(
    full: np.ndarray, attrs: Sequence[EncodedAttribute], keep: tuple[int, ...]
) -> tuple[FacetCounts, np.ndarray]:
    dense = margin(full, len(attrs), keep, np.arange(int(np.prod([len(attrs[i].labels) for i in keep]))))
    facet = _facet_from_dense(dense, [attrs[i] for i in keep])
    return facet, np.flatnonzero(dense.sum(axis=1) > 0)


def _facet_from_dense(dense: np.ndarray, attrs: Sequence[EncodedAttribute]) -> FacetCounts:
    observed = np.flatnonzero(dense.sum(axis=1) > 0)
    shape = tuple(len(a.labels) for a in attrs)
    idx = np.unravel_index(observed, shape)
    groups = tuple(tuple(a.labels[i[k]] for a, i in zip(attrs, idx, strict=True)) for k in range(observed.size))
    return FacetCounts(tuple(a.name for a in attrs), groups, dense[observed].astype(np.float64))


def _facet_by_unique(cell: np.ndarray, attrs: Sequence[EncodedAttribute]) -> FacetCounts:
    stacked = np.stack([a.codes for a in attrs], axis=1)
    uniq, inverse = np.unique(stacked, axis=0, return_inverse=True)
    dense = np.bincount(inverse.ravel() * 4 + cell, minlength=uniq.shape[0] * 4).reshape(-1, 4)
    groups = tuple(tuple(a.labels[c] for a, c in zip(attrs, row, strict=True)) for row in uniq)
    return FacetCounts(tuple(a.name for a in attrs), groups, dense.astype(np.float64))


def count_table(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    attributes: Mapping[str, EncodedAttribute],
    facets: Sequence[tuple[str, ...]],
) -> CountTable:
    """Count TP, FP, FN, TN for every group of every facet in one pass over the rows.

    When the product of all attributes' category counts is small, a single ``bincount`` over the combined code of
    all attributes gives the finest table, and every facet is a sum over the other axes of it. Otherwise each facet
    is counted on its own (``np.unique`` of its codes when even that product is too large).
    """
    cell = cell_index(y_true, y_pred)
    used = [a for a in attributes if any(a in f for f in facets)]
    attrs = [attributes[a] for a in used]
    shape = tuple(len(a.labels) for a in attrs)
    overall = np.bincount(cell, minlength=4).astype(np.float64)
    if int(np.prod(shape, dtype=np.float64)) * 4 <= _FULL_TABLE_MAX_CELLS:
        code = np.ravel_multi_index(tuple(a.codes for a in attrs), shape) if attrs else np.zeros_like(cell)
        full = np.bincount(code * 4 + cell, minlength=int(np.prod(shape)) * 4).reshape(*shape, 4).astype(np.float64)
        keeps = [tuple(used.index(a) for a in f) for f in facets]
        built = [_facet_from_table(full, attrs, keep) for keep in keeps]
        finest = FinestTable(full, tuple((keep, obs) for keep, (_, obs) in zip(keeps, built, strict=True)))
        return CountTable(tuple(f for f, _ in built), overall, 0.0, finest)
    return CountTable(tuple(_facet_by_unique(cell, [attributes[a] for a in f]) for f in facets), overall, 0.0)
