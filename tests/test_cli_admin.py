"""The administration commands of ``instpages`` (issue 5, part 6), as an operator scripts them: the switch-over
lifecycle with references, designations, grants with an end date, contacts, test mails to a real SMTP server,
API tokens. Real subprocesses, real exit codes, rows checked in the database."""
from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest

from gateway.core.enterprise import with_check
from tests.test_cli import after, clean_env, ok

A = with_check("02123456")        # 0212345668
B = with_check("02071234")        # 0207123407
PW = "correct horse battery staple"


def fail(r) -> str:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("instpages: error: "), r.stderr
    return lines[0]


def query(d: Path, sql: str, *params):
    with sqlite3.connect(d / "instpages.db") as c:
        return c.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-admin") / "var"
    ok(after(d, "institution", "add", A, "--name", "OCMW Aalst-test", "--contacts", "secretariaat@ocmw-a.test",
             "--language", "nl"))
    ok(after(d, "institution", "add", B, "--name", "CPAS de Bstad", "--status", "active"))
    for name, role, extra in (("mia", "staff", []), ("jan", "staff", []), ("piet", "local-admin", ["--institution", B]),
                              ("cell", "security-cell", [])):
        ok(after(d, "account", "add", name, "--role", role, "--password-stdin", *extra, input=PW + "\n"))
    ok(after(d, "account", "add", "podmi", "--role", "uploader"))
    return d


def test_lifecycle_with_references_history_and_the_activation_mail(site, smtp_server):
    d = site
    env = clean_env(**smtp_server.env())
    reason = fail(after(d, "institution", "activate", A, "--reference", "forms", env=env))
    assert "has not asked to switch over yet" in reason
    r = after(d, "institution", "request")
    assert r.returncode == 2 and "--reference" in r.stderr  # argparse: the reference is required
    assert "requested" not in [s for (s,) in query(d, "SELECT status FROM institutions WHERE id=?", A)]
    assert ok(after(d, "institution", "request", A, "--reference", "mail of 2026-11-02", env=env)).strip() == \
        f"centre {A}: paper -> requested"
    assert "its request is already recorded" in fail(after(d, "institution", "request", A, "--reference", "x"))
    out = ok(after(d, "institution", "activate", A, "--reference", "signed forms received 2026-11-20", env=env))
    assert out.splitlines() == [f"centre {A}: requested -> active",
                                "activation notice queued for the centre's contacts"]
    [msg] = smtp_server.wait_for(1)
    assert msg["To"] == "secretariaat@ocmw-a.test" and "klaar" in msg["Subject"]
    assert query(d, "SELECT sent_at IS NOT NULL FROM outbox WHERE kind='activation'") == [(1,)]
    assert "only an active centre" not in ok(after(d, "institution", "suspend", A, "--reference", "audit 12"))
    assert "already suspended" in fail(after(d, "institution", "suspend", A, "--reference", "again"))
    ok(after(d, "institution", "activate", A, "--reference", "audit closed", env=env))
    assert len(smtp_server.wait_for(2)) == 2
    rows = query(d, "SELECT from_status, to_status, actor, reference FROM status_changes WHERE institution_id=? "
                    "ORDER BY id", A)
    assert [(f, t, ref) for f, t, _, ref in rows] == [
        ("paper", "requested", "mail of 2026-11-02"), ("requested", "active", "signed forms received 2026-11-20"),
        ("active", "suspended", "audit 12"), ("suspended", "active", "audit closed")]
    assert all(actor.startswith("cli:") for _, _, actor, _ in rows)
    show = ok(after(d, "institution", "show", A))
    assert "status      active" in show and "audit closed" in show and "requested -> active" in show
    # an empty reference is refused by the core too
    assert "a reference is required" in fail(after(d, "institution", "suspend", A, "--reference", "  "))


