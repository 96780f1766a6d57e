"""The sandbox's own Dutch texts for an Algoritmeregister draft, written from the spec, the audit and the policy.

The register is published in Dutch only (its ``lang`` is ``nld``), so these texts are Dutch, in plain words
(the standard asks for B1 level), with rate differences in percentage points and a decimal comma. Each function
states only what its input says: nothing here guesses how an organisation uses the model.

The audit given must be the released one (``FairnessAudit.to_dict()`` of the DP audit the vault minted): its
numbers are DP and already charged, so a text written from them is post-processing and may be shown to anyone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .algoritmeregister_values import PartSource
from .errors import ReleaseError
from .modelspec import ModelSpec
from .policy import Policy

__all__ = [
    "SpecFacts",
    "spec_facts",
    "policy_of",
    "check_audit",
    "human_intervention_text",
    "risks_audit_text",
    "risks_policy_text",
    "source_data_texts",
    "methods_text",
    "assessment_title",
]

_AUDIT_FORMAT = "sandbox.fairness_audit/1"
_ESTIMATORS_NL = {
    "logistic_regression": "logistische regressie",
    "gaussian_nb": "naïeve Bayes-classificatie (Gaussisch)",
    "random_forest": "random forest (een verzameling beslisbomen)",
    "linear_regression": "lineaire regressie",
}
_METRICS_NL = {
    "demographic_parity": "verschil in aandeel gesignaleerd (demographic parity)",
    "equalized_odds": "verschil in foutkansen (equalized odds)",
    "equal_opportunity": "verschil in kans op terecht signaleren (equal opportunity)",
    "predictive_parity": "verschil in precisie (predictive parity)",
}
_DEFINITIONS_NL = {
    "equal_error_rates": "gelijke foutkansen in elke groep. Een terecht of onterecht signaal mag niet afhangen "
    "van de groep waartoe iemand hoort",
    "equal_outcomes": "gelijke uitkomsten. Elke groep wordt even vaak gesignaleerd",
}
_VERDICTS_NL = {
    "pass": "geslaagd (geen verschil ligt boven de drempels van het beleid)",
    "review": "beoordeling door een mens nodig (een verschil ligt boven de beoordelingsdrempel, of de cijfers "
    "zijn niet zeker genoeg om het uit te sluiten)",
    "fail": "afgekeurd (een verschil ligt zeker boven de afkeurdrempel)",
}
_UNITS_NL = {"household": ("huishouden", "huishoudens"), "person": ("persoon", "personen")}
_TOP_GAPS = 3
_TOP_PROXIES = 3


@dataclass(frozen=True)
class SpecFacts:
    """A validated model spec with what the fit request adds: dataset, version and epsilon, where given."""

    spec: ModelSpec
    dataset: str = ""
    version: str = ""
    epsilon: float | None = None


def spec_facts(spec: Mapping[str, Any]) -> SpecFacts:
    """Read ``ModelSpec.to_dict()`` or ``FitQuery.to_dict()`` (``dataset``, ``spec``, ``epsilon``, ``version``)."""
    if not isinstance(spec, Mapping):
        raise ReleaseError(f"the model spec must be a mapping (ModelSpec.to_dict()), got {type(spec).__name__}.")
    if "spec" in spec:
        eps = spec.get("epsilon")
        return SpecFacts(
            ModelSpec.from_dict(spec["spec"]),
            str(spec.get("dataset") or ""),
            str(spec.get("version") or ""),
            float(eps) if isinstance(eps, int | float) and not isinstance(eps, bool) else None,
        )
    return SpecFacts(ModelSpec.from_dict(spec))


def policy_of(policy: Policy | Mapping[str, Any]) -> Policy:
    """Return a validated :class:`Policy` from a policy or its ``model_dump(mode="json")`` form."""
    if isinstance(policy, Policy):
        return policy
    if not isinstance(policy, Mapping):
        raise ReleaseError(f"the policy must be a mapping (Policy.model_dump()), got {type(policy).__name__}.")
    body = {k: v for k, v in policy.items() if k != "sha256"}
    return Policy.from_mapping(body, source="policy", sha256=str(policy.get("sha256") or ""))


def check_audit(audit: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return ``audit`` if it is a ``sandbox.fairness_audit/1`` dict with a verdict, else raise ReleaseError."""
    if not isinstance(audit, Mapping) or audit.get("format") != _AUDIT_FORMAT:
        got = audit.get("format") if isinstance(audit, Mapping) else type(audit).__name__
        raise ReleaseError(f"the audit must be the released FairnessAudit.to_dict() ({_AUDIT_FORMAT!r}), got {got!r}.")
    verdict = audit.get("verdict")
    if not isinstance(verdict, Mapping) or verdict.get("status") not in _VERDICTS_NL:
        raise ReleaseError(f"the audit has no verdict status (one of {sorted(_VERDICTS_NL)}); pass the released audit.")
    return audit


def _label(name: str, labels: Mapping[str, str]) -> str:
    label = labels.get(name, "")
    return f"{label} ({name})" if label and label != name else name


