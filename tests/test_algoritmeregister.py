"""The Algoritmeregister draft: filled from real request/spec/audit/policy objects, checked against standard 1.0.

The reference for the limits is MinBZK/Algoritmeregister ``backend/app/schemas/config/v1_0.json`` (commit
be01f3a); ``STANDARD_LIMITS`` below was typed from it separately from the module's table, so a slip in either
shows here. Every maximum length is tested at the limit (accepted) and one past it (refused, naming the limit),
every permitted value is accepted and a near miss refused, and every required field is required.
"""

from __future__ import annotations

import ast
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import synthetic
from sandbox._private.shared import algoritmeregister as ar
from sandbox._private.shared.algoritmeregister_fields import FIELDS, author_fields_help, field_spec
from sandbox._private.shared.dummy import dummy_frame
from sandbox._private.shared.errors import ReleaseError
from sandbox._private.shared.modelspec import FitQuery, ModelSpec
from sandbox._private.shared.policy import Policy, load_policy
from sandbox.fairness import audit_from_counts, audit_predictions, confusion_counts

REPO = Path(__file__).resolve().parents[1]

# name: (max_length, required, number of permitted values), as v1_0.json states them.
STANDARD_LIMITS: dict[str, tuple[int | None, bool, int]] = {
    "name": (100, True, 0), "description_short": (400, True, 0), "organization": (100, True, 0),
    "category": (None, False, 16), "status": (None, True, 3), "begin_date": (7, False, 0),
    "end_date": (7, False, 0), "contact_email": (500, True, 0), "website": (500, False, 0),
    "publication_category": (None, True, 3), "url": (500, False, 0), "goal": (2500, False, 0),
    "proportionality": (2500, False, 0), "human_intervention": (2500, False, 0), "risks": (2500, False, 0),
    "lawful_basis": (2500, False, 0), "lawful_basis_grouping": (None, False, 0),
    "process_index_url": (500, False, 0), "impacttoetsen_grouping": (None, False, 0),
    "impacttoetsen": (2500, False, 0), "source_data": (2500, False, 0), "source_data_grouping": (None, False, 0),
    "methods_and_models": (5000, False, 0), "provider": (200, False, 0), "publiccode": (500, False, 0),
    "lang": (None, True, 1), "standard_version": (None, False, 1), "source_id": (100, False, 0),
    "tags": (2500, False, 0), "lars": (None, False, 0), "publication_dt": (None, False, 0),
}  # fmt: skip
# link lists: (title max, title required, link max, link required)
STANDARD_ITEMS = {
    "lawful_basis_grouping": (100, True, 500, True),
    "impacttoetsen_grouping": (None, True, 500, False),
    "source_data_grouping": (500, True, 500, True),
}
COMPLETE = {
    "description_short": "Dit algoritme schat welke huishoudens risico lopen op problematische schulden. Een "
    "schuldhulpverlener neemt dan contact op en biedt hulp aan.",
    "organization": "Gemeente Noorderhaaks",
    "contact_email": "algoritmes@noorderhaaks.example.nl",
    "publication_category": "Impactvolle algoritmes",
    "human_intervention": "Een schuldhulpverlener bekijkt elk signaal en beslist zelf of er contact komt.",
    "risks": "Elk kwartaal toetsen we opnieuw op verschillen tussen groepen; klachten gaan naar de ombudsman.",
}


# -- real objects --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


@pytest.fixture(scope="module")
def schema() -> Any:
    return synthetic.population_schemas()["households"]


@pytest.fixture(scope="module")
def labels(schema: Any) -> dict[str, str]:
    return {c.name: c.label_nl for c in schema.columns}


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec(
        "logistic_regression",
        target="registered_problematic_debt",
        features=["income_band", "arrears_energy", "arrears_health_insurance", "housing"],
    )


@pytest.fixture(scope="module")
def fit(spec: ModelSpec) -> dict[str, Any]:
    return FitQuery("households", spec, 1.0).to_dict()


