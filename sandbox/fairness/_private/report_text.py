"""The words of the HTML report in English and Dutch (Algoritmekader terms for the bias-analysis sections)."""

from __future__ import annotations

from sandbox._private.shared.errors import FairnessInputError

from .verdict import INSUFFICIENT

__all__ = ["text", "LANGS", "METRIC_NAMES", "DEFINITION_NAMES", "STATUS_NAMES", "INSUFFICIENT_LABEL"]

LANGS = ("en", "nl")

_TEXT: dict[str, dict[str, str]] = {
    "title": {"en": "Fairness audit", "nl": "Fairness-audit"},
    "summary": {"en": "Summary", "nl": "Samenvatting"},
    "verdict": {"en": "Verdict", "nl": "Oordeel"},
    "summary_intro": {
        "en": "This report checks whether the model's predictions treat groups of people differently. "
        "The policy '{policy}' chose the fairness definition '{definition}': {decisive} decides the verdict.",
        "nl": "Dit rapport toetst of de voorspellingen van het model groepen mensen verschillend behandelen. "
        "Het beleid '{policy}' koos de fairness-definitie '{definition}': {decisive} bepaalt het oordeel.",
    },
    "insufficient_why": {
        "en": "The verdict is 'review' only because the data are too few to tell: the intervals reach from a gap "
        "within the review threshold to one beyond the fail threshold, or groups are too small. A reviewer must not "
        "read this as a pass.",
        "nl": "Het oordeel is 'review' alleen omdat er te weinig gegevens zijn om het te bepalen: de intervallen "
        "lopen van een verschil binnen de reviewdrempel tot een verschil voorbij de afkeurdrempel, of groepen zijn "
        "te klein. Een reviewer mag dit niet lezen als goedgekeurd.",
    },
    "power": {"en": "Power", "nl": "Onderscheidend vermogen"},
    "power_intro": {
        "en": "The smallest gap by which one group can differ from the others and still be detected by this audit "
        "with {power}% probability:",
        "nl": "Het kleinste verschil waarmee één groep van de andere kan afwijken en dat deze audit met {power}% "
        "kans ontdekt:",
    },
    "power_line": {
        "en": "{attribute} ({definition}): {gap:.1f} percentage points (fail threshold {fail:.1f})",
        "nl": "{attribute} ({definition}): {gap:.1f} procentpunt (afkeurdrempel {fail:.1f})",
    },
    "power_none": {
        "en": "{attribute} ({definition}): no gap within the rate's range (fail threshold {fail:.1f} points)",
        "nl": "{attribute} ({definition}): geen verschil binnen het bereik van de maat (afkeurdrempel {fail:.1f} "
        "procentpunt)",
    },
    "power_miss": {
        "en": " — larger than the fail threshold: this audit could miss a gap of the threshold's size",
        "nl": " — groter dan de afkeurdrempel: deze audit kan een verschil van die omvang missen",
    },
    "about": {"en": "What this report belongs to", "nl": "Waar dit rapport bij hoort"},
    "meta_request": {"en": "release request", "nl": "vrijgaveverzoek"},
    "meta_model": {"en": "model", "nl": "model"},
    "meta_target": {"en": "target", "nl": "doelvariabele"},
    "meta_features": {"en": "features", "nl": "kenmerken (invoer)"},
    "meta_dataset": {"en": "dataset", "nl": "dataset"},
    "meta_dataset_version": {"en": "dataset version", "nl": "datasetversie"},
    "meta_author": {"en": "author", "nl": "auteur"},
    "meta_policy_sha256": {"en": "policy sha256", "nl": "sha256 van het beleid"},
    "meta_warning": {"en": "warning", "nl": "waarschuwing"},
    "meta_policy_mismatch": {
        "en": "the release is judged under policy {release}..., but this audit applied policy {audit}...: audit "
        "the model again under the release's policy",
        "nl": "de vrijgave wordt beoordeeld onder beleid {release}..., maar deze audit paste beleid {audit}... toe: "
        "audit het model opnieuw onder het beleid van de vrijgave",
    },
    "not_decisive": {"en": "does not decide", "nl": "beslist niet"},
    "detectable": {"en": "detectable gap (80% power)", "nl": "aantoonbaar verschil (80% kans)"},
    "evidence": {"en": "evidence", "nl": "bewijs"},
    "sufficient": {"en": "sufficient", "nl": "voldoende"},
    "insufficient": {"en": "insufficient", "nl": "onvoldoende"},
    "eo_note": {
        "en": "Equal opportunity (the true positive rate half of equalized odds) is part of each equalized-odds "
        "line and is not repeated; the audit's data keep it.",
        "nl": "Gelijke kansen (de helft van gelijke foutkansen die over terecht-positieven gaat) zit in elke regel "
        "van gelijke foutkansen en wordt niet herhaald; de gegevens van de audit bevatten het wel.",
    },
    "overall": {"en": "overall", "nl": "totaal"},
    "summary_pass": {
        "en": "No decisive gap between groups exceeds the review threshold, and each interval stays below the fail "
        "threshold.",
        "nl": "Geen beslissend verschil tussen groepen overschrijdt de reviewdrempel, en elk interval blijft onder "
        "de afkeurdrempel.",
    },
    "summary_findings": {"en": "What needs attention:", "nl": "Wat aandacht vraagt:"},
    "summary_groups": {
        "en": "{n_groups} groups in {n_facets} attributes and intersections were audited; {n_small} are below the "
        "minimum size of {min_size} and {n_sup} are suppressed by disclosure control.",
        "nl": "{n_groups} groepen in {n_facets} kenmerken en combinaties zijn geaudit; {n_small} zijn kleiner dan "
        "de minimumomvang van {min_size} en {n_sup} zijn onderdrukt door onthullingscontrole.",
    },
    "finding": {
        "en": "{attribute} ({definition}): the {rate} is {va:.1f}% for '{a}' and {vb:.1f}% for '{b}', a gap of "
        "{gap:.1f} percentage points ({conf}% interval {lo:.1f} to {hi:.1f}); verdict: {verdict}.",
        "nl": "{attribute} ({definition}): het {rate} is {va:.1f}% voor '{a}' en {vb:.1f}% voor '{b}', een verschil "
        "van {gap:.1f} procentpunt ({conf}%-interval {lo:.1f} tot {hi:.1f}); oordeel: {verdict}.",
    },
    "plain_selection_rate": {
        "en": "share of households the model selects",
        "nl": "aandeel huishoudens dat het model selecteert",
    },
    "plain_true_positive_rate": {
        "en": "share of real cases the model finds",
        "nl": "aandeel echte gevallen dat het model vindt",
    },
    "plain_false_positive_rate": {
        "en": "share of non-cases the model wrongly flags",
        "nl": "aandeel niet-gevallen dat het model ten onrechte aanwijst",
    },
    "plain_precision": {
        "en": "share of flagged households that are real cases",
        "nl": "aandeel aangewezen huishoudens dat echt een geval is",
    },
    "plots": {"en": "Figures", "nl": "Figuren"},
    "plot_groups": {
        "en": "Group rates with {conf}% intervals (decisive rates)",
        "nl": "Groepspercentages met {conf}%-intervallen (beslissende maten)",
    },
    "plot_disp": {
        "en": "Gaps between groups against the policy thresholds",
        "nl": "Verschillen tussen groepen tegenover de drempels van het beleid",
    },
    "direct": {"en": "Direct distinction", "nl": "Direct onderscheid"},
    "direct_unknown": {
        "en": "The model's features were not given to this audit (pass features=...), so direct use of protected "
        "attributes could not be checked here.",
        "nl": "De kenmerken van het model zijn niet aan deze audit meegegeven (features=...), dus direct gebruik "
        "van beschermde kenmerken is hier niet gecontroleerd.",
    },
    "direct_none": {
        "en": "The model uses none of the protected attributes and none of the forbidden features ({forbidden}).",
        "nl": "Het model gebruikt geen beschermde kenmerken en geen verboden kenmerken ({forbidden}).",
    },
    "direct_found": {
        "en": "The model uses protected attributes as features: {found}. This is direct distinction and needs a "
        "legal justification.",
        "nl": "Het model gebruikt beschermde kenmerken als invoer: {found}. Dit is direct onderscheid en vraagt "
        "een juridische rechtvaardiging.",
    },
    "indirect": {"en": "Indirect distinction (proxies)", "nl": "Indirect onderscheid (proxy's)"},
    "indirect_none": {
        "en": "No proxy check was run (pass features=... or use proxy_check).",
        "nl": "Er is geen proxycontrole uitgevoerd (geef features=... mee of gebruik proxy_check).",
    },
    "indirect_intro": {
        "en": "AUC of a one-feature classifier that predicts the protected attribute (cross-fitted, one group "
        "against the rest; the group it singles out best is shown); above {thr} is flagged as a proxy.",
        "nl": "AUC van een classifier met één kenmerk die het beschermde kenmerk voorspelt (kruisgevalideerd, één "
        "groep tegen de rest; de groep die het best wordt onderscheiden staat erbij); boven {thr} wordt het als "
        "proxy gemarkeerd.",
    },
    "definition": {"en": "Fairness definition and why", "nl": "Fairness-definitie en waarom"},
    "definition_none": {"en": "(the policy gives no reason)", "nl": "(het beleid geeft geen reden)"},
    "significance": {"en": "Significance", "nl": "Significantie"},
    "significance_intro": {
        "en": "Each group's rate has its own exact {conf}% interval (Clopper-Pearson; with DP noise widened by it), "
        "valid at every group size. The gaps between groups have {conf}% intervals that hold simultaneously for "
        "every pair of groups in every attribute and intersection of a metric: the largest gap of noise between "
        "equal groups is allowed for, so the test 'the interval excludes 0' raises a false alarm in at most "
        "{alpha}% of audits of a model that treats all groups equally (critical value from {n_boot} bootstrap "
        "resamples of the confusion counts{noise}). Intervals stay within the range of the quantity. The verdict "
        "rule:",
        "nl": "Het percentage van elke groep heeft een eigen exact {conf}%-interval (Clopper-Pearson; bij "
        "DP-ruis daarmee verbreed), geldig bij elke groepsgrootte. De verschillen tussen groepen hebben "
        "{conf}%-intervallen die tegelijk gelden voor elk paar groepen in elk kenmerk en elke combinatie van een "
        "maat: het grootste toevalsverschil tussen gelijke groepen is ingecalculeerd, dus de toets 'het interval "
        "bevat 0 niet' geeft bij hooguit {alpha}% van de audits van een model dat alle groepen gelijk behandelt "
        "vals alarm (kritieke waarde uit {n_boot} bootstrapsteekproeven van de verwarringstellingen{noise}). "
        "Intervallen blijven binnen het bereik van de grootheid. De regel voor het oordeel:",
    },
    "with_noise": {"en": " with fresh DP noise", "nl": " met nieuwe DP-ruis"},
    "rule": {
        "en": "fail: the gap exceeds the fail threshold and its interval excludes 0. pass: the gap is within the "
        "review threshold, its interval stays at or below the fail threshold, and every group is large enough with "
        "every rate defined. review: otherwise (not significant; above the review threshold; an interval reaching "
        "beyond the fail threshold; or a group too small, suppressed or undefined). A review that comes only from "
        "too little data is marked 'insufficient evidence: this audit cannot show the model is fair'.",
        "nl": "afgekeurd: het verschil overschrijdt de afkeurdrempel en het interval bevat 0 niet. goedgekeurd: het "
        "verschil ligt binnen de reviewdrempel, het interval blijft op of onder de afkeurdrempel, en elke groep is "
        "groot genoeg met elke maat gedefinieerd. review: anders (niet significant; boven de reviewdrempel; een "
        "interval voorbij de afkeurdrempel; of een groep te klein, onderdrukt of ongedefinieerd). Een review die "
        "alleen uit te weinig gegevens voortkomt, krijgt 'onvoldoende bewijs: deze audit kan niet aantonen dat het "
        "model eerlijk is'.",
    },
    "calibration": {"en": "Calibration by group", "nl": "Kalibratie per groep"},
    "limitations": {"en": "Limitations", "nl": "Beperkingen"},
    "limit_base": {
        "en": "Group rates are compared one attribute or intersection at a time; groups below the minimum size are "
        "shown but not used for the verdict. A fair score on these metrics does not show that the labels "
        "themselves are unbiased.",
        "nl": "Groepen worden per kenmerk of combinatie vergeleken; groepen onder de minimumomvang worden getoond "
        "maar tellen niet mee voor het oordeel. Gelijke maten tonen niet aan dat de labels zelf zonder bias zijn.",
    },
    "tables": {"en": "Tables", "nl": "Tabellen"},
    "disparities": {"en": "Disparities", "nl": "Verschillen"},
    "by_group": {"en": "Metrics by group", "nl": "Maten per groep"},
    "undefined": {"en": "undefined", "nl": "ongedefinieerd"},
    "suppressed": {"en": "suppressed", "nl": "onderdrukt"},
    "small": {"en": "small", "nl": "klein"},
    "ok": {"en": "ok", "nl": "ok"},
    "attribute": {"en": "attribute", "nl": "kenmerk"},
    "group": {"en": "group", "nl": "groep"},
    "status": {"en": "status", "nl": "status"},
    "metric": {"en": "metric", "nl": "maat"},
    "reference": {"en": "reference", "nl": "referentie"},
    "difference": {"en": "difference", "nl": "verschil"},
    "ratio": {"en": "ratio", "nl": "verhouding"},
    "groups": {"en": "groups compared", "nl": "vergeleken groepen"},
    "reason": {"en": "reason", "nl": "reden"},
    "note": {"en": "note", "nl": "toelichting"},
    "thresholds": {"en": "review / fail", "nl": "review / afkeur"},
    "decisive": {"en": "decisive", "nl": "beslissend"},
    "feature": {"en": "feature", "nl": "kenmerk (model)"},
    "flagged": {"en": "proxy", "nl": "proxy"},
    "between_groups": {"en": "between groups", "nl": "tussen groepen"},
    "to_overall": {"en": "to overall", "nl": "t.o.v. totaal"},
    "yes": {"en": "yes", "nl": "ja"},
    "no": {"en": "no", "nl": "nee"},
    "and": {"en": "and", "nl": "en"},
}

