"""Scenario files: shipped scenarios load, round-trip exactly, and bad input names the field and the fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sandbox import ScenarioError
from synthetic import SHIPPED_SCENARIOS, Scenario, load_scenario
from synthetic._categories import CATEGORIES


def _base() -> dict[str, Any]:
    return load_scenario("default").to_mapping()


def test_shipped_scenarios_load_and_differ_only_in_strengths() -> None:
    default, control = (load_scenario(n) for n in SHIPPED_SCENARIOS)
    assert (default.structural.strength, default.label_bias.strength, default.proxies.strength) == (1, 1, 1)
    assert (control.structural.strength, control.label_bias.strength, control.proxies.strength) == (0, 0, 0)
    assert default.targets == control.targets and default.population == control.population
    assert default.sha256 != control.sha256


def test_load_by_path_equals_load_by_name(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_base()))
    assert load_scenario(path) == load_scenario("default")
    assert load_scenario(None) == load_scenario("default")


def test_unknown_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ScenarioError, match=r"neither a shipped scenario \['default', 'no_bias'\]"):
        load_scenario("no_such_scenario")


def test_yaml_syntax_error_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"broken\.yaml: not valid YAML"):
        Scenario.load(path)


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ScenarioError, match="must be a mapping of sections, got list"):
        Scenario.from_mapping([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("label_bias", "strength"), -0.5, r"'label_bias\.strength'.*got -0\.5.*from 0 \(mechanism off\) to 5"),
        (("proxies", "strength"), 7, r"'proxies\.strength'.*got 7"),
        (("targets", "poverty_households"), 1.5, r"'targets\.poverty_households'.*got 1\.5.*fraction from 0 to 1"),
        (("targets", "debt_assistance_applications_per_year"), -10, r"applications_per_year.*whole number >= 0"),
        (("targets", "poverty_line"), 0, r"'targets\.poverty_line'.*positive amount in euro"),
        (("population", "housing", "owner"), 0.9, r"'population\.housing'.*shares sum to 1\.33"),
        (("label_bias", "detection_rate"), 2, r"'label_bias\.detection_rate'.*fraction from 0 to 1"),
    ],
)
def test_impossible_values_name_the_field(path: tuple[str, ...], value: object, message: str) -> None:
    data = _base()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ScenarioError, match=message):
        Scenario.from_mapping(data)


def test_unknown_key_is_named() -> None:
    data = _base()
    data["label_bias"]["strenght"] = 1.0
    with pytest.raises(ScenarioError, match=r"unknown key 'label_bias\.strenght': remove it or fix its spelling"):
        Scenario.from_mapping(data)


def test_unknown_category_is_named() -> None:
    data = _base()
    data["population"]["household_type"]["commune"] = 0.0
    with pytest.raises(ScenarioError, match=r"population\.household_type.*unknown category \['commune'\]"):
        Scenario.from_mapping(data)


def test_missing_category_is_named() -> None:
    data = _base()
    del data["targets"]["signal_shares"]["water"]
    data["targets"]["signal_shares"]["health_insurer"] = 0.56
    with pytest.raises(ScenarioError, match=r"signal_shares.*missing categories \['water'\]"):
        Scenario.from_mapping(data)


def test_unknown_label_bias_group_is_named() -> None:
    data = _base()
    data["label_bias"]["uplift_log_odds"]["nationality"] = 1.0
    with pytest.raises(ScenarioError, match=r"unknown group \['nationality'\]"):
        Scenario.from_mapping(data)


def test_missing_section_is_named() -> None:
    data = _base()
    del data["targets"]
    with pytest.raises(ScenarioError, match=r"'targets' is missing"):
        Scenario.from_mapping(data)


def test_replace_validates_again() -> None:
    sc = load_scenario("default")
    weaker = sc.replace(label_bias={**sc.label_bias.model_dump(), "strength": 0.5})
    assert weaker.label_bias.strength == 0.5 and weaker.sha256 != sc.sha256
    with pytest.raises(ScenarioError, match=r"'label_bias\.strength'.*got 9"):
        sc.replace(label_bias={**sc.label_bias.model_dump(), "strength": 9})
    with pytest.raises(ScenarioError, match=r"'targets\.mean_creditors_at_intake'.*within the range stated"):
        sc.replace(targets={**sc.targets.model_dump(), "mean_creditors_at_intake": 0.5})


def test_scenario_is_frozen() -> None:
    sc = load_scenario("default")
    with pytest.raises(ValueError, match="frozen"):
        sc.structural.strength = 3.0  # type: ignore[misc]


def _shares(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, float]]:
    weights = st.lists(st.integers(0, 100), min_size=len(keys), max_size=len(keys)).filter(lambda w: sum(w) > 0)
    return weights.map(lambda w: {k: x / sum(w) for k, x in zip(keys, w, strict=True)})


strengths = st.floats(0, 5, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(
    structural=strengths,
    label=strengths,
    proxy=strengths,
    housing=_shares(CATEGORIES["housing"]),
    types=_shares(CATEGORIES["household_type"]),
    detection=st.floats(0, 1),
)
def test_round_trip(
    structural: float, label: float, proxy: float, housing: dict[str, float], types: dict[str, float], detection: float
) -> None:
    data = _base()
    data["structural"]["strength"] = structural
    data["label_bias"].update(strength=label, detection_rate=detection)
    data["proxies"]["strength"] = proxy
    data["population"]["housing"] = housing
    data["population"]["household_type"] = types
    sc = Scenario.from_mapping(data)
    again = Scenario.from_mapping(yaml.safe_load(yaml.safe_dump(sc.to_mapping())))
    assert again == sc and again.sha256 == sc.sha256


@settings(max_examples=60, deadline=None)
@given(
    section=st.sampled_from(["structural", "label_bias", "proxies"]),
    value=st.one_of(st.floats(max_value=-1e-9, allow_nan=False), st.floats(min_value=5.0001, allow_infinity=False)),
)
def test_out_of_range_strength_is_rejected(section: str, value: float) -> None:
    data = copy.deepcopy(_base())
    data[section]["strength"] = value
    with pytest.raises(ScenarioError, match=rf"'{section}\.strength'"):
        Scenario.from_mapping(data)


@settings(max_examples=60, deadline=None)
@given(
    field=st.sampled_from(["poverty_households", "registered_problematic_debt", "poverty_shortfall_median"]),
    value=st.one_of(st.floats(max_value=-1e-9, allow_nan=False), st.floats(min_value=1.0001, allow_infinity=False)),
)
def test_share_outside_unit_interval_is_rejected(field: str, value: float) -> None:
    data = _base()
    data["targets"][field] = value
    with pytest.raises(ScenarioError, match=rf"'targets\.{field}'.*fraction from 0 to 1"):
        Scenario.from_mapping(data)


@settings(max_examples=40, deadline=None)
@given(key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
def test_any_unknown_top_level_key_is_rejected(key: str) -> None:
    data = _base()
    assume(key not in data)
    data[key] = 1
    with pytest.raises(ScenarioError, match=rf"unknown key '{key}'"):
        Scenario.from_mapping(data)
