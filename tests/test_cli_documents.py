"""``instpages document list`` and ``instpages document receipt`` (issue 13): a centre's catalogue and one
document's receipt, as the operator scripts them -- real subprocesses, real exit codes, the read on the record.
Documents are delivered, fetched and archived through the core beforehand, as SFTP would."""
from __future__ import annotations

import pytest

from gateway.config import load_config
from gateway.core.enterprise import with_check
from gateway.services import build
from tests.coretools import deliver, session
from tests.pdfsamples import minimal_pdf
from tests.test_cli import A, B, after, before, ok, one_error_line, query, table

DELIVERED = ["ris/maandstaat/2026-10/statement.pdf", "law1965/refused-forms/2026-09/refused.pdf",
             "maintenance_afrekening_2025.pdf", "misc/letter.pdf"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-docs") / "var"
    ok(before(d, "institution", "add", A, "--name", "OCMW Aalst", "--status", "active"))
    ok(after(d, "institution", "add", B, "--name", "CPAS de Bstad", "--status", "active"))
    ok(after(d, "account", "add", "podmi", "--role", "uploader"))
    ok(after(d, "account", "add", "arch-a", "--role", "archiver", "--institution", A))
    services = build(load_config(None, env={}, overrides={"data_dir": str(d)}))
    try:
        up = session(services, "podmi")
        for relpath in DELIVERED:
            deliver(up, f"/{A}/{relpath}", minimal_pdf(relpath))
        arch = session(services, "arch-a")
        dl = arch.open_download(f"/{A}/{DELIVERED[1]}")
        dl.read(0, dl.size)
        dl.close()
        arch.archive(f"/{A}/{DELIVERED[2]}")
    finally:
        services.close()
    return d


def test_list_is_a_table_newest_first(site):
    out = ok(after(site, "document", "list", A))
    assert out.splitlines()[0].split() == ["DELIVERED", "KIND", "LEGISLATION", "PERIOD", "SIZE", "PATH", "FIRST",
                                           "FETCHED", "ARCHIVED"]
    rows = table(out)
    assert [r[5] for r in rows] == ["misc/letter.pdf", DELIVERED[1], DELIVERED[0]]  # the archived one is not listed
    letter, refused, statement = rows
    assert letter[1:4] == ["unclassified", "-", "-"] and letter[6:] == ["-", "-"]
    assert refused[1:5] == ["refused-forms", "law1965", "2026-09", str(len(minimal_pdf(DELIVERED[1])))]
    assert refused[6].endswith("arch-a (test)")  # first fetched: when, by whom, over which protocol
    assert statement[1:4] == ["monthly-statement", "ris", "2026-10"]
    # on the record, as the operator's read
    events = query(site, "SELECT actor, protocol, detail FROM audit_events WHERE action='list' AND institution_id=? "
                         "ORDER BY id DESC LIMIT 1", A)
    assert events[0][0].startswith("cli") and events[0][1] == "cli" and events[0][2] == "catalogue: 3 documents"


@pytest.mark.parametrize("args, paths", [
    (["--kind", "monthly-statement"], [DELIVERED[0]]),
    (["--kind", "unclassified"], ["misc/letter.pdf"]),
    (["--legislation", "law1965"], [DELIVERED[1]]),
    (["--period", "2026"], [DELIVERED[1], DELIVERED[0]]),
    (["--period", "2026-10", "--legislation", "ris"], [DELIVERED[0]]),
    (["--archived"], [DELIVERED[2]]),
    (["--limit", "1"], ["misc/letter.pdf"]),
    (["--kind", "settlement-annex"], []),
])
def test_list_filters(site, args, paths):
    out = ok(after(site, "document", "list", A, *args))
    assert [r[5] for r in table(out)] == paths


def test_archived_row_says_when_and_by_whom(site):
    [row] = table(ok(after(site, "document", "list", A, "--archived")))
    assert row[1:4] == ["annual-settlement", "maintenance", "2025"] and row[7].endswith(" arch-a")


def test_receipt_by_path(site):
    out = ok(after(site, "document", "receipt", A, DELIVERED[1])).splitlines()
    assert out[0].startswith("document ") and f"at {DELIVERED[1]} (" in out[0] and "sha256 " in out[0]
    assert out[1].split(None, 2)[2] == "refused-forms, law1965, 2026-09"
    assert out[2].startswith("delivered ") and out[2].endswith(" by podmi")
    assert out[3].startswith("fetched ") and out[3].endswith(" arch-a (test)")
    assert out[4].split() == ["archived", "no"]
    # the path as `document restore` takes it, with or without the centre in front; archived documents too
    assert ok(after(site, "document", "receipt", A, f"/{A}/{DELIVERED[1]}")).splitlines() == out
    archived = ok(after(site, "document", "receipt", A, DELIVERED[2])).splitlines()
    assert archived[3].split() == ["fetched", "not", "yet"] and archived[4].endswith(" by arch-a")
    events = query(site, "SELECT path, document_id, outcome FROM audit_events WHERE action='receipt' "
                         "ORDER BY id DESC LIMIT 1")
    assert events[0][0] == f"/{A}/{DELIVERED[2]}" and events[0][1] is not None and events[0][2] == "ok"


@pytest.mark.parametrize("args, message", [
    (["list", "0212345679"], "no centre 0212345679"),
    (["list", "not-a-centre"], "no centre not-a-centre"),
    (["receipt", "0212345679", "misc/letter.pdf"], "no centre"),
    (["list", A, "--kind", "memo"], "unknown kind; one of: monthly-statement"),
    (["list", A, "--legislation", "ocmw"], "unknown legislation; one of: ris, law1965, maintenance"),
    (["list", A, "--period", "2026-13"], "a period is a year (2026) or a month (2026-10)"),
    (["list", A, "--limit", "0"], "limit is between 1 and 5000"),
    (["receipt", A, "misc/nothing.pdf"], f"no document /{A}/misc/nothing.pdf"),
    (["receipt", A, "../x.pdf"], "not a document path"),
    (["receipt", A, f"/{B}/misc/letter.pdf"], f"no document /{A}/{B}/misc/letter.pdf"),  # a folder of A
])
def test_errors_are_one_line(site, args, message):
    line = one_error_line(after(site, "document", *args))
    assert message in line, line


def test_refile_files_again_by_the_current_rules(tmp_path):
    d = tmp_path / "var"
    ok(before(d, "institution", "add", A, "--name", "OCMW Aalst", "--status", "active"))
    ok(after(d, "institution", "add", B, "--name", "CPAS de Bstad", "--status", "active"))
    ok(after(d, "account", "add", "podmi", "--role", "uploader"))
    services = build(load_config(None, env={}, overrides={"data_dir": str(d)}))
    try:
        up = session(services, "podmi")
        ids = {}
        for centre, relpath in [(A, "ris/maandstaat/2026-10/old.pdf"), (A, "law1965_geweigerd_202609.pdf"),
                                (A, "misc/letter.pdf"), (B, "ris/maandstaat/2026-10/b.pdf")]:
            ids[relpath] = deliver(up, f"/{centre}/{relpath}", minimal_pdf(relpath)).document_id
        repo = services.repo
        with repo.write() as c:
            # as delivered before filing existed (revision 0009), and one filed wrongly by an older rule
            for relpath in ("ris/maandstaat/2026-10/old.pdf", "law1965_geweigerd_202609.pdf",
                            "ris/maandstaat/2026-10/b.pdf"):
                repo.set_filing(c, ids[relpath], None, None, None)
            repo.set_filing(c, ids["misc/letter.pdf"], "legality-letter", "ris", "2026-01")
    finally:
        services.close()

    def filing(relpath):
        return query(d, "SELECT kind, legislation, period FROM documents WHERE id=?", ids[relpath])[0]

    out = ok(after(d, "document", "refile", A))
    assert out.strip() == "examined 2 documents: 2 filed anew, 0 unclassified by the current rules"
    assert filing("ris/maandstaat/2026-10/old.pdf") == ("monthly-statement", "ris", "2026-10")
    assert filing("law1965_geweigerd_202609.pdf") == ("refused-forms", "law1965", "2026-09")
    assert filing("ris/maandstaat/2026-10/b.pdf") == (None, None, None)  # another centre: not asked
    assert filing("misc/letter.pdf") == ("legality-letter", "ris", "2026-01")  # filed already: left as it is
    # --all: every document again, after a change of the rules (here: none files misc/letter.pdf)
    out = ok(after(d, "document", "refile", "--all"))
    assert out.strip() == "examined 4 documents: 2 filed anew, 1 unclassified by the current rules"
    assert filing("misc/letter.pdf") == (None, None, None)
    assert filing("ris/maandstaat/2026-10/b.pdf") == ("monthly-statement", "ris", "2026-10")
    assert ok(after(d, "document", "refile")).strip() == \
        "examined 1 documents: 0 filed anew, 1 unclassified by the current rules"  # nothing left to change
    events = query(d, "SELECT institution_id, detail FROM audit_events WHERE action='refile' ORDER BY id")
    assert events == [(A, "2 documents filed again by the current rules"),  # one event a centre and a run
                      (B, "1 documents filed again by the current rules"),
                      (A, "1 documents filed again by the current rules")]
    assert "no centre" in one_error_line(after(d, "document", "refile", with_check("09999999")))
