from __future__ import annotations

import pytest

from gateway.core import enterprise
from storage.errors import InvalidName, NotFound
from gateway.core.path import ROOT, VPath, check_new_name, is_temporary_name, normalize, parse

C = enterprise.with_check("02123456")


def test_enterprise_numbers():
    assert C == "0212345668"
    assert enterprise.is_valid(C)
    assert not enterprise.is_valid("0212345678")  # the check digits are wrong
    assert not enterprise.is_valid("2212345668")  # first digit 0 or 1
    assert not enterprise.is_valid("021234566")
    assert not enterprise.is_valid("０２１２３４５６６８")  # fullwidth digits
    assert enterprise.normalize("BE 0212.345.668") == C
    with pytest.raises(ValueError, match="check digits"):
        enterprise.normalize("0212.345.678")


@pytest.mark.parametrize("raw,expected", [
    ("/", ROOT), ("", ROOT), ("/..", ROOT), ("/../..", ROOT),
    (f"/{C}", VPath(C)), (f"/{C}/", VPath(C)), (f"//{C}//a/./b/", VPath(C, ("a", "b"))),
    (f"/{C}/a/../b.pdf", VPath(C, ("b.pdf",))), (f"/{C}/../{C}/x", VPath(C, ("x",))),
])
def test_parse(raw, expected):
    assert parse(raw) == expected


def test_relative_to_cwd():
    assert parse("x.pdf", VPath(C, ("f",))) == VPath(C, ("f", "x.pdf"))
    assert parse("..", VPath(C, ("f",))) == VPath(C)


@pytest.mark.parametrize("raw", ["/etc/passwd", "/../../etc/passwd", "/0212345678/x", "/abc", b"/\xff\xfe",
                                 f"/{C}/a\x00b", f"/{C}/a\nb", "/..%2f..%2fetc"])
def test_outside_the_tree_is_not_found(raw):
    with pytest.raises(NotFound):
        parse(raw)


def test_unicode_is_normalized():
    assert parse(f"/{C}/Cafe\u0301.pdf") == parse(f"/{C}/Caf\u00e9.pdf")


def test_normalize_is_lexical():
    assert normalize(".") == "/"
    assert normalize(f"/{C}/a/../b") == f"/{C}/b"
    assert normalize("/../x/..") == "/"


@pytest.mark.parametrize("name", ["a\\b.pdf", "trailing.", " lead.pdf", "x" * 201, "a\u202eb.pdf", "tab\tname.pdf"])
def test_bad_new_names(name):
    with pytest.raises(InvalidName):
        check_new_name(VPath(C, (name,)), max_depth=4, max_name_length=200, is_folder=False)


def test_names_windows_dislikes_are_allowed():
    check_new_name(VPath(C, ("<img src=x onerror=alert(1)>.pdf",)), max_depth=4, max_name_length=200,
                   is_folder=False)


def test_depth_limit():
    ok = VPath(C, ("1", "2", "3", "4", "doc.pdf"))
    check_new_name(ok, max_depth=4, max_name_length=200, is_folder=False)
    with pytest.raises(InvalidName, match="4 levels"):
        check_new_name(VPath(C, ("1", "2", "3", "4", "5", "doc.pdf")), max_depth=4, max_name_length=200,
                       is_folder=False)
    with pytest.raises(InvalidName):
        check_new_name(VPath(C, ("1", "2", "3", "4", "5")), max_depth=4, max_name_length=200, is_folder=True)


TEMP = dict(suffixes=(".filepart", ".part"), patterns=("*.????????.partial",))


@pytest.mark.parametrize("name", ["report.pdf.filepart", "report.pdf.part", "report.pdf.a1B2c3D4.partial",
                                  "r.pdf.12345678.partial"])
def test_temporary_upload_names(name):
    assert is_temporary_name(name, **TEMP)


@pytest.mark.parametrize("name", ["report.pdf", ".filepart", "report.partial", "report.pdf.abc.partial",
                                  "report.pdf.a1b2c3d4.PARTIAL", "report.pdf.a1b2c3d4.partial.pdf", "party.pdf"])
def test_ordinary_names_are_not_temporary(name):
    assert not is_temporary_name(name, **TEMP)


def test_temporary_patterns_are_configurable():
    assert is_temporary_name("~$report.pdf", suffixes=(), patterns=("~$*",))
    assert not is_temporary_name("report.pdf.filepart", suffixes=(), patterns=("~$*",))
