"""Scenarios: the calibration targets, population shares and bias mechanisms of a synthetic population.

A scenario is a YAML file validated on load (unknown keys and impossible values are errors naming the field and
the fix). It has one strength knob per bias mechanism:

- ``structural.strength``: how strongly protected attributes (migration background, gender, age, disability,
  household type) shift income source, poverty and debt risk; 1 reproduces the calibrated gradients, 0 removes
  them (every household type then has the overall poverty rate, and the age-bound income sources, state pension
  and student, and the number of children no longer change poverty or debt risk);
- ``label_bias.strength``: how far registration of problematic debt depends on group beyond the true latent
  status kept in the ground truth;
- ``proxies.strength``: how strongly neighbourhood deprivation and Dutch language proficiency follow migration
  background.

The shipped ``default.yaml`` has all three at 1; ``no_bias.yaml`` sets them to 0 for control experiments.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sandbox import ScenarioError

from ._categories import codes

__all__ = ["Scenario", "load_scenario", "SHIPPED_SCENARIOS", "SCENARIO_DIR", "HOUSEHOLD_SIZES"]

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
SHIPPED_SCENARIOS = ("default", "no_bias")

Share = Annotated[float, Field(ge=0.0, le=1.0)]
Strength = Annotated[float, Field(ge=0.0, le=5.0)]
LogOdds = Annotated[float, Field(ge=0.0, le=5.0)]
Euro = Annotated[float, Field(gt=0.0, le=1e7)]
LABEL_BIAS_GROUPS = ("buiten_europa", "europa", "welfare", "single_parent", "female", "disability")
#: Size classes of multi-person households in ``targets.household_size`` (persons; the last is 5 or more).
HOUSEHOLD_SIZES = ("2", "3", "4", "5_plus")

# How to fix a bad value, by the kind of field (looked up by the field's last name).
_FIX: dict[str, str] = {
    "strength": "use a number from 0 (mechanism off) to 5; 1 is the calibrated strength",
    "share": "use a fraction from 0 to 1",
    "euro": "use a positive amount in euro",
    "count": "use a whole number >= 0",
    "log_odds": "use a log-odds uplift from 0 to 5",
    "range": "use a value within the range stated",
}
_FIELD_KIND: dict[str, str] = {
    "strength": "strength",
    "poverty_line": "euro",
    "income_median": "euro",
    "mean_debt_at_intake": "euro",
    "debt_assistance_applications_per_year": "count",
    "households_reference": "count",
    "mean_creditors_at_intake": "range",
    "signals_per_1000_residents_per_month": "range",
    "persons_per_household": "range",
    "income_p90_p10": "range",
    "version": "range",
    "uplift_log_odds": "log_odds",
    "neighbourhood_shift_sd": "log_odds",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_shares(
    value: dict[str, float], column: str, *, total: bool = True, allowed: tuple[str, ...] | None = None
) -> dict[str, float]:
    allowed = codes(column) if allowed is None else allowed
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ValueError(f"unknown category {unknown}; the categories of {column} are {list(allowed)}")
    missing = [c for c in allowed if c not in value]
    if missing:
        raise ValueError(f"missing categories {missing}; give a share for each of {list(allowed)}")
    if total and abs(sum(value.values()) - 1.0) > 1e-6:
        raise ValueError(f"shares sum to {sum(value.values()):.6f}; they must sum to 1")
    return {c: float(value[c]) for c in allowed}


class Population(_Strict):
    """Population shares (households). CBS figures where they exist, else assumptions (see the YAML)."""

    municipality: dict[str, Share]
    household_type: dict[str, Share]
    migration_background: dict[str, Share]
    housing: dict[str, Share]

    @field_validator("municipality", "household_type", "migration_background", "housing")
    @classmethod
    def _shares(cls, v: dict[str, float], info: Any) -> dict[str, float]:
        return _check_shares(v, info.field_name)


class Targets(_Strict):
    """Calibration targets (CALIBRATION.md, docs/calibration.md); the generator solves its constants to meet them.

    The population is that of private households (CBS *particuliere huishoudens*): persons in institutions
    (care homes and the like) are not generated, so every household and person figure is one of private
    households, as in the CBS income and poverty statistics.
    """

    persons_per_household: Annotated[float, Field(ge=1.0, le=7.0)]
    household_size: dict[str, Share]
    minors_share: Share
    aged_67_plus_share: Share
    income_median: Euro
    income_gini: Share
    income_p90_p10: Annotated[float, Field(ge=1.0, le=50.0)]
    households_below_line: Share
    poverty_line: Euro
    poverty_households: Share
    poverty_by_household_type: dict[str, Share]
    poverty_shortfall_median: Share
    registered_problematic_debt: Share
    registered_problematic_debt_rotterdam: Share
    debt_assistance_applications_per_year: Annotated[int, Field(ge=0)]
    households_reference: Annotated[int, Field(gt=0)]
    mean_debt_at_intake: Euro
    mean_creditors_at_intake: Annotated[float, Field(ge=1.0, le=60.0)]
    signals_per_1000_residents_per_month: Annotated[float, Field(ge=0.0, le=100.0)]
    signal_shares: dict[str, Share]

    @field_validator("poverty_by_household_type")
    @classmethod
    def _types(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_shares(v, "household_type", total=False)

    @field_validator("signal_shares")
    @classmethod
    def _signals(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_shares(v, "creditor_type")

    @field_validator("household_size")
    @classmethod
    def _sizes(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_shares(v, "household_size (persons in a multi-person household)", allowed=HOUSEHOLD_SIZES)


class Structural(_Strict):
    """Structural disparities by protected attribute (strength 1 = as calibrated)."""

    strength: Strength = 1.0


class LabelBias(_Strict):
    """Registration of problematic debt depending on group beyond the true status."""

    strength: Strength = 1.0
    detection_rate: Share = 0.80
    false_registration_rate: Share = 0.005
    uplift_log_odds: dict[str, LogOdds] = Field(default_factory=dict)

    @field_validator("uplift_log_odds")
    @classmethod
    def _groups(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(LABEL_BIAS_GROUPS))
        if unknown:
            raise ValueError(f"unknown group {unknown}; label-bias groups are {list(LABEL_BIAS_GROUPS)}")
        return {g: float(v[g]) for g in LABEL_BIAS_GROUPS if g in v}


class Proxies(_Strict):
    """Proxies of migration background: neighbourhood deprivation and language proficiency."""

    strength: Strength = 1.0
    neighbourhood_shift_sd: dict[str, LogOdds] = Field(default_factory=dict)

    @field_validator("neighbourhood_shift_sd")
    @classmethod
    def _groups(cls, v: dict[str, float]) -> dict[str, float]:
        filled = {c: 0.0 for c in codes("migration_background")} | dict(v)
        return _check_shares(filled, "migration_background", total=False)


class Scenario(_Strict):
    """A validated scenario: population shares, calibration targets and bias mechanisms.

    Build with :meth:`load` (a YAML file), :meth:`from_mapping` or :func:`load_scenario` (a shipped name or a
    path). Instances are immutable; :attr:`sha256` identifies the validated content (not the file's comments).
    """

    version: Annotated[int, Field(ge=1, le=1)] = 1
    name: Annotated[str, Field(min_length=1, max_length=80)]
    description: str = ""
    population: Population
    targets: Targets
    structural: Structural = Structural()
    label_bias: LabelBias = LabelBias()
    proxies: Proxies = Proxies()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "scenario") -> Scenario:
        """Validate a mapping; errors become :class:`ScenarioError` naming the field and the fix."""
        if not isinstance(data, Mapping):
            raise ScenarioError(f"{source}: a scenario must be a mapping of sections, got {type(data).__name__}.")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise ScenarioError(_explain(exc, source)) from None

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """Read and validate a YAML scenario file; the error names the path and the field."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(
                f"Cannot read scenario file {str(p)!r}: {exc.strerror}. Give an existing YAML file or one of the "
                f"shipped scenarios {list(SHIPPED_SCENARIOS)}."
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{p}: not valid YAML ({exc}). Fix the syntax.") from None
        return cls.from_mapping(data, source=str(p))

    def to_mapping(self) -> dict[str, Any]:
        """Plain data that :meth:`from_mapping` turns back into an equal scenario."""
        return self.model_dump(mode="json")

    @property
    def sha256(self) -> str:
        """sha256 of the canonical JSON of the validated content."""
        text = json.dumps(self.to_mapping(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def replace(self, **sections: Any) -> Scenario:
        """Return a copy with whole sections or fields replaced, validated again."""
        return Scenario.from_mapping({**self.to_mapping(), **sections})


def _explain(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        field = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key {field!r}: remove it or fix its spelling")
            continue
        if err["type"] == "missing":
            lines.append(f"{field!r} is missing: add it (see synthetic/scenarios/default.yaml)")
            continue
        names = [p for p in loc if not p.isdigit()]
        kind = next((_FIELD_KIND[n] for n in reversed(names) if n in _FIELD_KIND), "share")
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        hint = "" if "categor" in msg or "sum to" in msg else f"; {_FIX[kind]}"
        lines.append(f"{field!r}: {msg} (got {got!r}){hint}")
    return f"{source}: invalid scenario: " + "; ".join(lines) + "."


def load_scenario(name_or_path: str | Path | Scenario | None = None) -> Scenario:
    """Load a shipped scenario by name (``"default"``, ``"no_bias"``), a YAML file by path, or ``None`` for default.

    Parameters
    ----------
    name_or_path : str, Path, Scenario or None
        Shipped name, path of a YAML file, or an already validated scenario (returned as is).

    Returns
    -------
    Scenario
    """
    if isinstance(name_or_path, Scenario):
        return name_or_path
    if name_or_path is None:
        name_or_path = "default"
    if isinstance(name_or_path, str) and name_or_path in SHIPPED_SCENARIOS:
        return Scenario.load(SCENARIO_DIR / f"{name_or_path}.yaml")
    p = Path(name_or_path)
    if not p.exists():
        raise ScenarioError(
            f"Scenario {str(name_or_path)!r} is neither a shipped scenario {list(SHIPPED_SCENARIOS)} nor an "
            "existing file: give one of those names or the path of a YAML scenario."
        )
    return Scenario.load(p)
