"""The fields of the Algoritmeregister publication standard 1.0, as a table that drives filling, checks and pages.

The facts (field names, Dutch titles, maximum lengths, permitted values, which fields are required, the two
link-list item shapes) are those of ``backend/app/schemas/config/v1_0.json`` in MinBZK/Algoritmeregister, read
at commit ``be01f3a18e93754da2fd7463645ec3a49247d8dc`` (2025-08-29; repository head 4885a05 of 2025-09-03). The
English labels, the hints and the source of each field are this project's own.

The register counts a length on the text without HTML tags. The sandbox writes plain text, so its count (every
character, line breaks included) is never below the register's: a draft that passes here passes there.

Who fills a field (``source`` and ``author``):

* ``request``, ``spec``, ``audit``, ``policy``: the sandbox writes the field (or its first part) from the release
  request, the model spec, the released fairness audit or the policy;
* ``standard``: the value is fixed by the standard (language ``nld``, version ``1.0``);
* ``register``: the register assigns it on publication (``lars``, ``publication_dt``); a draft never has it;
* ``author``: only the author can give it.

``author`` says what the author may do: ``"gives"`` an author-only field; ``"adds"`` a paragraph after the
sandbox's text; ``"must_add"`` the same, but the field is incomplete without it; ``"none"`` nothing (the
sandbox's value stands; to change it, change its source).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "STANDARD_VERSION",
    "STANDARD_SOURCE",
    "FIELDS",
    "FIELD_NAMES",
    "LinkItem",
    "RegisterField",
    "field_spec",
    "author_fields_help",
]

STANDARD_VERSION = "1.0"
STANDARD_SOURCE = (
    "MinBZK/Algoritmeregister backend/app/schemas/config/v1_0.json @ be01f3a18e93754da2fd7463645ec3a49247d8dc"
)

Kind = Literal["text", "choice", "choices", "links"]
Source = Literal["request", "spec", "audit", "policy", "standard", "register", "author"]
AuthorRole = Literal["none", "gives", "adds", "must_add"]
Format = Literal["", "month", "url", "contact"]


@dataclass(frozen=True)
class LinkItem:
    """The shape of one entry of a link list: a title and a link, each with its limit and whether it is needed."""

    title_max: int | None
    title_required: bool
    link_max: int
    link_required: bool


@dataclass(frozen=True)
class RegisterField:
    """One field of the standard: its name, labels, limits, who fills it and a hint for the author.

    Parameters
    ----------
    name : str
        The standard's field name (the JSON key).
    label_nl, label_en : str
        The standard's Dutch title, and an English label.
    kind : {"text", "choice", "choices", "links"}
        A string; one of ``allowed``; a list of ``allowed`` values; a list of title/link entries.
    max_length : int or None
        The standard's maximum length of a text (``None``: no limit).
    allowed : tuple of str
        The standard's permitted values (``choice`` and ``choices``).
    required : bool
        Whether the standard requires the field.
    source : tuple of str
        Who writes the sandbox's part, first the main source (see the module docstring); ``("author",)`` if
        nobody but the author.
    author : {"none", "gives", "adds", "must_add"}
        What the author may do (see the module docstring).
    origin_nl, origin_en : str
        Where the sandbox's part comes from, for messages and pages ("" for author-only fields).
    hint_nl, hint_en : str
        What the author should write.
    fmt : {"", "month", "url", "contact"}
        A form the standard's instructions ask for: ``YYYY-MM``; a URL starting ``https://``; an e-mail address
        or such a URL.
    items : LinkItem or None
        The entry shape of a ``links`` field.
    suggested : tuple of str
        Values the standard recommends but does not enforce (impact-assessment titles).
    default : str
        The value a ``choice`` field takes when the author gives none ("" for none).
    """

    name: str
    label_nl: str
    label_en: str
    kind: Kind
    max_length: int | None
    required: bool
    source: tuple[Source, ...]
    author: AuthorRole
    hint_nl: str
    hint_en: str
    origin_nl: str = ""
    origin_en: str = ""
    allowed: tuple[str, ...] = ()
    fmt: Format = ""
    items: LinkItem | None = None
    suggested: tuple[str, ...] = ()
    default: str = ""

    @property
    def system_filled(self) -> bool:
        """Whether the sandbox writes (part of) the field."""
        return self.source[0] not in ("author", "register")

    @property
    def author_may_give(self) -> bool:
        """Whether an author may give a value (the whole field, or a paragraph after the sandbox's)."""
        return self.author != "none"

    @property
    def author_need(self) -> Literal["must", "may", "never"]:
        """``"must"`` if the entry is incomplete without the author's value, ``"may"``, or ``"never"``."""
        if self.author == "must_add" or (self.author == "gives" and self.required and not self.default):
            return "must"
        return "may" if self.author_may_give else "never"


def _text(
    name: str,
    label_nl: str,
    label_en: str,
    max_length: int | None,
    *,
    hint_nl: str,
    hint_en: str,
    required: bool = False,
    source: tuple[Source, ...] = ("author",),
    author: AuthorRole = "gives",
    origin_nl: str = "",
    origin_en: str = "",
    fmt: Format = "",
) -> RegisterField:
    return RegisterField(
        name, label_nl, label_en, "text", max_length, required, source, author, hint_nl, hint_en,
        origin_nl=origin_nl, origin_en=origin_en, fmt=fmt,
    )  # fmt: skip


_CATEGORIES = (
    "Organisatie en bedrijfsvoering",
    "Cultuur en recreatie",
    "Economie",
    "Overheidsfinanciën",
    "Wonen",
    "Internationaal",
    "Migratie en integratie",
    "Natuur en milieu",
    "Onderwijs en wetenschap",
    "Openbare orde en veiligheid",
    "Recht",
    "Ruimte en infrastructuur",
    "Sociale zekerheid",
    "Verkeer",
    "Werk",
    "Zorg en gezondheid",
)
_ASSESSMENTS = (
    "AI Impact Assesment (AIIA)",  # sic: the standard's spelling
    "Data Protection Impact Assessment (DPIA)",
    "De Ethische Bijsluiter",
    "De Ethische Data Assistant (DEDA)",
    "Fundamentele Rechten en Algoritme Impact Assessment (FRAIA)",
    "Impact Assessment Mensenrechten en Algoritmes (IAMA)",
    "Pre-scan DPIA",
    "Privacy Quickscan",
    "Toetsingskader Algemene Rekenkamer",
    "Utrecht Uthiek Assessment",
    "Z-Inspection",
)
_B1 = " Schrijf op B1-taalniveau."

#: The standard's fields, in its order.
FIELDS: tuple[RegisterField, ...] = (
    _text("name", "Naam", "Name", 100, required=True, source=("request",), author="none",
          origin_nl="de titel van het vrijgaveverzoek", origin_en="the release request's title",
          hint_nl="De naam die zegt wat het algoritme doet.", hint_en="A name that says what the algorithm does."),
    _text("description_short", "Korte omschrijving", "Short description", 400, required=True,
          hint_nl="Twee of drie zinnen: wat doet het algoritme, in welk proces." + _B1,
          hint_en="Two or three plain sentences: what the algorithm does, in which process."),
    _text("organization", "Organisatienaam", "Organisation", 100, required=True,
          hint_nl="De volledige naam van de organisatie die het algoritme inzet (TOOI-waardelijst).",
          hint_en="The full name of the organisation that uses the algorithm (TOOI value list)."),
    RegisterField("category", "Thema", "Policy areas", "choices", None, False, ("author",), "gives",
                  "Een of meer beleidsterreinen uit de lijst.", "One or more policy areas from the list.",
                  allowed=_CATEGORIES),
    RegisterField("status", "Status", "Status", "choice", None, True, ("author",), "gives",
                  "In ontwikkeling, In gebruik of Buiten gebruik; een model uit de sandbox is in ontwikkeling "
                  "tot uw organisatie het inzet.",
                  "In development, in use or out of use; a model from the sandbox is in development until your "
                  "organisation puts it to use.",
                  allowed=("In ontwikkeling", "In gebruik", "Buiten gebruik"), default="In ontwikkeling"),
    _text("begin_date", "Begindatum", "Start date", 7, fmt="month",
          hint_nl="Maand van ingebruikname, zoals 2025-01.", hint_en="Month it was put to use, as 2025-01."),
    _text("end_date", "Einddatum", "End date", 7, fmt="month",
          hint_nl="Maand van buitengebruikstelling, zoals 2025-05; leeg zolang het in gebruik is.",
          hint_en="Month it was taken out of use, as 2025-05; empty while in use."),
    _text("contact_email", "Contactgegevens", "Contact details", 500, required=True, fmt="contact",
          hint_nl="Een algemeen e-mailadres of contactformulier (https://), geen persoonlijk adres.",
          hint_en="A general e-mail address or contact form (https://), never a personal address."),
    _text("website", "Link naar publiekspagina", "Link to public page", 500, fmt="url",
          hint_nl="Een pagina van uw organisatie over het proces (https://).",
          hint_en="A page of your organisation about the process (https://)."),
    RegisterField("publication_category", "Publicatiecategorie", "Publication category", "choice", None, True,
                  ("author",), "gives",
                  "Hoog-risico AI-systeem, Impactvolle algoritmes of Overige algoritmes (volgens de handreiking).",
                  "High-risk AI system, impactful algorithms or other algorithms (as the guidance defines them).",
                  allowed=("Hoog-risico AI-systeem", "Impactvolle algoritmes", "Overige algoritmes")),
    _text("url", "Link naar bronregistratie", "Link to source registration", 500, fmt="url",
          hint_nl="De registratie in het eigen algoritmeregister van uw organisatie, als die er is (https://).",
          hint_en="The entry in your organisation's own algorithm register, if any (https://)."),
    _text("goal", "Doel en impact", "Goal and impact", 2500, source=("request",), author="adds",
          origin_nl="het doel (purpose) van het vrijgaveverzoek", origin_en="the release request's purpose",
          hint_nl="Vul aan: hoe burgers en bedrijven met het algoritme in aanraking komen." + _B1,
          hint_en="Add: how citizens and businesses come into contact with the algorithm."),
    _text("proportionality", "Afwegingen", "Proportionality", 2500, source=("request",), author="adds",
          origin_nl="de onderbouwing (justification) van het vrijgaveverzoek",
          origin_en="the release request's justification",
          hint_nl="Voor- en nadelen, overwogen alternatieven en waarom de inzet gerechtvaardigd is (IAMA, DPIA)."
          + _B1,
          hint_en="Benefits and drawbacks, alternatives considered and why the use is justified (IAMA, DPIA)."),
    _text("human_intervention", "Menselijke tussenkomst", "Human intervention", 2500, source=("policy",),
          author="must_add", origin_nl="de beoordelingsregels van het beleid", origin_en="the policy's review rules",
          hint_nl="Vul aan: hoe medewerkers de uitkomsten gebruiken, controleren en kunnen bijstellen." + _B1,
          hint_en="Add: how staff use, check and can correct the algorithm's outcomes."),
    _text("risks", "Risicobeheer", "Risk management", 2500, source=("audit", "policy"), author="must_add",
          origin_nl="de fairness-audit en het beleid", origin_en="the fairness audit and the policy",
          hint_nl="Vul aan: hoe uw organisatie de risico's in gebruik beheert, bijvoorbeeld periodieke monitoring.",
          hint_en="Add: how your organisation manages the risks in use, for example periodic monitoring."),
    _text("lawful_basis", "Wettelijke basis", "Legal basis", 2500,
          hint_nl="De wet waarop het proces rust, en in het kort wat die wet wil bereiken.",
          hint_en="The law the process rests on, and briefly what that law aims at."),
    RegisterField("lawful_basis_grouping", "Verwijzingen wettelijke basis", "Legal basis references", "links",
                  None, False, ("author",), "gives",
                  "Titel en link (https://) van elke wettelijke grondslag, zoals wetten.overheid.nl.",
                  "Title and link (https://) of each legal basis, such as wetten.overheid.nl.",
                  items=LinkItem(title_max=100, title_required=True, link_max=500, link_required=True)),
    _text("process_index_url", "Link naar verwerkingsregister", "Link to register of processing", 500, fmt="url",
          hint_nl="Het openbare deel van het verwerkingsregister (AVG) over deze verwerking (https://).",
          hint_en="The public part of the GDPR register of processing activities for this processing (https://)."),
    RegisterField("impacttoetsen_grouping", "Impacttoetsen", "Impact assessments", "links", None, False,
                  ("audit",), "adds",
                  "Vul aan met de uitgevoerde toetsen (IAMA, DPIA, ...), met een link naar de uitkomst als die "
                  "openbaar is.",
                  "Add the assessments carried out (IAMA, DPIA, ...), with a link to the result where public.",
                  origin_nl="de fairness-audit (bias-analyse)", origin_en="the fairness audit (bias analysis)",
                  items=LinkItem(title_max=None, title_required=True, link_max=500, link_required=False),
                  suggested=_ASSESSMENTS),
    _text("impacttoetsen", "Toelichting op impacttoetsen", "Notes on impact assessments", 2500,
          hint_nl="Waarom een toets (bijvoorbeeld een DPIA) niet nodig was of niet is gedaan.",
          hint_en="Why an assessment (a DPIA, say) was not needed or not done."),
    _text("source_data", "Gegevens", "Data", 2500, source=("spec", "audit"), author="adds",
          origin_nl="de modelspecificatie en de fairness-audit", origin_en="the model spec and the fairness audit",
          hint_nl="Vul aan met de bronnen van de gegevens, zoals BRP, BKR of eigen klantgegevens.",
          hint_en="Add the sources of the data, such as the BRP, BKR or your own client records."),
    RegisterField("source_data_grouping", "Verwijzingen gegevensbronnen", "Data source references", "links",
                  None, False, ("author",), "gives",
                  "Titel en link (https://) van een beschrijving van elke gegevensbron.",
                  "Title and link (https://) of a description of each data source.",
                  items=LinkItem(title_max=500, title_required=True, link_max=500, link_required=True)),
    _text("methods_and_models", "Technische werking", "How it works", 5000, source=("spec",), author="adds",
          origin_nl="de modelspecificatie", origin_en="the model spec",
          hint_nl="Vul aan: hoe de uitkomst in het proces wordt gebruikt, links naar documentatie.",
          hint_en="Add: how the output is used in the process, links to documentation."),
    _text("provider", "Leverancier", "Provider", 200,
          hint_nl="De externe leverancier, of 'Intern ontwikkeld'.", hint_en="The external provider, or "
          "'Intern ontwikkeld' (developed in-house)."),
    _text("publiccode", "Link naar broncode", "Link to source code", 500, fmt="url",
          hint_nl="De openbare code van het algoritme (https://); leeg als die niet openbaar is.",
          hint_en="The algorithm's public code (https://); empty if it is not public."),
    RegisterField("lang", "Taal", "Language", "choice", None, True, ("standard",), "none",
                  "Vastgelegd door de standaard.", "Fixed by the standard.", allowed=("nld",),
                  origin_nl="de publicatiestandaard", origin_en="the publication standard"),
    RegisterField("standard_version", "Versie publicatiestandaard", "Publication standard version", "choice", None,
                  False, ("standard",), "none", "Vastgelegd door de standaard.", "Fixed by the standard.",
                  allowed=(STANDARD_VERSION,), origin_nl="de publicatiestandaard",
                  origin_en="the publication standard"),
    _text("source_id", "Bron-ID", "Source id", 100, source=("request",), author="none",
          origin_nl="het nummer van het vrijgaveverzoek", origin_en="the release request's id",
          hint_nl="Het kenmerk van dit algoritme in de sandbox.", hint_en="This algorithm's id in the sandbox."),
    _text("tags", "Zoektermen", "Search terms", 2500,
          hint_nl="Trefwoorden, gescheiden door komma's; niet zichtbaar op de website.",
          hint_en="Keywords separated by commas; not shown on the website."),
    _text("lars", "Algoritme-ID", "Algorithm id", None, source=("register",), author="none",
          hint_nl="Kent het register toe bij publicatie.", hint_en="Assigned by the register on publication."),
    _text("publication_dt", "Publicatie datum", "Publication date", None, source=("register",), author="none",
          hint_nl="Kent het register toe bij publicatie.", hint_en="Assigned by the register on publication."),
)  # fmt: skip

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
_BY_NAME = {f.name: f for f in FIELDS}


def field_spec(name: str) -> RegisterField:
    """Return the field ``name`` of the standard (``KeyError`` if the standard has none of that name)."""
    return _BY_NAME[name]


def author_fields_help() -> tuple[RegisterField, ...]:
    """Return the fields an author gives or adds to, those the entry needs (``author_need == "must"``) first.

    Each entry carries its Dutch and English label, limit, permitted values and hint, for the kernel to show and
    for a study to declare as parameters (a ``register`` dict parameter keyed by these names).
    """
    given = [f for f in FIELDS if f.author_may_give]
    return tuple(sorted(given, key=lambda f: f.author_need != "must"))
