"""Which households a model is tested on: a fixed public function of the household id, never of the data.

A fitted model's quality figures (:mod:`sandbox._private.vault.dp.quality`) are measured on held-out households that
the fit never saw. Which households those are must not depend on the rows (DESIGN invariant 10): not on their
order, on ``unit_index``, on the table's size or on any value. The rule is:

    household ``h`` is held out  <=>  ``int(sha256(str(h)).hexdigest(), 16) % HOLDOUT_MODULUS == 0``

with ``str(h)`` the decimal form of the integer id in ASCII and no key: anyone can recompute it, and adding or
removing one household moves no other household across the line. With ``HOLDOUT_MODULUS = 5`` about 20% of the
households are held out. As ``256 = 1 (mod 5)``, the digest read as a big-endian number is congruent modulo 5 to
the sum of its 32 bytes; :func:`held_out` uses that to stay in numpy after hashing (about 1 s per million ids).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

__all__ = ["HOLDOUT_MODULUS", "HOLDOUT_RULE", "held_out", "is_held_out"]

#: One household in this many (in expectation) is held out of the fit and used to measure its quality.
HOLDOUT_MODULUS = 5
#: The rule in words, as the model card and the answer state it.
HOLDOUT_RULE = f"a household is held out iff int(sha256(str(id)), 16) % {HOLDOUT_MODULUS} == 0 (id in decimal, ASCII)"


def is_held_out(household_id: int) -> bool:
    """Apply the rule to one id, written out literally (the reference :func:`held_out` is tested against)."""
    return int(hashlib.sha256(str(int(household_id)).encode("ascii")).hexdigest(), 16) % HOLDOUT_MODULUS == 0


def held_out(household_ids: Iterable[int] | np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``household_ids`` (integers) the rule holds out; one entry per id, in order."""
    ids = np.asarray(household_ids if isinstance(household_ids, np.ndarray) else list(household_ids))
    if ids.size == 0:
        return np.zeros(0, dtype=bool)
    if ids.dtype.kind not in "iu":
        if ids.dtype.kind == "f" and np.all(ids == np.round(ids)):
            ids = ids.astype(np.int64)
        else:
            raise TypeError(f"household ids must be integers, got dtype {ids.dtype}")
    if HOLDOUT_MODULUS != 5:  # pragma: no cover - the byte-sum shortcut below holds for divisors of 255 only
        return np.fromiter((is_held_out(h) for h in ids.tolist()), dtype=bool, count=ids.size)
    digests = b"".join([hashlib.sha256(str(h).encode("ascii")).digest() for h in ids.tolist()])
    byte_sums = np.frombuffer(digests, dtype=np.uint8).reshape(ids.size, 32).sum(axis=1, dtype=np.int64)
    return np.asarray(byte_sums % HOLDOUT_MODULUS == 0)