def _rows(schema: Any) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rows = dummy_frame(schema, 4000, seed=14)
    rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(7)))
    y_true = rng.random(len(rows)) < 0.2
    # a model that misses more households with a migration background outside Europe: a gap the audit must find
    miss = np.where(rows["migration_background"].astype(str) == "buiten_europa", 0.45, 0.2)
    y_pred = (y_true & (rng.random(len(rows)) > miss)) | (rng.random(len(rows)) < 0.05)
    return rows, y_true, y_pred


@pytest.fixture(scope="module")
def dp_audit(schema: Any, policy: Policy) -> dict[str, Any]:
    """An audit as the vault releases it: from Laplace-noised confusion counts (audit_from_counts)."""
    rows, y_true, y_pred = _rows(schema)
    counts = confusion_counts(y_true, y_pred, rows[list(policy.fairness.protected_attributes)], policy=policy)
    frame = counts.to_frame()
    rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(3)))
    cells = ["tp", "fp", "fn", "tn"]
    frame[cells] = np.clip(frame[cells] + rng.laplace(0, 2.0, size=(len(frame), 4)), 0, None)
    return audit_from_counts(frame, noise_scale=2.0, policy=policy, n_boot=200, random_state=1).to_dict()


@pytest.fixture(scope="module")
def proxy_audit(schema: Any, policy: Policy, spec: ModelSpec) -> dict[str, Any]:
    """An audit with the proxy check, from predictions: ``age`` is a feature and a near-perfect proxy of age_band."""
    rows, y_true, y_pred = _rows(schema)
    bands = pd.cut(rows["age"], [0, 24, 34, 44, 54, 66, 200], labels=list(schema.column("age_band").categories))
    sensitive = rows[["gender", "migration_background"]].assign(age_band=bands.astype(str))  # dummy columns are
    # drawn independently; here the band is the age's own, as in the real population
    features = rows[[*spec.features, "age"]]
    return audit_predictions(
        y_true, y_pred, sensitive, policy=policy, n_boot=100, random_state=2, features=features
    ).to_dict()


@pytest.fixture
def request_view() -> dict[str, Any]:
    """The keys ``ReleaseService.show`` returns for a request (sandbox/_private/gate/service.py ``_view``)."""
    return {
        "id": "req_5f0c2a9e1b7d3c44",
        "author": "anna",
        "title": "Vroegsignalering schulden v1",
        "purpose": "Huishoudens met een risico op problematische schulden vroeg vinden, zodat schuldhulp op tijd "
        "kan worden aangeboden.",
        "justification": "Vroege hulp voorkomt hogere schulden; het model gebruikt "
        "alleen signalen die de gemeente al mag verwerken.",
        "created": "2026-03-02T09:15:00.000000+00:00",
        "state": "pending_review",
        "status": "pending_review",
        "blocked": False,
        "round": 1,
        "required_approvals": 2,
        "votes_in": 0,
        "votes": [],
        "comments": [],
        "gate": {"items": []},
        "release_id": None,
    }


def _draft(
    request_view: dict[str, Any],
    fit: dict[str, Any],
    audit: dict[str, Any] | None,
    policy: Policy,
    author: dict[str, Any] | None = None,
    **kw: Any,
) -> ar.RegisterDraft:
    return ar.draft_from_release(request_view, fit, audit, policy.model_dump(mode="json"), author or {}, **kw)


def _author_only(name: str, value: Any) -> list[ar.Problem]:
    return ar.validate(ar.RegisterDraft({name: (ar.Part("author", value),)}))


# -- the table is the standard ---------------------------------------------------------------------------------
def test_field_table_matches_the_standard() -> None:
    assert [f.name for f in FIELDS] == list(STANDARD_LIMITS)
    for f in FIELDS:
        assert (f.max_length, f.required, len(f.allowed)) == STANDARD_LIMITS[f.name], f.name
        if f.kind == "links":
            assert f.items is not None
            got = (f.items.title_max, f.items.title_required, f.items.link_max, f.items.link_required)
            assert got == STANDARD_ITEMS[f.name], f.name
    assert field_spec("status").allowed == ("In ontwikkeling", "In gebruik", "Buiten gebruik")
    assert field_spec("publication_category").allowed == (
        "Hoog-risico AI-systeem",
        "Impactvolle algoritmes",
        "Overige algoritmes",
    )
    assert "Sociale zekerheid" in field_spec("category").allowed
    assert field_spec("lang").allowed == ("nld",) and field_spec("standard_version").allowed == ("1.0",)


