"""The words of the review page in Dutch and English, the choice of language, and the schema's labels.

:func:`t` looks a key up (a missing key or language is a ``KeyError``: a test checks that both languages have every
key). :func:`choose_lang` takes ``?lang=`` first, then the browser's ``Accept-Language``, then Dutch. Column names
are shown with the schema's label in the page's language where the schema has one (:class:`Labels`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TEXT", "t", "t_or", "choose_lang", "Labels", "DEFAULT_LANG", "LANGS"]

LANGS = ("nl", "en")
DEFAULT_LANG = "nl"

TEXT: dict[str, dict[str, str]] = {
    "title": {"en": "Release review", "nl": "Beoordeling van vrijgaveverzoeken"},
    "subtitle": {"en": "Analysis sandbox · reviewer page", "nl": "Analyseomgeving · pagina voor reviewers"},
    "other_lang": {"en": "Nederlands", "nl": "English"},
    "token": {"en": "Reviewer token", "nl": "Token van de reviewer"},
    "login": {"en": "Log in", "nl": "Inloggen"},
    "logout": {"en": "Log out", "nl": "Uitloggen"},
    "token_note": {
        "en": "The token stays in this tab's memory, never in a cookie.",
        "nl": "Het token blijft in het geheugen van dit tabblad, nooit in een cookie.",
    },
    "requests": {"en": "Requests", "nl": "Verzoeken"},
    "show_closed": {"en": "also closed requests", "nl": "ook afgesloten verzoeken"},
    "no_requests": {"en": "No requests are waiting for review.", "nl": "Er wachten geen verzoeken op beoordeling."},
    "pick": {"en": "Pick a request to read it.", "nl": "Kies een verzoek om het te lezen."},
    "loading": {"en": "Loading…", "nl": "Laden…"},
    "col_title": {"en": "Title", "nl": "Titel"},
    "col_author": {"en": "Author", "nl": "Auteur"},
    "col_status": {"en": "Status", "nl": "Status"},
    "col_reviews": {"en": "Reviews", "nl": "Beoordelingen"},
    "col_gate": {"en": "Gate", "nl": "Poort"},
    "of": {"en": "of", "nl": "van"},
    "col_value": {"en": "value (DP)", "nl": "waarde (DP)"},
    "col_noise_scale": {"en": "noise scale", "nl": "ruisschaal"},
    "col_ci95": {"en": "95% margin", "nl": "95%-marge"},
    # request header
    "purpose": {"en": "Purpose", "nl": "Doel"},
    "justification": {"en": "Justification", "nl": "Onderbouwing"},
    "author": {"en": "Author", "nl": "Auteur"},
    "created": {"en": "Created", "nl": "Aangemaakt"},
    "round": {"en": "round", "nl": "ronde"},
    "gate_verdict": {"en": "Gate verdict", "nl": "Oordeel van de poort"},
    "reviews_in": {"en": "{n} of {k} reviews in", "nl": "{n} van {k} beoordelingen binnen"},
    "contents": {"en": "On this page", "nl": "Op deze pagina"},
    # warnings
    "warnings": {"en": "Read before you decide", "nl": "Lees dit voordat u besluit"},
    "not_independent": {"en": "Not independently reviewed", "nl": "Niet onafhankelijk beoordeeld"},
    "not_approvable": {
        "en": "This request fails the exact disclosure checks and cannot be approved: reject it or return it.",
        "nl": "Dit verzoek faalt voor de exacte onthullingscontrole en kan niet worden goedgekeurd: wijs het af of "
        "stuur het terug.",
    },
    "blocked": {
        "en": "The gate blocked this request; it cannot be reviewed.",
        "nl": "De poort heeft dit verzoek geblokkeerd; het kan niet worden beoordeeld.",
    },
    # sections
    "sec_model": {"en": "Model card", "nl": "Modelkaart"},
    "sec_fairness": {"en": "Fairness audit", "nl": "Fairness-audit"},
    "sec_reports": {"en": "Fairness reports", "nl": "Fairnessrapporten"},
    "sec_tables": {"en": "Tables", "nl": "Tabellen"},
    "sec_spend": {"en": "Privacy spend", "nl": "Privacybudget"},
    "sec_sdc": {"en": "Disclosure control (SDC)", "nl": "Onthullingscontrole (SDC)"},
    "sec_gate": {"en": "Gate checks", "nl": "Controles van de poort"},
    "sec_provenance": {"en": "Provenance", "nl": "Herkomst"},
    "sec_votes": {"en": "Votes and comments", "nl": "Stemmen en opmerkingen"},
    "sec_decision": {"en": "Decision", "nl": "Besluit"},
    # model card
    "estimator": {"en": "Estimator", "nl": "Modeltype"},
    "target": {"en": "Target", "nl": "Doelvariabele"},
    "features": {"en": "Features", "nl": "Kenmerken"},
    "classes": {"en": "Classes", "nl": "Klassen"},
    "positive": {"en": "positive decision", "nl": "positieve beslissing"},
    "coefficients": {"en": "Largest coefficients", "nl": "Grootste coëfficiënten"},
    "coef_note": {
        "en": "{n} of {total}, by size; on features scaled to 0–1 (DP parameters)",
        "nl": "{n} van {total}, naar grootte; op kenmerken geschaald naar 0–1 (DP-parameters)",
    },
    "intercept": {"en": "Intercept", "nl": "Intercept"},
    "dataset": {"en": "Dataset", "nl": "Dataset"},
    "version": {"en": "version", "nl": "versie"},
    "mechanism": {"en": "Mechanism", "nl": "Mechanisme"},
    "preprocessing": {"en": "Preprocessing", "nl": "Voorbewerking"},
    "run": {"en": "Study run", "nl": "Studierun"},
    "quality": {"en": "Quality (DP)", "nl": "Kwaliteit (DP)"},
    "quality_note": {
        "en": "On households held out of the fit by a public rule on the household id; ε {eps} of the fit's, "
        "± noise sd",
        "nl": "Op huishoudens die een openbare regel op het huishoudnummer buiten de fit hield; ε {eps} van de fit, "
        "± sd van de ruis",
    },
    "q_n": {"en": "Held-out rows (noisy)", "nl": "Achtergehouden rijen (met ruis)"},
    "q_accuracy": {"en": "Accuracy (threshold 0.5)", "nl": "Nauwkeurigheid (drempel 0,5)"},
    "q_auc": {"en": "AUC (binned ROC)", "nl": "AUC (ROC in klassen)"},
    "q_ece": {"en": "Calibration error", "nl": "Kalibratiefout"},
    "q_rmse": {"en": "RMSE", "nl": "RMSE"},
    "feature": {"en": "Feature", "nl": "Kenmerk"},
    "coefficient": {"en": "Coefficient", "nl": "Coëfficiënt"},
    "yes": {"en": "yes", "nl": "ja"},
    "no": {"en": "no", "nl": "nee"},
    # fairness
    "audit_of": {"en": "Audit {id} of model {model}", "nl": "Audit {id} van model {model}"},
    "fair_verdict": {"en": "Fairness verdict", "nl": "Oordeel fairness"},
    "definition": {"en": "Definition", "nl": "Definitie"},
    "gap_chart": {"en": "Gaps between groups", "nl": "Verschillen tussen groepen"},
    "gap_axis": {"en": "difference between groups", "nl": "verschil tussen groepen"},
    "rate_chart": {"en": "{metric} per group", "nl": "{metric} per groep"},
    "interval_note": {
        "en": "Bars are {conf}% intervals (with the DP noise); a dot is the DP estimate.",
        "nl": "Balken zijn {conf}%-intervallen (met de DP-ruis); een stip is de DP-schatting.",
    },
    "review_threshold": {"en": "review threshold", "nl": "reviewdrempel"},
    "fail_threshold": {"en": "fail threshold", "nl": "afkeurdrempel"},
    "overall": {"en": "overall", "nl": "totaal"},
    "suppressed": {"en": "suppressed", "nl": "onderdrukt"},
    "group": {"en": "Group", "nl": "Groep"},
    "attribute": {"en": "Attribute", "nl": "Kenmerk"},
    "groups": {"en": "Groups", "nl": "Groepen"},
    "difference": {"en": "Difference", "nl": "Verschil"},
    "verdict": {"en": "Verdict", "nl": "Oordeel"},
    "reason": {"en": "Reason", "nl": "Reden"},
    "count": {"en": "Count", "nl": "Aantal"},
    "proxies": {"en": "Possible proxies", "nl": "Mogelijke proxy's"},
    "auc": {"en": "AUC", "nl": "AUC"},
    "flagged": {"en": "Flagged", "nl": "Gemarkeerd"},
    "no_proxies": {"en": "No proxy check in this audit.", "nl": "Geen proxycontrole in deze audit."},
    "report_nl": {"en": "Fairness report (Dutch)", "nl": "Fairnessrapport (Nederlands)"},
    "report_en": {"en": "Fairness report (English)", "nl": "Fairnessrapport (Engels)"},
    "report_note": {
        "en": "The full reports, rendered by the vault from the audit's DP numbers; they open in a new tab.",
        "nl": "De volledige rapporten, door de kluis gemaakt uit de DP-cijfers van de audit; ze openen in een "
        "nieuw tabblad.",
    },
    # spend, sdc, provenance
    "item": {"en": "Item", "nl": "Onderdeel"},
    "kind": {"en": "Kind", "nl": "Soort"},
    "noise": {"en": "Noise scale", "nl": "Ruisschaal"},
    "total": {"en": "Total", "nl": "Totaal"},
    "budget_line": {
        "en": "Budget of {dataset}: ε {spent} of {total} spent, {remaining} left.",
        "nl": "Budget van {dataset}: ε {spent} van {total} besteed, {remaining} over.",
    },
    "cell": {"en": "Cell", "nl": "Cel"},
    "no_findings": {"en": "No disclosure findings.", "nl": "Geen bevindingen."},
    "exact_only": {
        "en": "Exact findings on the true data: for reviewers only. Do not quote them in a comment (the analyst "
        "reads comments).",
        "nl": "Exacte bevindingen op de echte gegevens: alleen voor reviewers. Citeer ze niet in een opmerking (de "
        "analist leest opmerkingen).",
    },
    "analyst_told": {"en": "Analyst was told", "nl": "Analist kreeg te horen"},
    "exact_verdict": {"en": "Exact checks", "nl": "Exacte controle"},
    "flags": {"en": "Flags on the author", "nl": "Signalen over de auteur"},
    "flags_all": {"en": "Flags on analysts", "nl": "Signalen over analisten"},
    "flag_line": {
        "en": "{analyst} on {dataset}, {day}: {blocked} blocked and {exact} failing the exact checks, of {requests} "
        "requests",
        "nl": "{analyst} op {dataset}, {day}: {blocked} geblokkeerd en {exact} gezakt voor de exacte controle, van "
        "{requests} verzoeken",
    },
    "no_quote": {
        "en": "Votes and comments are shown to the analyst: do not quote the exact findings.",
        "nl": "Stemmen en opmerkingen ziet de analist: citeer de exacte bevindingen niet.",
    },
    "query": {"en": "Query", "nl": "Vraag"},
    "result_sha": {"en": "Result sha256", "nl": "sha256 van het resultaat"},
    "no_votes": {"en": "No votes visible yet.", "nl": "Nog geen zichtbare stemmen."},
    "votes_hidden": {
        "en": "Votes stay hidden until all required reviews are in.",
        "nl": "Stemmen blijven verborgen tot alle vereiste beoordelingen binnen zijn.",
    },
    "response": {"en": "response of the author", "nl": "reactie van de auteur"},
    # decision
    "comment_label": {
        "en": "Your reasons (required): what did you check, and why do you decide so?",
        "nl": "Uw toelichting (verplicht): wat heeft u gecontroleerd, en waarom besluit u zo?",
    },
    "comment_rule": {
        "en": "The vault refuses a decision without reasons: at least 20 letters and 3 words beyond 'ok', 'lgtm', "
        "'prima' and the like; an approval in your own words. The author reads your comment.",
        "nl": "De kluis weigert een besluit zonder toelichting: minstens 20 letters en 3 woorden naast 'ok', "
        "'lgtm', 'prima' en dergelijke; een goedkeuring in uw eigen woorden. De auteur leest uw opmerking.",
    },
    "approve": {"en": "Approve", "nl": "Goedkeuren"},
    "return": {"en": "Return to author", "nl": "Terugsturen"},
    "reject": {"en": "Reject", "nl": "Afwijzen"},
    "comment": {"en": "Comment only", "nl": "Alleen opmerking"},
    "standard_reason": {"en": "Use the standard reason", "nl": "Standaardreden gebruiken"},
    "done": {
        "en": "{action}: recorded. The request is now {status}.",
        "nl": "{action}: vastgelegd. Het verzoek is nu {status}.",
    },
    "refused": {"en": "Refused: {message}", "nl": "Geweigerd: {message}"},
    "closed": {"en": "This request is closed.", "nl": "Dit verzoek is afgesloten."},
    # values
    "st_pending_review": {"en": "waiting for review", "nl": "wacht op beoordeling"},
    "st_submitted": {"en": "submitted", "nl": "ingediend"},
    "st_partially_reviewed": {"en": "partly reviewed", "nl": "deels beoordeeld"},
    "st_reviewed": {"en": "reviewed, split", "nl": "beoordeeld, verdeeld"},
    "st_approved": {"en": "approved", "nl": "goedgekeurd"},
    "st_released": {"en": "released", "nl": "vrijgegeven"},
    "st_rejected": {"en": "rejected", "nl": "afgewezen"},
    "st_returned": {"en": "returned", "nl": "teruggestuurd"},
    "st_withdrawn": {"en": "withdrawn", "nl": "ingetrokken"},
    "st_blocked": {"en": "blocked", "nl": "geblokkeerd"},
    "st_draft": {"en": "draft", "nl": "concept"},
    "v_pass": {"en": "pass", "nl": "geslaagd"},
    "v_review": {"en": "review", "nl": "beoordelen"},
    "v_fail": {"en": "fail", "nl": "afgekeurd"},
    "k_aggregate": {"en": "table", "nl": "tabel"},
    "k_model": {"en": "model", "nl": "model"},
    "k_audit": {"en": "fairness audit", "nl": "fairness-audit"},
    "a_approve": {"en": "Approval", "nl": "Goedkeuring"},
    "a_return": {"en": "Return", "nl": "Terugsturen"},
    "a_reject": {"en": "Rejection", "nl": "Afwijzing"},
    "a_comment": {"en": "Comment", "nl": "Opmerking"},
    "m_selection_rate": {"en": "Selection rate", "nl": "Selectiepercentage"},
    "m_true_positive_rate": {"en": "True positive rate", "nl": "Terecht-positief-ratio"},
    "m_false_positive_rate": {"en": "False positive rate", "nl": "Fout-positief-ratio"},
    "m_precision": {"en": "Precision", "nl": "Precisie"},
    "m_demographic_parity": {"en": "demographic parity", "nl": "demografische pariteit"},
    "m_equalized_odds": {"en": "equalized odds", "nl": "gelijke foutkansen"},
    "m_equal_opportunity": {"en": "equal opportunity", "nl": "gelijke kansen"},
    "m_predictive_parity": {"en": "predictive parity", "nl": "voorspellende pariteit"},
    "e_logistic_regression": {"en": "Logistic regression (DP)", "nl": "Logistische regressie (DP)"},
    "e_linear_regression": {"en": "Linear regression (DP)", "nl": "Lineaire regressie (DP)"},
    "e_gaussian_nb": {"en": "Naive Bayes (DP)", "nl": "Naive Bayes (DP)"},
    "e_random_forest": {"en": "Random forest (DP)", "nl": "Random forest (DP)"},
}


def t(key: str, lang: str, **values: Any) -> str:
    """Return the text of ``key`` in ``lang``, with ``{name}`` fields filled from ``values``."""
    text = TEXT[key][lang]
    return text.format(**values) if values else text


def t_or(key: str, lang: str, fallback: str) -> str:
    """Return the text of ``key`` in ``lang``, or ``fallback`` when there is no such key (a value's own name)."""
    entry = TEXT.get(key)
    return entry[lang] if entry else fallback


def choose_lang(query: str | None, accept_language: str | None) -> str:
    """Pick the page's language: ``?lang=``, else the first of ``nl``/``en`` in ``Accept-Language``, else Dutch."""
    if query in LANGS:
        return query
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGS:
            return code
    return DEFAULT_LANG


@dataclass(frozen=True)
class Labels:
    """Display names of columns from the public schemas of the request's datasets, in one language."""

    lang: str
    columns: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_schemas(cls, schemas: Iterable[str], lang: str) -> Labels:
        """Collect ``label_nl``/``label_en`` of every column of the given schema JSON texts."""
        out: dict[str, str] = {}
        for text in schemas:
            try:
                schema = json.loads(text)
            except ValueError:
                continue
            for col in schema.get("columns", []) if isinstance(schema, dict) else []:
                label = col.get(f"label_{lang}") if isinstance(col, dict) else None
                if isinstance(label, str) and label and isinstance(col.get("name"), str):
                    out.setdefault(col["name"], label)
        return cls(lang, out)

    def column(self, name: str) -> str:
        """Return the column's label, or its name when the schema has none (or the label is just the name)."""
        return self.columns.get(name, name)

    def facet(self, name: str) -> str:
        """Label an attribute or an intersection (``gender × migration_background``) part by part."""
        return " × ".join(self.column(p.strip()) for p in name.split("×"))

    def feature(self, name: str) -> str:
        """Label a model input: ``income_band=below_15k`` becomes ``Inkomensklasse = below_15k``."""
        column, sep, value = name.partition("=")
        return f"{self.column(column)} = {value}" if sep else self.column(column)
