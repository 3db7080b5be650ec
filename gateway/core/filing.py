"""Filing: which document is which. A document's kind, legislation and period, read from the path POD MI
uploads it to, by the filing rules of the configuration (``[documents] filing_rules``).

POD MI sends, for each of three legislations, a fixed set of kinds of document (the circulars in
``shared/seeds``): monthly statements, the list of accepted or partially accepted forms, the list of refused forms,
letters on illegality or legality, the annual settlement and its annexes. Its tools are not changed: a rule is a
regular expression matched against the document's path inside the centre's mailbox (``folder/name``), whose
named groups give the values:

- ``legislation`` and ``kind``: a code (:data:`LEGISLATIONS`, :data:`KINDS`) or one of its Dutch, French or
  English words (:data:`_ALIASES`), any case, ``_`` or ``-`` or spaces between words;
- ``period``: ``YYYY-MM``, ``YYYYMM`` or ``YYYY``; or ``year`` and optionally ``month``.

The first rule that matches and whose values are all known files the document; none matching (or a value no
code knows) leaves it *unclassified*: still delivered, and counted for the security cell. The default rules are
the documented conventions:

- by folder: ``<legislation>/<kind>/<period>/<any name>.pdf``, e.g. ``ris/monthly-statement/2026-10/x.pdf``;
- by name: ``<legislation>_<kind>_<period>[_<anything>].pdf``, in any folder, e.g. ``1965_maandstaat_202610.pdf``.
"""
from __future__ import annotations

import re
from typing import NamedTuple

#: the legislations: code -> English label (the pages translate the code)
LEGISLATIONS = {
    "ris": "Right to social integration",
    "law1965": "Reimbursements, law of 2 April 1965",
    "maintenance": "Advances on maintenance payments",
}
#: the kinds of document: code -> English label
KINDS = {
    "monthly-statement": "Monthly statement",
    "accepted-forms": "Accepted or partially accepted forms",
    "refused-forms": "Refused forms",
    "legality-letter": "Letter on illegality or legality",
    "annual-settlement": "Annual settlement",
    "settlement-annex": "Annex to the annual settlement",
}

#: words a rule may capture for a code, normalised (lower case, words joined by "-")
_ALIASES = {
    "legislation": {
        "ris": ("ris", "rmi", "dis", "ri", "leefloon", "revenu-d-integration", "integration", "social-integration",
                "maatschappelijke-integratie", "recht-op-maatschappelijke-integratie", "integration-sociale"),
        "law1965": ("law1965", "1965", "wet1965", "wet-1965", "loi1965", "loi-1965", "law-1965", "terugbetalingen",
                    "remboursements", "reimbursements"),
        "maintenance": ("maintenance", "advances", "voorschotten", "onderhoudsgelden",
                        "voorschotten-op-onderhoudsgelden", "avances", "avances-sur-pensions-alimentaires", "secal",
                        "davo"),
    },
    "kind": {
        "monthly-statement": ("monthly-statement", "maandstaat", "maandstaten", "etat-mensuel", "etats-mensuels",
                              "monthly"),
        "accepted-forms": ("accepted-forms", "accepted", "aanvaarde-formulieren", "aanvaard", "aanvaarde",
                           "formulaires-acceptes", "acceptes"),
        "refused-forms": ("refused-forms", "refused", "geweigerde-formulieren", "geweigerd", "geweigerde",
                          "formulaires-refuses", "refuses"),
        "legality-letter": ("legality-letter", "legality", "illegality", "brief-legaliteit", "legaliteit",
                            "illegaliteit", "lettre-legalite", "legalite", "illegalite"),
        "annual-settlement": ("annual-settlement", "settlement", "jaarlijkse-afrekening", "afrekening",
                              "decompte-annuel", "decompte"),
        "settlement-annex": ("settlement-annex", "annex", "annexes", "bijlage", "bijlagen", "annexe",
                             "afrekening-bijlage"),
    },
}
_LOOKUP = {field: {alias: code for code, aliases in table.items() for alias in aliases}
           for field, table in _ALIASES.items()}

