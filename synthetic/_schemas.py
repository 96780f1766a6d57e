"""The public schemas of the synthetic population tables.

These are what the vault registers and what dummy data is drawn from: column kinds, public bounds, every
category, the privacy unit (the household) and Dutch and English labels. Bounds are fixed public constants,
never derived from generated rows; the generator clips (top-codes) its values to them.
"""

from __future__ import annotations

from sandbox import Column, TableSchema

from ._categories import CATEGORY_LABELS, codes, describe

__all__ = [
    "MAX_HOUSEHOLDS",
    "MAX_PERSONS_PER_HOUSEHOLD",
    "BOUNDS",
    "population_schemas",
    "ground_truth_schema",
]

MAX_HOUSEHOLDS = 99_999_999
MAX_PERSONS_PER_HOUSEHOLD = 7
#: Public bounds (inclusive) of the numeric columns; the generator clips to these.
BOUNDS: dict[str, tuple[float, float]] = {
    "household_id": (1, MAX_HOUSEHOLDS),
    "person_id": (10, MAX_HOUSEHOLDS * 10 + 9),
    "n_adults": (1, 4),
    "n_children": (0, 5),
    "disposable_income": (0.0, 250_000.0),
    "savings_buffer": (0.0, 500_000.0),
    "fixed_costs": (0.0, 6_000.0),
    "total_debt": (0.0, 500_000.0),
    "n_creditors": (0, 60),
    "age": (18, 105),
    "person_age": (0, 105),
    "arrears": (0, 12),
    "n_signals": (0, 48),
    "month": (1, 12),
    "amount": (0.0, 20_000.0),
    "probability": (0.0, 1.0),
}


def _num(name: str, kind: str, nl: str, en: str, bounds: str | None = None, desc: str = "") -> Column:
    lo, hi = BOUNDS[bounds or name]
    return Column(name, kind, nl, en, lower=lo, upper=hi, description=desc)  # type: ignore[arg-type]


def _cat(name: str, nl: str, en: str, codes_of: str | None = None, desc: str = "") -> Column:
    key = codes_of or name
    text = f"{desc} Codes: {describe(key)}." if desc else f"Codes: {describe(key)}."
    labels = CATEGORY_LABELS[key]
    cats = codes(key)
    return Column(
        name,
        "category",
        nl,
        en,
        categories=cats,
        description=text,
        category_labels_nl=tuple(labels[c][0] for c in cats),
        category_labels_en=tuple(labels[c][1] for c in cats),
    )


def _bool(name: str, nl: str, en: str, desc: str = "") -> Column:
    return Column(name, "bool", nl, en, description=desc)


def _household_columns() -> tuple[Column, ...]:
    return (
        _num("household_id", "id", "huishoudnummer", "household id"),
        _cat("municipality", "gemeente (G4 of grootteklasse)", "municipality (four largest or size class)"),
        _cat("urbanisation", "stedelijkheid (CBS)", "urbanisation (CBS classes)"),
        _cat(
            "neighbourhood_deprivation",
            "achterstand van de buurt",
            "neighbourhood deprivation",
            desc="Known proxy: correlated with migration background.",
        ),
        _cat("household_type", "type huishouden", "household type"),
        _num(
            "n_adults",
            "int",
            "aantal volwassenen",
            "number of adults",
            desc="Main earner, partner and other adult members; adult children living at home count as children.",
        ),
        _num("n_children", "int", "aantal kinderen", "number of children", desc="Children living at home, any age."),
        _cat("housing", "woonsituatie", "housing tenure"),
        _cat("income_source", "voornaamste inkomensbron hoofdkostwinner", "main income source of the main earner"),
        _num(
            "disposable_income",
            "float",
            "gestandaardiseerd besteedbaar inkomen (euro per jaar)",
            "standardised disposable income (euro per year)",
            desc="Top-coded at the upper bound.",
        ),
        _cat("income_band", "inkomensklasse", "income band"),
        _bool(
            "poverty",
            "onder de armoedegrens",
            "below the poverty line",
            desc=(
                "Standardised disposable income below the scenario's poverty line and a savings buffer below one "
                "year of the line (the CBS/SCP/Nibud method: a household below the line with a year's buffer is "
                "not poor)."
            ),
        ),
        _num("savings_buffer", "float", "spaarbuffer (euro)", "savings buffer (euro)"),
        _num("fixed_costs", "float", "vaste lasten (euro per maand)", "fixed costs (euro per month)"),
        _num("total_debt", "float", "totale schuld exclusief hypotheek (euro)", "total debt excluding mortgage (euro)"),
        _num("n_creditors", "int", "aantal schuldeisers", "number of creditors"),
        _cat("gender", "geslacht hoofdkostwinner", "gender of the main earner"),
        _num("age", "int", "leeftijd hoofdkostwinner", "age of the main earner"),
        _cat("age_band", "leeftijdsklasse hoofdkostwinner", "age band of the main earner"),
        _cat(
            "migration_background",
            "migratieachtergrond hoofdkostwinner (CBS 2022)",
            "migration background of the main earner (CBS 2022)",
        ),
        _cat("education_level", "opleidingsniveau hoofdkostwinner", "education level of the main earner"),
        _cat(
            "language_proficiency",
            "taalvaardigheid Nederlands hoofdkostwinner",
            "Dutch language proficiency of the main earner",
            desc="Known proxy for migration background.",
        ),
        _bool("disability", "beperking hoofdkostwinner", "disability of the main earner"),
        _num(
            "arrears_health_insurance",
            "int",
            "maanden met betalingsachterstand zorgverzekering",
            "months with health-insurance arrears",
            bounds="arrears",
        ),
        _num(
            "arrears_energy",
            "int",
            "maanden met betalingsachterstand energie",
            "months with energy arrears",
            bounds="arrears",
        ),
        _num("arrears_landlord", "int", "maanden met huurachterstand", "months with rent arrears", bounds="arrears"),
        _num(
            "arrears_water",
            "int",
            "maanden met betalingsachterstand drinkwater",
            "months with water arrears",
            bounds="arrears",
        ),
        _num("n_signals", "int", "aantal vroegsignalen in 12 maanden", "early-warning signals in 12 months"),
        _bool(
            "registered_problematic_debt",
            "geregistreerde problematische schulden",
            "registered problematic debt",
            desc="The observed label; may carry label bias (see the scenario).",
        ),
        _bool("applied_debt_assistance", "aanvraag schuldhulpverlening", "applied for debt assistance"),
    )