# -- every maximum length -------------------------------------------------------------------------------------
def _of_length(fmt: str, n: int) -> str:
    if fmt == "url" or fmt == "contact":
        return "https://" + "a" * (n - len("https://"))
    return "x" * n


@pytest.mark.parametrize("spec", [f for f in FIELDS if f.kind == "text" and f.max_length], ids=lambda f: f.name)
def test_every_max_length_is_enforced_at_its_limit(spec: Any) -> None:
    limit = spec.max_length
    if spec.fmt == "month":  # the only 7-character form is YYYY-MM itself
        assert _author_only(spec.name, "2025-01") == []
        problems = _author_only(spec.name, "2025-011")
        assert {p.kind for p in problems} == {"too_long", "format"}
    else:
        assert _author_only(spec.name, _of_length(spec.fmt, limit)) == []
        problems = _author_only(spec.name, _of_length(spec.fmt, limit + 1))
        assert [p.kind for p in problems] == ["too_long"]
    message = next(p.message for p in problems if p.kind == "too_long")
    assert f"{spec.name} ({spec.label_nl}) is {limit + 1} characters; the standard allows {limit}" in message


@pytest.mark.parametrize("name", list(STANDARD_ITEMS))
def test_every_link_list_limit_is_enforced(name: str) -> None:
    title_max, _, link_max, link_required = STANDARD_ITEMS[name]
    ok_title = "t" * (title_max or 3000)
    ok_link = "https://" + "l" * (link_max - 8)
    assert _author_only(name, (ar.Link(ok_title, ok_link),)) == []
    too_long = _author_only(name, (ar.Link("t", ok_link + "l"),))
    assert [(p.field, p.kind) for p in too_long] == [(f"{name}[0].link", "too_long")]
    assert f"allows {link_max}" in too_long[0].message
    if title_max is not None:
        long_title = _author_only(name, (ar.Link(ok_title + "t", ok_link),))
        assert [(p.field, p.kind) for p in long_title] == [(f"{name}[0].title", "too_long")]
    missing = _author_only(name, (ar.Link("Wet", ""),))
    assert [(p.field, p.kind) for p in missing] == ([(f"{name}[0].link", "required")] if link_required else [])
    assert [p.kind for p in _author_only(name, (ar.Link("Wet", "http://wetten.overheid.nl"),))] == ["format"]


def test_system_text_over_a_limit_names_its_source(
    request_view: dict[str, Any], fit: dict[str, Any], dp_audit: dict[str, Any], policy: Policy
) -> None:
    title = "Vroegsignalering " * 7  # 119 characters: the gate allows 200, the register 100
    draft = _draft({**request_view, "title": title.strip()}, fit, dp_audit, policy)
    (problem,) = ar.validate(draft)
    assert problem.field == "name" and problem.kind == "too_long"
    assert "is 118 characters; the standard allows 100: shorten the release request's title" in problem.message
    purpose = "p" * 2600
    (problem,) = ar.validate(
        _draft({**request_view, "purpose": purpose}, fit, dp_audit, policy, {"goal": "Inwoners krijgen eerder hulp."})
    )
    assert "the sandbox's text from the release request's purpose alone takes 2600; shorten that" in problem.message


def test_author_part_over_the_limit_says_how_much_room_is_left(
    request_view: dict[str, Any], fit: dict[str, Any], dp_audit: dict[str, Any], policy: Policy
) -> None:
    system = str(_draft(request_view, fit, dp_audit, policy).values["risks"])
    room = 2500 - len(system) - 2  # the paragraph break
    fits = _draft(request_view, fit, dp_audit, policy, {"risks": "r" * room})
    assert ar.validate(fits) == [] and len(str(fits.values["risks"])) == 2500
    over = _draft(request_view, fit, dp_audit, policy, {"risks": "r" * (room + 1)})
    with pytest.raises(ReleaseError, match=re.escape(f"shorten register['risks'] from {room + 1} to at most {room}")):
        ar.check(over)


