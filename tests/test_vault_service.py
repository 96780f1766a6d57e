"""Unit tests of the vault's service layer in-process (the system tests go through the real process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_policy

from sandbox._private.shared.errors import IntegrityError
from sandbox._private.shared.query import AggregateQuery
from sandbox._private.vault.server import open_service


def test_tampered_data_file_is_refused_and_nothing_charged(small_population: Path, tmp_path: Path) -> None:
    svc = open_service(tmp_path / "ws", policy=write_policy(tmp_path / "p.yaml", epsilon_per_dataset=5.0))
    rec = svc.registry.add(
        "households", small_population / "households.parquet", small_population / "schema" / "households.json"
    )
    svc.tokens.create("ann", "analyst")
    caller = svc.tokens.list()[0]
    Path(rec.path).write_bytes(Path(rec.path).read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match=r"changed after registration\. Restore it or register a new version"):
        svc.query({"dataset": "households", "kind": "count", "epsilon": 0.5}, caller, None)
    assert svc.ledger.charges() == []


def test_private_part_is_stored_but_never_returned(small_population: Path, tmp_path: Path) -> None:
    svc = open_service(tmp_path / "ws")
    svc.registry.add_population(small_population)
    svc.tokens.create("ann", "analyst")
    caller = svc.tokens.list()[0]
    out = svc.query(
        {"dataset": "persons", "kind": "sum", "column": "income", "by": ["gender"], "epsilon": 1.0}, caller, "run-7"
    )
    row = svc.ledger.result(out["id"])
    stored = json.loads(row.private_json)  # the answer's own statistics; the disclosure ones are deferred
    assert stored["disclosure"] == "deferred" and stored["tables"] == {"persons": 1}
    assert [c["rows"] for c in stored["cells"]] and all("units" not in c for c in stored["cells"])
    full = json.loads(svc.complete(row).private_json)  # what the gate's SDC checks need, when it is released
    assert all({"units", "top1", "top2", "abs_total"} <= set(c) for c in full["cells"])
    reference = svc.engine.answer(  # the same statistics as the engine computes them with the answer
        AggregateQuery.from_dict(json.loads(row.query_json)), svc._open.get(svc.ledger.dataset("persons"))
    ).private
    assert full["cells"] == reference["cells"] and full["rows_truncated"] == reference["rows_truncated"]
    assert "units" not in str(out) and "top1" not in str(out)
    assert out["run_id"] == "run-7" and out["epsilon_remaining"] == 9.0
    assert out["mechanism"] == "DiscreteLaplace(grid=2^-1)"  # the exact mechanism, grid included


def test_answer_body_joined_from_stored_texts_equals_encoding_the_payload(
    small_population: Path, tmp_path: Path
) -> None:
    """``outcome_json`` (the served body of a fresh answer) is exactly ``canonical_json`` of its payload."""
    from sandbox._private.shared.canonical import canonical_json
    from sandbox._private.vault.ledger.ledger import ComputedAnswer, EncodedAnswer
    from sandbox._private.vault.service import _outcome_payload, outcome_brief, outcome_json
    from sandbox._private.vault.workers.jobs import BRIEF_KEYS

    svc = open_service(tmp_path / "ws")
    rec = svc.registry.add_population(small_population)[0]
    answers = [
        ComputedAnswer({"rows": [{"v": 1.5, "w": None}], "n": 3, "ü": "é"}, {"units": [1]}, "Laplace"),
        EncodedAnswer.of(ComputedAnswer({"rows": [], "inf": float("inf")}, {}, "Gaussian")),
    ]
    for i, answer in enumerate(answers):
        res = svc.ledger.reserve(
            rec, kind="aggregate", query_key=f"k{i}", query={"kind": "count", "by": ("b", "a"), "epsilon": 0.1},
            epsilon=0.1, delta=0.0, analyst="ann", run_id="run-1" if i else None,
        )  # fmt: skip
        fresh = svc.ledger.finalise(res, answer)
        assert outcome_json(fresh) == canonical_json(_outcome_payload(fresh))
        payload = _outcome_payload(fresh)
        assert outcome_brief(fresh, BRIEF_KEYS) == {k: payload[k] for k in BRIEF_KEYS}  # what a served job keeps
        again = svc.ledger.reserve(
            rec, kind="aggregate", query_key=f"k{i}", query={}, epsilon=0.1, delta=0.0, analyst="ann", run_id=None
        )
        assert again.reused and outcome_json(again) == canonical_json(_outcome_payload(again))
