"""Category codes of the synthetic population, with their Dutch and English labels.

Every categorical column of every table takes its codes from here, in display order; the public schema
(:mod:`synthetic._schemas`) lists them all, so group keys never come from the rows.
"""

from __future__ import annotations

__all__ = ["CATEGORIES", "CATEGORY_LABELS", "codes"]

# column -> ((code, label_nl, label_en), ...) in display order.
_TABLE: dict[str, tuple[tuple[str, str, str], ...]] = {
    "municipality": (
        ("amsterdam", "Amsterdam", "Amsterdam"),
        ("rotterdam", "Rotterdam", "Rotterdam"),
        ("den_haag", "Den Haag", "The Hague"),
        ("utrecht", "Utrecht", "Utrecht"),
        ("large_100k_plus", "overige gemeente, 100 000 inwoners of meer", "other municipality, 100,000+"),
        ("medium_50k_100k", "gemeente, 50 000 tot 100 000 inwoners", "municipality, 50,000 to 100,000"),
        ("small_20k_50k", "gemeente, 20 000 tot 50 000 inwoners", "municipality, 20,000 to 50,000"),
        ("very_small_under_20k", "gemeente, minder dan 20 000 inwoners", "municipality, under 20,000"),
    ),
    "urbanisation": (
        ("very_strongly_urban", "zeer sterk stedelijk", "very strongly urban"),
        ("strongly_urban", "sterk stedelijk", "strongly urban"),
        ("moderately_urban", "matig stedelijk", "moderately urban"),
        ("hardly_urban", "weinig stedelijk", "hardly urban"),
        ("not_urban", "niet stedelijk", "not urban"),
    ),
    "neighbourhood_deprivation": (
        ("q1_least", "kwintiel 1 (minst achtergesteld)", "quintile 1 (least deprived)"),
        ("q2", "kwintiel 2", "quintile 2"),
        ("q3", "kwintiel 3", "quintile 3"),
        ("q4", "kwintiel 4", "quintile 4"),
        ("q5_most", "kwintiel 5 (meest achtergesteld)", "quintile 5 (most deprived)"),
    ),
    "household_type": (
        ("single", "eenpersoonshuishouden", "single person"),
        ("couple", "paar zonder kinderen", "couple without children"),
        ("couple_with_children", "paar met kinderen", "couple with children"),
        ("single_parent", "eenouderhuishouden", "single parent"),
        ("other", "overig meerpersoonshuishouden", "other multi-person household"),
    ),
    "housing": (
        ("social_rent", "sociale huur", "social rent"),
        ("private_rent", "particuliere huur", "private rent"),
        ("owner", "koopwoning", "owner-occupied"),
    ),
    "income_source": (
        ("employment", "loon", "employment"),
        ("self_employed", "winst als zelfstandige", "self-employment"),
        ("welfare", "bijstand", "social assistance (welfare)"),
        ("unemployment_benefit", "werkloosheidsuitkering (WW)", "unemployment benefit"),
        ("disability_benefit", "arbeidsongeschiktheidsuitkering", "disability benefit"),
        ("state_pension", "AOW en pensioen", "state pension"),
        ("student", "studiefinanciering", "student finance"),
    ),
    "income_band": (
        ("below_15k", "minder dan 15 000 euro", "below 15,000 euro"),
        ("15k_20k", "15 000 tot 20 000 euro", "15,000 to 20,000 euro"),
        ("20k_25k", "20 000 tot 25 000 euro", "20,000 to 25,000 euro"),
        ("25k_35k", "25 000 tot 35 000 euro", "25,000 to 35,000 euro"),
        ("35k_50k", "35 000 tot 50 000 euro", "35,000 to 50,000 euro"),
        ("50k_75k", "50 000 tot 75 000 euro", "50,000 to 75,000 euro"),
        ("75k_plus", "75 000 euro of meer", "75,000 euro or more"),
    ),
    "gender": (
        ("male", "man", "male"),
        ("female", "vrouw", "female"),
    ),
    "age_band": (
        ("18_24", "18 tot 25 jaar", "18 to 24"),
        ("25_34", "25 tot 35 jaar", "25 to 34"),
        ("35_44", "35 tot 45 jaar", "35 to 44"),
        ("45_54", "45 tot 55 jaar", "45 to 54"),
        ("55_66", "55 tot 67 jaar", "55 to 66"),
        ("67_plus", "67 jaar of ouder (AOW-leeftijd)", "67 or older (state pension age)"),
    ),
    "migration_background": (
        ("nederland", "Nederland", "Netherlands"),
        ("europa", "Europa (exclusief Nederland)", "Europe (excluding the Netherlands)"),
        ("buiten_europa", "buiten Europa", "outside Europe"),
    ),
    "education_level": (
        ("low", "laag", "low"),
        ("medium", "middelbaar", "medium"),
        ("high", "hoog", "high"),
    ),
    "person_education_level": (
        ("low", "laag", "low"),
        ("medium", "middelbaar", "medium"),
        ("high", "hoog", "high"),
        ("not_applicable", "niet van toepassing (jonger dan 15)", "not applicable (under 15)"),
    ),
    "language_proficiency": (
        ("fluent", "moedertaal of vloeiend", "native or fluent"),
        ("good", "goed", "good"),
        ("moderate", "matig", "moderate"),
        ("limited", "beperkt", "limited"),
    ),
    "employment_status": (
        ("employed", "werknemer", "employee"),
        ("self_employed", "zelfstandige", "self-employed"),
        ("unemployed", "werkloos", "unemployed"),
        ("unable_to_work", "arbeidsongeschikt", "unable to work"),
        ("retired", "gepensioneerd", "retired"),
        ("student", "student", "student"),
        ("minor", "minderjarig", "minor"),
        ("other_inactive", "overig niet-actief", "other inactive"),
    ),
    "role": (
        ("main_earner", "hoofdkostwinner", "main earner"),
        ("partner", "partner", "partner"),
        ("child", "kind", "child"),
        ("other_adult", "overig lid (volwassen)", "other adult member"),
    ),
    "creditor_type": (
        ("health_insurer", "zorgverzekeraar", "health insurer"),
        ("energy", "energieleverancier", "energy supplier"),
        ("landlord", "verhuurder", "landlord"),
        ("water", "drinkwaterbedrijf", "water company"),
    ),
}

CATEGORIES: dict[str, tuple[str, ...]] = {k: tuple(c for c, _, _ in v) for k, v in _TABLE.items()}
CATEGORY_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    k: {c: (nl, en) for c, nl, en in v} for k, v in _TABLE.items()
}


def codes(column: str) -> tuple[str, ...]:
    """Return the codes of ``column`` in display order (``KeyError`` if it has none)."""
    return CATEGORIES[column]


def describe(column: str) -> str:
    """Describe in one line the codes of the codes with their Dutch and English labels, for the schema."""
    return "; ".join(f"{c} = {nl} / {en}" for c, nl, en in _TABLE[column])