def test_too_long_author_fields_are_refused_naming_the_limit() -> None:
    ok = ar.check_author_fields({"description_short": "k" * 400, "provider": "Intern ontwikkeld"})
    assert ok == {"description_short": "k" * 400, "provider": "Intern ontwikkeld"}
    with pytest.raises(
        ReleaseError,
        match=r"description_short \(Korte omschrijving\) is 401 characters; the standard "
        r"allows 400",
    ) as info:
        ar.check_author_fields({"description_short": "k" * 401, "organization": "o" * 101})
    assert "organization (Organisatienaam) is 101 characters; the standard allows 100" in str(info.value)


# -- every permitted value --------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [f for f in FIELDS if f.allowed], ids=lambda f: f.name)
def test_every_permitted_value_is_accepted_and_a_near_miss_refused(spec: Any) -> None:
    for value in spec.allowed:
        given = (value,) if spec.kind == "choices" else value
        assert _author_only(spec.name, given) == [], value
    wrong = spec.allowed[0].lower() + " "
    problems = _author_only(spec.name, (wrong,) if spec.kind == "choices" else wrong)
    assert [p.kind for p in problems] == ["not_allowed"]
    assert all(repr(a) in problems[0].message for a in spec.allowed)


def test_categories_may_not_repeat() -> None:
    problems = _author_only("category", ("Werk", "Werk"))
    assert [p.kind for p in problems] == ["duplicate"]


# -- required fields ------------------------------------------------------------------------------------------------
def test_required_fields_are_flagged_then_required(
    request_view: dict[str, Any], fit: dict[str, Any], dp_audit: dict[str, Any], policy: Policy
) -> None:
    draft = _draft(request_view, fit, dp_audit, policy)
    required = {f.name for f in FIELDS if f.required}
    assert required == {
        "name",
        "description_short",
        "organization",
        "status",
        "contact_email",
        "publication_category",
        "lang",
    }
    assert set(draft.missing_required) == {"description_short", "organization", "contact_email", "publication_category"}
    assert ar.validate(draft) == []  # a draft: flagged, not refused
    problems = ar.validate(draft, complete=True)
    assert {(p.field, p.kind) for p in problems} == {
        *((n, "required") for n in draft.missing_required),
        ("human_intervention", "incomplete"),
        ("risks", "incomplete"),
    }
    complete = _draft(request_view, fit, dp_audit, policy, COMPLETE)
    assert ar.validate(complete, complete=True) == []
    assert ar.check(complete, complete=True) is complete


def test_a_register_draft_with_a_wrong_fixed_value_fails() -> None:
    draft = ar.RegisterDraft({"lang": (ar.Part("standard", "eng"),), "standard_version": (ar.Part("standard", "0.4"),)})
    assert {(p.field, p.kind) for p in ar.validate(draft)} == {
        ("lang", "not_allowed"),
        ("standard_version", "not_allowed"),
    }
    with pytest.raises(ReleaseError, match="does not have"):
        ar.RegisterDraft({"naam": (ar.Part("author", "x"),)})
    with pytest.raises(ReleaseError, match="'category' must hold a tuple of strings, got str"):
        ar.RegisterDraft({"category": (ar.Part("author", "Werk"),)})
    with pytest.raises(ReleaseError, match="'lars' must hold nothing"):
        ar.RegisterDraft({"lars": (ar.Part("author", "x"),)})