_WORD = r"[A-Za-z0-9][A-Za-z0-9 _-]{0,60}"
_PERIOD = r"\d{4}(?:-?\d{2})?"
#: the documented conventions, in the order they are tried
DEFAULT_RULES: tuple[str, ...] = (
    rf"(?:.*/)?(?P<legislation>{_WORD})/(?P<kind>{_WORD})/(?P<period>{_PERIOD})/[^/]+(?i:\.pdf)",
    rf"(?:.*/)?(?P<legislation>[A-Za-z0-9-]{{1,40}})_(?P<kind>[A-Za-z0-9-]{{1,40}})_(?P<period>{_PERIOD})"
    r"(?:_[^/]*)?(?i:\.pdf)",
)
# ASCII digits only ([0-9], not \d): a rule's \d also matches fullwidth or Arabic-Indic digits, which int() reads,
# and a period is stored and compared as text
_PERIOD_FORMS = re.compile(r"([0-9]{4})(?:-?([0-9]{2}))?")
#: a period as a filter or a stored value: a year, or a year and month
PERIOD = re.compile(r"[0-9]{4}(?:-(0[1-9]|1[0-2]))?")


class Filing(NamedTuple):
    """What a document is. ``period``: ``YYYY-MM`` or ``YYYY``. (A tuple: the repository stores it as one.)"""
    kind: str
    legislation: str
    period: str


def _norm(word: str) -> str:
    return re.sub(r"[\s_-]+", "-", word.strip().lower())


def code(field: str, word: str) -> str | None:
    """The code of ``word`` as a ``field`` ("kind" or "legislation"), or None."""
    return _LOOKUP[field].get(_norm(word))


def period_of(year: str, month: str | None) -> str | None:
    """``YYYY`` or ``YYYY-MM`` from the parts, or None when the month is not a month."""
    if month is None:
        return year
    return f"{year}-{month}" if 1 <= int(month) <= 12 else None


class FilingRules:
    """The configured rules, compiled once; :meth:`classify` files a document by its path in the mailbox."""

    def __init__(self, rules: tuple[str, ...] = DEFAULT_RULES):
        self.rules = tuple(compile_rule(r) for r in rules)

    def classify(self, relpath: str) -> Filing | None:
        """The filing of the document at ``relpath`` (``folder/name`` inside its centre), or None: unclassified."""
        for rule in self.rules:
            m = rule.fullmatch(relpath)
            if m is not None:
                filing = _filing(m.groupdict())
                if filing is not None:
                    return filing
        return None


def compile_rule(rule: str) -> re.Pattern:
    """A rule compiled; ValueError when it is not a regular expression or lacks the groups it needs."""
    try:
        pattern = re.compile(rule)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    groups = set(pattern.groupindex)
    if not {"legislation", "kind"} <= groups:
        raise ValueError("a rule needs the named groups legislation and kind")
    if "period" not in groups and "year" not in groups:
        raise ValueError("a rule needs the named group period, or year (and month)")
    return pattern


def _filing(groups: dict[str, str | None]) -> Filing | None:
    legislation = code("legislation", groups.get("legislation") or "")
    kind = code("kind", groups.get("kind") or "")
    if groups.get("period"):
        m = _PERIOD_FORMS.fullmatch(groups["period"])
        period = period_of(m.group(1), m.group(2)) if m else None
    elif groups.get("year"):
        year, month = groups["year"], groups.get("month")
        period = period_of(year, month) if re.fullmatch(r"[0-9]{4}", year) and (
            month is None or re.fullmatch(r"[0-9]{1,2}", month)) else None
        if period and month is not None:
            period = period_of(year, f"{int(month):02d}")
    else:
        period = None
    if legislation is None or kind is None or period is None:
        return None
    return Filing(kind, legislation, period)
