"""The filing rules (gateway/core/filing.py) as a table: every kind x legislation by folder and by name, with codes
and with the accepted words; the period forms; what stays unclassified; malicious names (markup, ``..``, very long
names, unicode); the configuration's rules (the example file's are the defaults; a bad rule is refused at load)."""
from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.core import filing
from gateway.core.filing import DEFAULT_RULES, Filing, FilingRules
from storage.errors import ConfigError

RULES = FilingRules()
REPO = Path(__file__).resolve().parents[2]


def classify(path: str) -> Filing | None:
    return RULES.classify(path)


# -- every kind x legislation --------------------------------------------------------------------------------------
PAIRS = list(itertools.product(filing.KINDS, filing.LEGISLATIONS))


@pytest.mark.parametrize("kind,legislation", PAIRS)
def test_every_kind_and_legislation_by_folder(kind, legislation):
    assert classify(f"{legislation}/{kind}/2026-10/anything.pdf") == Filing(kind, legislation, "2026-10")
    # any folders before the convention, upper case, the name's extension in any case
    assert classify(f"2026/batch 7/{legislation.upper()}/{kind.upper()}/2026-10/x.PDF") == \
        Filing(kind, legislation, "2026-10")


@pytest.mark.parametrize("kind,legislation", PAIRS)
def test_every_kind_and_legislation_by_name(kind, legislation):
    assert classify(f"{legislation}_{kind}_202610.pdf") == Filing(kind, legislation, "2026-10")
    assert classify(f"some/folder/{legislation}_{kind}_2026_centre-copy 2.pdf") == Filing(kind, legislation, "2026")


WORDS = [(field, code, word) for field, table in filing._ALIASES.items() for code, words in table.items()
         for word in words]


@pytest.mark.parametrize("field,code,word", WORDS, ids=[f"{f}-{w}" for f, _, w in WORDS])
def test_every_accepted_word(field, code, word):
    leg, kind = ("ris", "refused-forms")
    if field == "legislation":
        leg = word
    else:
        kind = word
    expected = Filing(code if field == "kind" else "refused-forms", code if field == "legislation" else "ris",
                      "2025-01")
    assert classify(f"{leg}/{kind}/2025-01/x.pdf") == expected
    assert classify(f"{leg}/{kind.replace('-', ' ')}/2025-01/x.pdf") == expected  # spaces between words
    assert classify(f"{leg}_{kind}_2025-01.pdf") == expected


def test_the_three_legislations_and_six_kinds_of_the_circulars():
    assert set(filing.LEGISLATIONS) == {"ris", "law1965", "maintenance"}
    assert set(filing.KINDS) == {"monthly-statement", "accepted-forms", "refused-forms", "legality-letter",
                                 "annual-settlement", "settlement-annex"}


# -- periods -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given,stored", [
    ("2026-10", "2026-10"), ("202610", "2026-10"), ("2026", "2026"), ("2026-01", "2026-01"), ("1999-12", "1999-12"),
    ("2026-13", None), ("2026-00", None), ("202613", None), ("2026-1", None), ("26-10", None), ("2026-10-01", None),
    ("２０２６-１０", None),  # fullwidth digits: a period is ASCII
    ("٢٠٢٦", None),  # Arabic-Indic digits
])
def test_period_forms(given, stored):
    for path in (f"ris/maandstaat/{given}/x.pdf", f"ris_maandstaat_{given}.pdf"):
        got = classify(path)
        assert (got.period if got else None) == stored, path
        if got:
            assert filing.PERIOD.fullmatch(got.period)


@pytest.mark.parametrize("year,month,stored", [("2026", "7", "2026-07"), ("2026", "07", "2026-07"),
                                               ("2026", None, "2026"), ("2026", "13", None), ("２０２６", "1", None)])
def test_year_and_month_groups(year, month, stored):
    rules = FilingRules((r"(?P<year>[^/]+)/(?:(?P<month>[^/]+)/)?(?P<kind>[^/]+)-(?P<legislation>[^/]+)\.pdf",))
    path = f"{year}/{month}/settlement-ris.pdf" if month else f"{year}/settlement-ris.pdf"
    got = rules.classify(path)
    assert (got.period if got else None) == stored
    if stored:
        assert got == Filing("annual-settlement", "ris", stored)


# -- unclassified --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [
    "brief.pdf",
    "2026-11/report.pdf",
    "ris/maandstaat/x.pdf",                       # no period
    "ris/maandstaat/oktober/x.pdf",               # not a period
    "maandstaat/ris/2026-10/x.pdf",               # kind and legislation the wrong way round
    "unknown/maandstaat/2026-10/x.pdf",           # no such legislation
    "ris/unknown/2026-10/x.pdf",                  # no such kind
    "ris_maandstaat_2026-10.txt",                 # not a .pdf name
    "ris_maandstaat.pdf",
    "ris-maandstaat-2026-10.pdf",                 # "-" is not the separator of the name convention
    "ris/état-mensuel/2026-10/x.pdf",             # accents are not accepted (etat-mensuel is)
    "ris/maandstaat/2026-10/",                    # no name
    "",
])
def test_unclassified(path):
    assert classify(path) is None