# -- filling from the real objects ---------------------------------------------------------------------------
def test_draft_is_filled_from_request_spec_audit_and_policy(
    request_view: dict[str, Any], fit: dict[str, Any], dp_audit: dict[str, Any], policy: Policy, labels: dict[str, str]
) -> None:
    draft = _draft(request_view, fit, dp_audit, policy, column_labels=labels)
    v = draft.values
    assert v["name"] == request_view["title"] and v["source_id"] == request_view["id"]
    assert v["goal"] == request_view["purpose"] and v["proportionality"] == request_view["justification"]
    assert v["lang"] == "nld" and v["standard_version"] == "1.0" and v["status"] == "In ontwikkeling"
    assert dict(draft.sources) == {
        "name": ("request",),
        "status": ("default",),
        "goal": ("request",),
        "proportionality": ("request",),
        "human_intervention": ("policy",),
        "risks": ("audit", "policy"),
        "impacttoetsen_grouping": ("audit",),
        "source_data": ("spec", "audit"),
        "methods_and_models": ("spec",),
        "lang": ("standard",),
        "standard_version": ("standard",),
        "source_id": ("request",),
    }
    # the policy's review rule
    assert f"{policy.review.approvals_model} verschillende beoordelaars" in str(v["human_intervention"])
    three = Policy.model_validate({**policy.model_dump(), "review": {"approvals_table": 1, "approvals_model": 3}})
    assert "3 verschillende beoordelaars" in str(
        _draft(request_view, fit, dp_audit, three).values["human_intervention"]
    )
    # the spec: estimator, diffprivlib class, epsilon, every feature and the target with their Dutch labels
    methods, data = str(v["methods_and_models"]), str(v["source_data"])
    assert "logistische regressie" in methods and "diffprivlib.models.LogisticRegression" in methods
    assert "(ε = 1)" in methods and "niet zelflerend" in methods and "C = 1; fit_intercept = ja" in methods
    for name in (*fit["spec"]["features"], fit["spec"]["target"]):
        assert f"{labels[name]} ({name})" in data
    assert "uit de dataset households" in data and "huishoudens" in data
    for attr in policy.fairness.protected_attributes:  # audited, not used as input
        assert f"{labels[attr]} ({attr})" in data.split("Alleen voor de fairness-audit")[1]
    # the policy's forbidden features, the privacy unit
    risks = str(v["risks"])
    assert "verbiedt deze kenmerken als invoer: nationality" in risks and "één huishouden" in risks
    assert "met differentiële privacy berekend; de intervallen" in risks  # the audit is noised (noise_scale > 0)
    assert v["impacttoetsen_grouping"] == (
        ar.Link("Bias-analyse: fairness-audit in de analysesandbox, beleid 'default'"),
    )
    assert draft.provenance["policy_sha256"] == policy.sha256 and draft.provenance["request_author"] == "anna"


def test_risks_report_the_largest_decisive_gap_of_the_audit(
    request_view: dict[str, Any], fit: dict[str, Any], dp_audit: dict[str, Any], policy: Policy, labels: dict[str, str]
) -> None:
    d = pd.DataFrame(dp_audit["disparities"])
    decisive = d[d["decisive"].astype(bool) & (d["reference"] == "between_groups")].dropna(subset=["difference"])
    top = decisive.sort_values("difference", ascending=False).iloc[0]
    risks = str(_draft(request_view, fit, dp_audit, policy, column_labels=labels).values["risks"])
    facet = " × ".join(labels[a] for a in str(top["attribute"]).split(" × "))
    number = f"{top['difference'] * 100:.1f}".replace(".", ",")
    low = f"{top['difference_low'] * 100:.1f}".replace(".", ",")
    assert f"Grootste verschillen tussen groepen: {facet}: {number} procentpunt (interval {low} tot " in risks
    verdict = {"pass": "geslaagd", "review": "beoordeling door een mens nodig", "fail": "afgekeurd"}
    assert f"Uitkomst: {verdict[dp_audit['verdict']['status']]}" in risks
    assert "migratieachtergrond" in risks  # the gap built into the predictions is found and named
    assert "boven 5 procentpunt en keurt af boven 10 procentpunt" in risks  # the policy's thresholds


