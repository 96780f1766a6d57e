from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandbox import PolicyError, load_policy
from sandbox._private.shared.policy import default_policy_path


def test_default_policy_loads_with_sha() -> None:
    pol = load_policy()
    assert pol.budget.epsilon_per_dataset == 10.0
    assert pol.review.approvals_model == 2
    assert "nationality" in pol.forbidden_features
    import hashlib

    assert pol.sha256 == hashlib.sha256(default_policy_path().read_bytes()).hexdigest()


def _write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"budget": {"epsilon_per_dataset": -1}}, r"budget\.epsilon_per_dataset"),
        ({"budget": {"epsilon_per_dataset": 1.0, "epsilon_per_query_max": 2.0}}, "exceeds epsilon_per_dataset"),
        ({"budjet": {}}, "budjet: unknown field"),
        ({"fairness": {"definition": "vibes"}}, r"fairness\.definition"),
        ({"fairness": {"intersections": [["gender", "nationality"]]}}, "not in protected_attributes"),
        ({"fairness": {"thresholds": {"x": {"review": 0.2, "fail": 0.1}}}}, "must not exceed fail"),
        ({"disclosure": {"dominance_k": 1.5}}, r"disclosure\.dominance_k"),
        ({"sha256": "abc"}, "computed by the loader"),
    ],
)
def test_invalid_policy_names_the_field(tmp_path: Path, data: dict[str, object], match: str) -> None:
    with pytest.raises(PolicyError, match=match):
        load_policy(_write(tmp_path, data))


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"Cannot read policy file .*nope\.yaml"):
        load_policy(tmp_path / "nope.yaml")


def test_not_yaml(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("budget: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(p)


def test_every_shipped_policy_validates() -> None:
    for path in sorted(default_policy_path().parent.glob("*.yaml")):
        assert load_policy(path).sha256
