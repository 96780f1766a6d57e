"""The rules an audit applies, resolved from a policy and the attributes actually given.

With ``policy=None`` the default policy's rules apply, restricted to the attributes given (every given attribute is
audited, the default intersections only where all their members are given). With an explicit policy, an attribute
the policy does not list is an error: auditing it silently would hide a mistake in either the data or the policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sandbox._private.shared.errors import FairnessInputError
from sandbox._private.shared.policy import MetricThreshold, Policy, load_policy

__all__ = ["AuditRules", "resolve_rules", "FACET_SEP"]

FACET_SEP = " × "


@dataclass(frozen=True)
class AuditRules:
    """Everything from the policy that an audit needs, with the facets (attributes and intersections) to audit."""

    policy_name: str
    policy_sha256: str
    definition: str
    definition_reason: str
    facets: tuple[tuple[str, ...], ...]
    min_group_size: int
    min_count: int
    thresholds: dict[str, MetricThreshold]
    confidence_level: float
    proxy_auc_threshold: float
    forbidden_features: tuple[str, ...]
    not_audited: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.facets:
            raise FairnessInputError("an audit needs at least one protected attribute")
        if not 0 < self.confidence_level < 1:
            raise FairnessInputError(f"confidence_level must be in (0, 1), got {self.confidence_level}")

    @property
    def facets_attributes(self) -> tuple[str, ...]:
        """Every attribute that occurs in a facet, in order."""
        return tuple(dict.fromkeys(a for f in self.facets for a in f))

    @property
    def decisive_metrics(self) -> tuple[str, ...]:
        """The disparities that decide the verdict under the chosen fairness definition.

        Equal error rates is equalized odds (true and false positive rates both equal); equal opportunity, its
        true-positive half, is reported but does not decide a second time.
        """
        if self.definition == "equal_outcomes":
            return ("demographic_parity",)
        return ("equalized_odds",)


def _facets(given: list[str], policy: Policy, explicit: bool) -> tuple[tuple[str, ...], ...]:
    rules = policy.fairness
    known = set(rules.protected_attributes)
    unknown = [a for a in given if a not in known]
    if explicit and unknown:
        raise FairnessInputError(
            f"attribute(s) {unknown} are not protected attributes of policy {policy.name!r} "
            f"(it lists {list(rules.protected_attributes)}); add them to fairness.protected_attributes in the policy "
            "or drop those columns from sensitive_features"
        )
    present = set(given)
    inter = [combo for combo in rules.intersections if set(combo) <= present]
    return tuple((a,) for a in given) + tuple(tuple(c) for c in inter)


def resolve_rules(policy: Policy | None, attributes: Iterable[str]) -> AuditRules:
    """Resolve the audit rules for ``attributes`` under ``policy`` (``None``: the shipped default policy)."""
    explicit = policy is not None
    pol = policy if policy is not None else load_policy()
    given = list(attributes)
    facets = _facets(given, pol, explicit)
    rules = pol.fairness
    return AuditRules(
        policy_name=pol.name,
        policy_sha256=pol.sha256,
        definition=rules.definition,
        definition_reason=rules.definition_reason,
        facets=facets,
        min_group_size=rules.min_group_size,
        min_count=pol.disclosure.min_count,
        thresholds=dict(rules.thresholds),
        confidence_level=rules.confidence_level,
        proxy_auc_threshold=rules.proxy_auc_threshold,
        forbidden_features=tuple(pol.forbidden_features),
        not_audited=tuple(a for a in rules.protected_attributes if a not in set(given)) if explicit else (),
    )