def test_proxies_and_unaudited_attributes_are_stated(
    request_view: dict[str, Any],
    fit: dict[str, Any],
    proxy_audit: dict[str, Any],
    policy: Policy,
    labels: dict[str, str],
) -> None:
    flagged = {(r["feature"], r["attribute"]) for r in proxy_audit["proxies"] if r["flagged"]}
    assert flagged == {("age", "age_band")}  # the reference: age determines age_band
    risks = str(_draft(request_view, fit, proxy_audit, policy, column_labels=labels).values["risks"])
    assert (
        "Mogelijke proxy's, kenmerken die een beschermd kenmerk voorspellen (AUC boven 0,70): leeftijd "
        "hoofdkostwinner (age) voor leeftijdsklasse hoofdkostwinner."
    ) in risks
    assert "Niet getoetst, omdat de gegevens ze niet bevatten: type huishouden en beperking hoofdkostwinner." in risks
    clean = {**proxy_audit, "proxies": [{**r, "flagged": False} for r in proxy_audit["proxies"]]}
    risks = str(_draft(request_view, fit, clean, policy).values["risks"])
    assert "Geen kenmerk van het model voorspelt een beschermd kenmerk sterk (AUC boven 0,70)." in risks
    assert "proxy's" not in risks


def test_fit_query_and_bare_spec_and_policy_forms_agree(
    request_view: dict[str, Any], spec: ModelSpec, dp_audit: dict[str, Any], policy: Policy
) -> None:
    bare = ar.draft_from_release(request_view, spec.to_dict(), dp_audit, policy, {})
    dumped = ar.draft_from_release(request_view, spec.to_dict(), dp_audit, policy.model_dump(mode="json"), {})
    assert bare == dumped
    assert "ε" not in str(bare.values["methods_and_models"]) and "uit de dataset" not in str(bare.values["source_data"])


def test_without_an_audit_nothing_is_invented(
    request_view: dict[str, Any], fit: dict[str, Any], policy: Policy
) -> None:
    draft = _draft(request_view, fit, None, policy)
    assert draft.sources["risks"] == ("policy",) and "impacttoetsen_grouping" not in draft.parts
    assert "fairness-audit toetst" not in str(draft.values["risks"]) and draft.sources["source_data"] == ("spec",)
    assert "audit_verdict" not in draft.provenance


def test_malformed_inputs_are_refused(
    request_view: dict[str, Any], fit: dict[str, Any], dp_audit: dict[str, Any], policy: Policy
) -> None:
    with pytest.raises(ReleaseError, match="no 'title'"):
        _draft({k: v for k, v in request_view.items() if k != "title"}, fit, dp_audit, policy)
    with pytest.raises(ReleaseError, match=re.escape("sandbox.fairness_audit/1")):
        _draft(request_view, fit, {"verdict": "pass"}, policy)
    with pytest.raises(ValueError, match="Unknown estimator"):
        _draft(request_view, {**fit, "spec": {**fit["spec"], "estimator": "svm"}}, dp_audit, policy)