def _person_columns() -> tuple[Column, ...]:
    return (
        _num("person_id", "id", "persoonsnummer", "person id", desc="household_id * 10 + position in household."),
        _num("household_id", "id", "huishoudnummer", "household id"),
        _cat("role", "positie in huishouden", "role in household"),
        _cat("gender", "geslacht", "gender"),
        _num("age", "int", "leeftijd", "age", bounds="person_age"),
        _cat("migration_background", "migratieachtergrond (CBS 2022)", "migration background (CBS 2022)"),
        _cat("education_level", "opleidingsniveau", "education level", codes_of="person_education_level"),
        _cat("employment_status", "arbeidspositie", "employment status"),
        _cat("language_proficiency", "taalvaardigheid Nederlands", "Dutch language proficiency"),
        _bool("disability", "beperking", "disability"),
    )


def _signal_columns() -> tuple[Column, ...]:
    return (
        _num("household_id", "id", "huishoudnummer", "household id"),
        _num("month", "int", "maand", "month"),
        _cat("creditor_type", "soort schuldeiser", "creditor type"),
        _num("amount", "float", "achterstallig bedrag (euro)", "amount in arrears (euro)"),
    )


def population_schemas() -> dict[str, TableSchema]:
    """Return the public schemas of the protected tables ``households``, ``persons`` and ``signals``.

    Returns
    -------
    dict of str to TableSchema
        Keyed by table name. The privacy unit of every table is the household (``household_id``).
    """
    households = TableSchema(
        "households",
        "huishoudens",
        "households",
        "household",
        "household_id",
        1,
        _household_columns(),
        primary_key=("household_id",),
        description="One row per household: the main earner's characteristics, 12-month arrears and outcomes.",
    )
    persons = TableSchema(
        "persons",
        "personen",
        "persons",
        "household",
        "household_id",
        MAX_PERSONS_PER_HOUSEHOLD,
        _person_columns(),
        primary_key=("person_id",),
        description="Members of each household.",
    )
    signals = TableSchema(
        "signals",
        "vroegsignalen",
        "early-warning arrears signals",
        "household",
        "household_id",
        48,
        _signal_columns(),
        primary_key=("household_id", "month", "creditor_type"),
        description="Payment-arrears signals (vroegsignalering) over 12 months; at most one per creditor per month.",
    )
    return {"households": households, "persons": persons, "signals": signals}


def ground_truth_schema() -> TableSchema:
    """Return the schema of the ground-truth table: kept apart, never registered as a protected dataset."""
    cols = (
        _num("household_id", "id", "huishoudnummer", "household id"),
        _bool("true_problematic_debt", "werkelijke problematische schulden", "true problematic debt"),
        _num(
            "p_true_debt",
            "float",
            "kans op problematische schulden",
            "probability of problematic debt",
            bounds="probability",
        ),
        _num(
            "p_registered",
            "float",
            "kans op registratie",
            "probability of registration given the truth",
            bounds="probability",
            desc="Depends on group only through the scenario's label bias.",
        ),
    )
    return TableSchema(
        "ground_truth",
        "grondwaarheid",
        "ground truth",
        "household",
        "household_id",
        1,
        cols,
        primary_key=("household_id",),
        description="Latent truth for measuring label bias. Never a protected dataset.",
    )