def test_designations_and_the_acting_security_consultant(site):
    d = site
    ok(after(d, "institution", "set-security-consultant", A, "jan"))
    assert "(acting local administrator)" in ok(after(d, "institution", "show", A))
    ok(after(d, "institution", "set-local-admin", A, "mia"))
    assert query(d, "SELECT role, institution_id FROM accounts WHERE name='mia'") == [("local-admin", A)]
    show = ok(after(d, "institution", "show", A))
    assert "local admin mia" in show and "acting" not in show
    # piet administers B: designating him for A too is refused with the reason
    assert f"local administrator of centre {B}" in fail(after(d, "institution", "set-local-admin", A, "piet"))
    assert "podmi is uploader" in fail(after(d, "institution", "set-local-admin", A, "podmi"))
    ok(after(d, "institution", "unset-local-admin", A, "mia"))
    assert query(d, "SELECT role, institution_id FROM accounts WHERE name='mia'") == [("staff", None)]
    assert "(acting local administrator)" in ok(after(d, "institution", "show", A))
    actions = [a for (a,) in query(d, "SELECT action FROM audit_events WHERE institution_id=? ORDER BY id", A)]
    assert {"security-consultant-set", "local-admin-set", "local-admin-unset"} <= set(actions)


def test_grants_with_an_end_date(site):
    d = site
    past = (date.today() - timedelta(days=1)).isoformat()
    assert "is in the past" in fail(after(d, "grant", "add", "mia", B, "--until", past))
    assert "not a date" in fail(after(d, "grant", "add", "mia", B, "--until", "31/12/2026"))
    until = (date.today() + timedelta(days=30)).isoformat()
    assert ok(after(d, "grant", "add", "mia", B, "--remove", "--until", until)).strip() == \
        f"granted mia access to {B} (with remove) until {until}"
    listing = ok(after(d, "grant", "list", B))
    assert listing.splitlines()[0].split() == ["ACCOUNT", "ACCESS", "GRANTED", "BY", "SINCE", "UNTIL"]
    assert listing.splitlines()[1].split()[:2] == ["mia", "read+remove"] and until in listing


def test_notify_test_and_outbox(site, smtp_server):
    d = site
    assert "mail is not configured" in fail(after(d, "notify", "test", A))
    assert "no notification addresses" in fail(after(d, "notify", "test", B, env=clean_env(**smtp_server.env())))
    out = ok(after(d, "notify", "test", A, env=clean_env(**smtp_server.env())))
    assert out.startswith("test mail ") and out.strip().endswith("sent to secretariaat@ocmw-a.test")
    [msg] = smtp_server.wait_for(1)
    assert msg["Subject"] == "Institutional Pages: testbericht voor OCMW Aalst-test"
    smtp_server.refuse = True
    line = fail(after(d, "notify", "test", A, env=clean_env(**smtp_server.env())))
    assert "queued but not sent yet: SMTP 451" in line
    table = ok(after(d, "notify", "outbox", "--institution", A))
    assert "pending" in table and "SMTP 451" in table


def test_api_tokens(site):
    d = site
    out = ok(after(d, "api-token", "create", "cell", "--label", "nightly report", "--days", "30")).splitlines()
    assert out[0].startswith("API token ") and out[1].startswith("ipat-")
    token_id = out[0].split()[2]
    listing = ok(after(d, "api-token", "list", "cell"))
    assert "nightly report" in listing and "live" in listing and out[1] not in listing
    ok(after(d, "api-token", "revoke", "cell", token_id))
    assert "revoked" in ok(after(d, "api-token", "list", "cell"))
    # POD MI's uploader (a machine: no strong login) gets its token from the operator or the security cell, to
    # read the receipts of what it sent; an archive system gets none
    out = ok(after(d, "api-token", "create", "podmi", "--label", "receipts")).splitlines()
    assert out[0].startswith("API token ") and out[1].startswith("ipat-")
    assert "receipts" in ok(after(d, "api-token", "list", "podmi"))
    ok(after(d, "account", "add", "arch-b", "--role", "archiver", "--institution", B))
    assert "API tokens are for people and POD MI's uploaders" in fail(after(d, "api-token", "create", "arch-b"))
    assert query(d, "SELECT kind FROM device_passwords WHERE account_id=(SELECT id FROM accounts WHERE name='cell')") \
        == [("api",)]