# -- author fields ------------------------------------------------------------------------------------------------
def test_author_fields_are_accepted_and_added_after_the_sandbox_text(
    request_view: dict[str, Any], fit: dict[str, Any], dp_audit: dict[str, Any], policy: Policy
) -> None:
    plain = _draft(request_view, fit, dp_audit, policy)
    given = {
        **COMPLETE,
        "category": "Sociale zekerheid",
        "status": "In gebruik",
        "begin_date": "2026-04",
        "goal": "Inwoners met beginnende schulden krijgen eerder een gesprek aangeboden.",
        "lawful_basis_grouping": [["Wet gemeentelijke schuldhulpverlening", "https://wetten.overheid.nl/BWBR0031164"]],
        "impacttoetsen_grouping": [{"title": "Impact Assessment Mensenrechten en Algoritmes (IAMA)"}],
        "tags": "  schulden, vroegsignalering  ",
        "website": "",
    }
    draft = _draft(request_view, fit, dp_audit, policy, given)
    v = draft.values
    assert v["goal"] == f"{request_view['purpose']}\n\n{given['goal']}" and draft.sources["goal"] == (
        "request",
        "author",
    )
    assert v["risks"] == f"{plain.values['risks']}\n\n{COMPLETE['risks']}"
    assert (
        v["category"] == ("Sociale zekerheid",)
        and v["status"] == "In gebruik"
        and v["tags"] == "schulden, vroegsignalering"
    )
    assert v["lawful_basis_grouping"] == (
        ar.Link("Wet gemeentelijke schuldhulpverlening", "https://wetten.overheid.nl/BWBR0031164"),
    )
    assert [e.title for e in v["impacttoetsen_grouping"]] == [  # type: ignore[union-attr]
        "Bias-analyse: fairness-audit in de analysesandbox, beleid 'default'",
        "Impact Assessment Mensenrechten en Algoritmes (IAMA)",
    ]
    assert "website" in draft.unfilled  # an empty value counts as not given
    assert draft.incomplete == () and draft.missing_required == ()
    assert ar.validate(draft, complete=True) == []


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ({"name": "Andere naam"}, r"'name' \(Naam\) is filled from the release request's title; change that"),
        ({"source_id": "x"}, "filled from the release request's id"),
        ({"lang": "eng"}, "fixed by publication standard 1.0"),
        ({"lars": "abc"}, "assigned by the Algoritmeregister"),
        ({"organisation": "Gemeente"}, "has no field 'organisation'; did you mean 'organization'"),
        ({"organization": 3}, r"register\['organization'\] must be a string, got int"),
        ({"category": [1]}, "must be a list of strings"),
        ({"lawful_basis_grouping": "Wet"}, "must be a list of title/link entries"),
        ({"lawful_basis_grouping": [{"title": "Wet", "url": "https://x"}]}, r"has keys \['url'\]"),
    ],
)
def test_author_fields_the_standard_or_the_sandbox_owns_are_refused(given: dict[str, Any], match: str) -> None:
    with pytest.raises(ReleaseError, match=match):
        ar.normalise_author_fields(given)


def test_author_help_lists_what_an_author_gives() -> None:
    help_ = author_fields_help()
    names = [f.name for f in help_]
    must = [f.name for f in help_ if f.author_need == "must"]
    assert must == [
        "description_short",
        "organization",
        "contact_email",
        "publication_category",
        "human_intervention",
        "risks",
    ]
    assert names[: len(must)] == must  # the needed ones first
    assert not {"name", "source_id", "lang", "standard_version", "lars", "publication_dt"} & set(names)
    assert all(f.label_nl and f.label_en and f.hint_nl and f.hint_en for f in help_)
    assert field_spec("status").author_need == "may"  # it has the sandbox's default


def test_forms_the_standard_asks_for(
    request_view: dict[str, Any], fit: dict[str, Any], dp_audit: dict[str, Any], policy: Policy
) -> None:
    assert [p.kind for p in _author_only("begin_date", "2025/01")] == ["format"]
    assert [p.kind for p in _author_only("begin_date", "2025-13")] == ["format"]
    assert _author_only("contact_email", "https://noorderhaaks.example.nl/contact") == []
    assert [p.kind for p in _author_only("contact_email", "bel 14 0123")] == ["format"]
    assert [p.kind for p in _author_only("website", "www.noorderhaaks.nl")] == ["format"]
    assert [p.kind for p in _author_only("organization", "Gemeente\u202e Noorderhaaks")] == ["hidden"]
    in_use = _draft(
        request_view, fit, dp_audit, policy, {"status": "In gebruik", "begin_date": "2026-04", "end_date": "2026-01"}
    )
    assert [p.kind for p in ar.validate(in_use)] == ["consistency", "consistency"]  # end date in use, and before begin