METRIC_NAMES: dict[str, dict[str, str]] = {
    "count": {"en": "n", "nl": "n"},
    "base_rate": {"en": "base rate", "nl": "basisfrequentie"},
    "selection_rate": {"en": "selection rate", "nl": "selectiepercentage"},
    "true_positive_rate": {"en": "true positive rate", "nl": "terecht-positief-ratio"},
    "false_positive_rate": {"en": "false positive rate", "nl": "fout-positief-ratio"},
    "false_negative_rate": {"en": "false negative rate", "nl": "fout-negatief-ratio"},
    "precision": {"en": "precision", "nl": "precisie"},
    "accuracy": {"en": "accuracy", "nl": "juistheid"},
    "demographic_parity": {"en": "demographic parity", "nl": "gelijke uitkomsten (demografische pariteit)"},
    "equalized_odds": {"en": "equalized odds", "nl": "gelijke foutkansen (equalized odds)"},
    "equal_opportunity": {"en": "equal opportunity", "nl": "gelijke kansen (equal opportunity)"},
    "predictive_parity": {"en": "predictive parity", "nl": "voorspellende pariteit"},
    "mean_score": {"en": "mean score", "nl": "gemiddelde score"},
    "calibration_difference": {"en": "mean score − base rate", "nl": "gemiddelde score − basisfrequentie"},
    "ece": {"en": "expected calibration error", "nl": "verwachte kalibratiefout"},
}

DEFINITION_NAMES = {
    "equal_outcomes": {"en": "equal outcomes", "nl": "gelijke uitkomsten"},
    "equal_error_rates": {"en": "equal error rates", "nl": "gelijke foutpercentages"},
}

STATUS_NAMES = {
    "pass": {"en": "pass", "nl": "goedgekeurd"},
    "review": {"en": "review", "nl": "review nodig"},
    "fail": {"en": "fail", "nl": "afgekeurd"},
    "": {"en": "—", "nl": "—"},
}

#: The label of a review from too little data (the same text as the verdict's reason and the audit dict).
INSUFFICIENT_LABEL = INSUFFICIENT


def text(key: str, lang: str, **fields: object) -> str:
    """Return the text ``key`` in ``lang`` with ``fields`` filled in (the caller escapes it for HTML)."""
    if lang not in LANGS:
        raise FairnessInputError(f"lang must be one of {LANGS}, got {lang!r}")
    return _TEXT[key][lang].format(**fields)