# -- malicious names -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path,expected", [
    ("ris/maandstaat/2026-10/<script>alert(1)<&#47;script>.pdf", Filing("monthly-statement", "ris", "2026-10")),
    ("ris/maandstaat/2026-10/<script>alert(1)</script>.pdf", None),  # "/" in a name is a folder: not the convention
    ("<b>ris</b>/maandstaat/2026-10/x.pdf", None),
    ("ris/<img src=x onerror=alert(1)>/2026-10/x.pdf", None),
    ("<script>_maandstaat_2026.pdf", None),
    ("ris_maandstaat\"'&<>_2026.pdf", None),
    ("../../ris/maandstaat/2026-10/x.pdf", Filing("monthly-statement", "ris", "2026-10")),  # the convention's part
    ("ris/../maandstaat/2026-10/x.pdf", None),
    ("ris/maandstaat/2026-10/../x.pdf", None),
    ("..", None),
    ("ris/maandstaat/2026-10/x.pdf\x00.txt", None),
    ("ris/maandstaat/2026-10/x.pdf\n", None),
    ("ris\n/maandstaat/2026-10/x.pdf", None),
    ("ris/maand\u200bstaat/2026-10/x.pdf", None),  # a zero-width space inside a word
    ("RİS/maandstaat/2026-10/x.pdf", None),        # a dotted capital I (its lower case is not "ris")
    ("ＲＩＳ_maandstaat_2026.pdf", None),             # fullwidth letters
    ("ris/maandstaat/2026-10/καλημέρα 文件.pdf", Filing("monthly-statement", "ris", "2026-10")),  # any name
])
def test_malicious_names(path, expected):
    got = classify(path)
    assert got == expected
    if got is not None:  # whatever the path held, the values are the codes
        assert got.kind in filing.KINDS and got.legislation in filing.LEGISLATIONS
        assert filing.PERIOD.fullmatch(got.period)


@pytest.mark.parametrize("path", [
    "a" * 100_000 + ".pdf",
    "ris/" + "maandstaat " * 10_000 + "/2026-10/x.pdf",
    "/".join(["ris"] * 5_000) + "/maandstaat/2026-10/x.pdf",
    "ris_" + "-" * 50_000 + "_2026.pdf",
    "_".join(["ris"] * 20_000) + ".pdf",
    "ris/maandstaat/" + "2026-10/" * 5_000 + "x",
])
def test_very_long_names_are_answered_quickly(path):
    t0 = time.perf_counter()
    got = classify(path)
    assert time.perf_counter() - t0 < 1.0, "a filing rule backtracks on a long name"
    assert got is None or (got.kind in filing.KINDS and got.legislation in filing.LEGISLATIONS)


# -- configuration -------------------------------------------------------------------------------------------------
def test_the_example_configuration_lists_the_default_rules():
    cfg = load_config(REPO / "config" / "instpages.example.toml", env={})
    assert cfg.documents.filing_rules == DEFAULT_RULES


def _config(tmp_path, rules: list[str]):
    path = tmp_path / "instpages.toml"
    path.write_text("[documents]\nfiling_rules = [\n" + "".join(f"    '{r}',\n" for r in rules) + "]\n")
    return load_config(path, env={})


def test_configured_rules_replace_the_defaults(tmp_path):
    own = r"(?:.*/)?(?P<year>\d{4})-(?P<month>\d{2})-(?P<kind>[a-z-]+)-(?P<legislation>[a-z0-9]+)\.pdf"
    cfg = _config(tmp_path, [*DEFAULT_RULES, own])  # the README's example
    rules = FilingRules(cfg.documents.filing_rules)
    assert rules.classify("2026-10-refused-ris.pdf") == Filing("refused-forms", "ris", "2026-10")
    assert rules.classify("ris_maandstaat_2026.pdf") == Filing("monthly-statement", "ris", "2026")
    only = FilingRules(_config(tmp_path, [own]).documents.filing_rules)
    assert only.classify("ris_maandstaat_2026.pdf") is None  # the key replaces the defaults


@pytest.mark.parametrize("rule,reason", [
    ("(?P<legislation>[a-z]+)/(?P<kind>[a-z]+", "not a regular expression"),
    ("(?P<kind>[a-z]+)/(?P<period>[0-9]+)", "legislation and kind"),
    ("(?P<legislation>[a-z]+)/(?P<kind>[a-z]+)", "period"),
    ("[", "not a regular expression"),
])
def test_a_bad_rule_is_refused_at_load(tmp_path, rule, reason):
    with pytest.raises(ConfigError) as exc:
        _config(tmp_path, [DEFAULT_RULES[0], rule])
    assert "documents.filing_rules" in str(exc.value) and reason in str(exc.value)