# -- output -------------------------------------------------------------------------------------------------------
def test_json_uses_the_standard_field_names(
    request_view: dict[str, Any], fit: dict[str, Any], dp_audit: dict[str, Any], policy: Policy
) -> None:
    draft = _draft(request_view, fit, dp_audit, policy, {"lawful_basis_grouping": [["Wet", "https://w.nl/1"]]})
    data = json.loads(ar.to_json(draft))
    assert list(data) == [n for n in STANDARD_LIMITS if n not in ("lars", "publication_dt")]
    assert data["name"] == request_view["title"] and data["description_short"] is None
    assert data["lawful_basis_grouping"] == [{"title": "Wet", "link": "https://w.nl/1"}]
    assert data["impacttoetsen_grouping"][0]["link"] is None
    annotated = json.loads(ar.to_json(draft, annotated=True))
    assert annotated["fields"] == data and annotated["unfilled"] == list(draft.unfilled)
    assert annotated["incomplete"] == ["human_intervention", "risks"] and annotated["problems"] == []
    assert "be01f3a18e93754da2fd7463645ec3a49247d8dc" in annotated["standard_source"]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_html_flags_unfilled_fields_and_escapes_hostile_input(
    lang: str, request_view: dict[str, Any], fit: dict[str, Any], dp_audit: dict[str, Any], policy: Policy
) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    given = {
        "organization": hostile,
        "lawful_basis_grouping": [{"title": hostile, "link": "javascript:alert(1)"}],
        "source_data_grouping": [{"title": "CBS", "link": 'https://cbs.nl/"><script>x</script>'}],
    }
    draft = _draft({**request_view, "title": "Model <b>v1</b> & zo"}, fit, dp_audit, policy, given)
    page = ar.to_html(draft, lang)
    parser = _Tags()
    parser.feed(page)
    assert "script" not in parser.tags and "img" not in parser.tags and "b" not in parser.tags
    assert not [a for a, _ in parser.attrs if a.startswith("on")]
    assert [v for a, v in parser.attrs if a == "href"] == ['https://cbs.nl/"><script>x</script>']  # one quoted href
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "Model &lt;b&gt;v1&lt;/b&gt; &amp; zo" in page
    )
    flag = "nog in te vullen" if lang == "nl" else "to be filled in"
    assert page.count(f'<span class="flag">{flag}</span>') == len(draft.unfilled)
    assert f'lang="{lang}"' in page and "http" not in page.split("<body>")[0].replace("https://", "")
    for f in FIELDS:
        if f.source != ("register",):
            assert f'id="f-{f.name}"' in page
    assert "javascript:alert(1)" in page and 'href="javascript' not in page  # shown as text, never a link
    with pytest.raises(ValueError, match="lang must be"):
        ar.to_html(draft, "de")


def test_html_shows_problems_and_the_author_part_still_needed(
    request_view: dict[str, Any], fit: dict[str, Any], dp_audit: dict[str, Any], policy: Policy
) -> None:
    draft = _draft(request_view, fit, dp_audit, policy, {"organization": "o" * 101})
    page = ar.to_html(draft)
    assert "organization (Organisatienaam) is 101 characters; the standard allows 100" in page
    assert page.count("aanvulling door de auteur nodig") == 2  # human_intervention and risks
    assert '<section class="field problem" id="f-organization">' in page


MODULES = ("", "_check", "_fields", "_html", "_text", "_values")


# -- a pure library in the shared room -----------------------------------------------------------------------
def test_the_modules_are_pure_and_import_nothing_of_kernel_or_vault() -> None:
    allowed_std = {
        "__future__",
        "collections",
        "dataclasses",
        "difflib",
        "html",
        "json",
        "math",
        "re",
        "types",
        "typing",
        "unicodedata",
    }
    own = {f"algoritmeregister{s}" for s in MODULES}
    allowed_rel = {(1, "errors"), (1, "policy"), (1, "modelspec"), *((1, m) for m in own)}
    files = sorted((REPO / "sandbox" / "_private" / "shared").glob("algoritmeregister*.py"))
    assert sorted(p.stem for p in files) == sorted(f"algoritmeregister{s}" for s in MODULES)
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert {a.name.split(".")[0] for a in node.names} <= allowed_std, (path.name, ast.dump(node))
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    assert node.module and node.module.split(".")[0] in allowed_std, (path.name, node.module)
                else:  # sandbox._private.shared.{errors,policy,modelspec} and this concept's own modules only
                    names = [node.module] if node.module else [a.name for a in node.names]
                    assert {(node.level, n) for n in names} <= allowed_rel, (path.name, node.level, names)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("open", "print", "exec", "eval"), (path.name, node.func.id)