def _facet(attrs: Sequence[str], labels: Mapping[str, str]) -> str:
    return " × ".join(labels.get(a) or a for a in attrs)


def _join(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " en " + words[-1]


def _pp(rate: float, *, short: bool = False) -> str:
    """Write a rate difference in percentage points, decimal comma: 0.113 -> '11,3' (``short``: 0.05 -> '5')."""
    text = f"{rate * 100:.1f}".replace("-0.0", "0.0")
    if short and text.endswith(".0"):
        text = text[:-2]
    return text.replace(".", ",")


def human_intervention_text(policy: Policy) -> str:
    """State what the review rule of the policy guarantees before a model leaves the sandbox."""
    n = policy.review.approvals_model
    who = "één beoordelaar het heeft" if n == 1 else f"{n} verschillende beoordelaars het hebben"
    return (
        "Het model is gemaakt in een afgeschermde analyseomgeving. Het mag die omgeving pas verlaten als "
        f"{who} bekeken en goedgekeurd: het model, de fairness-audit en het gebruik van het privacybudget. De "
        "maker van het model kan de eigen vrijgave niet goedkeuren."
    )


def _gaps(audit: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rows = [
        r
        for r in audit.get("disparities") or ()
        if isinstance(r, Mapping)
        and r.get("decisive")
        and r.get("reference") == "between_groups"
        and isinstance(r.get("difference"), int | float)
        and math.isfinite(r["difference"])
    ]
    best: dict[str, Mapping[str, Any]] = {}
    for r in rows:  # per facet, the largest decisive gap
        key = str(r.get("attribute"))
        if key not in best or r["difference"] > best[key]["difference"]:
            best[key] = r
    return sorted(best.values(), key=lambda r: -float(r["difference"]))[:_TOP_GAPS]


def _gap_line(r: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    facet = _facet(str(r.get("attribute")).split(" × "), labels)
    line = f"{facet}: {_pp(float(r['difference']))} procentpunt"
    low, high = r.get("difference_low"), r.get("difference_high")
    if isinstance(low, int | float) and isinstance(high, int | float):
        line += f" (interval {_pp(float(low))} tot {_pp(float(high))})"
    metric = _METRICS_NL.get(str(r.get("metric")), str(r.get("metric")))
    return f"{line}, {metric}"


def risks_audit_text(audit: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """Discrimination risk as the released fairness audit measured it: attributes, definition, verdict, gaps."""
    facets = [tuple(str(a) for a in f) for f in audit.get("facets") or ()]
    single = [_facet(f, labels) for f in facets if len(f) == 1]
    combos = [_facet(f, labels) for f in facets if len(f) > 1]
    parts = [
        "Risico op discriminatie: een fairness-audit op de afgeschermde gegevens toetst of het model groepen "
        f"gelijk behandelt naar {_join(single) if single else 'de beschermde kenmerken'}"
        + (f", en naar de combinaties {_join(combos)}." if combos else ".")
    ]
    definition = _DEFINITIONS_NL.get(str(audit.get("definition")))
    if definition:
        parts.append(f"Maatstaf: {definition}.")
    parts.append(f"Uitkomst: {_VERDICTS_NL[str(audit['verdict']['status'])]}.")
    gaps = _gaps(audit)
    if gaps:
        parts.append("Grootste verschillen tussen groepen: " + "; ".join(_gap_line(r, labels) for r in gaps) + ".")
        review, fail = gaps[0].get("review_threshold"), gaps[0].get("fail_threshold")
        if isinstance(review, int | float) and isinstance(fail, int | float):
            parts.append(
                f"Het beleid laat een mens beoordelen boven {_pp(float(review), short=True)} procentpunt "
                f"en keurt af boven {_pp(float(fail), short=True)} procentpunt."
            )
    noise = audit.get("noise_scale")
    if isinstance(noise, int | float) and noise > 0:
        parts.append(
            "De cijfers van de audit zijn met differentiële privacy berekend; de intervallen houden "
            "rekening met die ruis."
        )
    not_audited = list((audit.get("rules") or {}).get("not_audited") or ())
    if not_audited:
        parts.append(
            f"Niet getoetst, omdat de gegevens ze niet bevatten: {_join([_facet([a], labels) for a in not_audited])}."
        )
    parts += _proxy_sentences(audit, labels)
    return " ".join(parts)


def _proxy_sentences(audit: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    proxies = audit.get("proxies")
    if not isinstance(proxies, Sequence):
        return []
    threshold = (audit.get("rules") or {}).get("proxy_auc_threshold")
    limit = f" (AUC boven {threshold:.2f})".replace(".", ",") if isinstance(threshold, int | float) else ""
    flagged = [r for r in proxies if isinstance(r, Mapping) and r.get("flagged")]
    if not flagged:
        return [f"Geen kenmerk van het model voorspelt een beschermd kenmerk sterk{limit}."]
    by_feature: dict[str, list[str]] = {}
    for r in sorted(flagged, key=lambda r: -float(r.get("auc") or 0) if isinstance(r.get("auc"), int | float) else 0):
        by_feature.setdefault(str(r.get("feature")), []).append(_facet([str(r.get("attribute"))], labels))
    shown = list(by_feature.items())[:_TOP_PROXIES]
    pairs = [f"{_label(f, labels)} voor {_join(attrs)}" for f, attrs in shown]
    more = len(by_feature) - len(shown)
    tail = f" (en {more} andere kenmerken; de fairness-audit noemt ze allemaal)" if more > 0 else ""
    return [f"Mogelijke proxy's, kenmerken die een beschermd kenmerk voorspellen{limit}: {'; '.join(pairs)}{tail}."]


def risks_policy_text(policy: Policy) -> str:
    """State what the policy rules out (forbidden features) and how it protects the privacy of one unit."""
    unit = _UNITS_NL[policy.privacy_unit][0]
    parts = []
    if policy.forbidden_features:
        parts.append(f"Het beleid verbiedt deze kenmerken als invoer: {_join(list(policy.forbidden_features))}.")
    parts.append(
        f"Privacy: het model en de audit zijn met differentiële privacy berekend, zodat ze vrijwel niets "
        f"zeggen over één {unit}; de gegevens zelf hebben de afgeschermde omgeving niet verlaten."
    )
    return " ".join(parts)


def source_data_texts(
    facts: SpecFacts, policy: Policy, audit: Mapping[str, Any] | None, labels: Mapping[str, str]
) -> list[tuple[PartSource, str]]:
    """``(source, text)``: the columns the model uses and predicts (spec); the attributes only the audit used."""
    spec = facts.spec
    where = f" uit de dataset {facts.dataset}" if facts.dataset else ""
    where += f" (versie {facts.version})" if facts.dataset and facts.version else ""
    unit = _UNITS_NL[policy.privacy_unit][1]
    out: list[tuple[PartSource, str]] = [
        (
            "spec",
            f"Het model gebruikt {len(spec.features)} kenmerken{where}: "
            f"{_join([_label(f, labels) for f in spec.features])}. Het voorspelt "
            f"{_label(spec.target, labels)}. De gegevens beschrijven {unit}.",
        )
    ]
    if audit is None:
        return out
    audited = list(dict.fromkeys(str(a) for f in audit.get("facets") or () for a in f))
    unused = [a for a in audited if a not in spec.features]
    used = [a for a in audited if a in spec.features]
    sentences = []
    if unused:
        sentences.append(
            f"Alleen voor de fairness-audit, niet als invoer van het model: "
            f"{_join([_label(a, labels) for a in unused])}."
        )
    if used:
        sentences.append(
            f"Let op: het model gebruikt beschermde kenmerken als invoer: {_join([_label(a, labels) for a in used])}."
        )
    if sentences:
        out.append(("audit", " ".join(sentences)))
    return out


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "ja" if value else "nee"
    return f"{value:g}".replace(".", ",") if isinstance(value, float) else str(value)


def methods_text(facts: SpecFacts, policy: Policy, labels: Mapping[str, str]) -> str:
    """Describe the model type, its DP training, preprocessing and parameters, and that it does not learn on."""
    spec = facts.spec
    kind = _ESTIMATORS_NL.get(spec.estimator, spec.estimator)
    target = _label(spec.target, labels)
    if spec.task == "classification":
        task = f"Het model geeft per geval een kans op {target} en een signaal ja of nee."
    else:
        task = f"Het model schat {target} als getal."
    unit = _UNITS_NL[policy.privacy_unit][0]
    eps = f" (ε = {_param(facts.epsilon)})" if facts.epsilon is not None else ""
    params = "; ".join(f"{k} = {_param(v)}" for k, v in spec.resolved_params().items())
    sentences = [
        f"Type model: {kind} ({spec.estimator}; diffprivlib.models.{spec.diffprivlib_class}). {task}",
        f"Het model is getraind in een afgeschermde analyseomgeving met differentiële privacy{eps}: de invloed "
        f"van één {unit} op het model is wiskundig begrensd.",
        "Voorbewerking: categorieën worden 0/1-kolommen, ja/nee-kenmerken 0 of 1, en getallen worden geschaald "
        "naar 0 tot 1 met de grenzen uit het openbare schema (waarden daarbuiten worden afgekapt).",
        f"Instellingen: {params}." if params else "",
        "Het model is niet zelflerend: de parameters liggen vast bij de vrijgave en veranderen niet tijdens "
        "gebruik. Een nieuwe versie vraagt een nieuwe vrijgave, met een nieuwe fairness-audit.",
    ]
    return " ".join(s for s in sentences if s)


def assessment_title(audit: Mapping[str, Any]) -> str:
    """Return the impact-assessment entry for the audit: a bias analysis under the named policy."""
    name = str((audit.get("policy") or {}).get("name") or "")
    under = f", beleid '{name}'" if name else ""
    return f"Bias-analyse: fairness-audit in de analysesandbox{under}"
