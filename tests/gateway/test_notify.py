"""Notifications against a real SMTP server (aiosmtpd): activation notices, digests, retries, the outbox across a
restart, STARTTLS with credentials, and two senders sharing one outbox."""
from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest

from gateway.config import load_config
from gateway.admin.notify import Notifier, render
from storage.repository import utcnow
from gateway.web.tls import ensure_self_signed
from tests.conftest import (CENTRE_A, CENTRE_B, CENTRE_PAPER, SMTPCapture, populate, start_gateway)
from tests.pdfsamples import minimal_pdf


def _deliver(gw, names: list[str], centre: str = CENTRE_A) -> None:
    async def run():
        async with gw.connect("podmi") as conn:
            async with conn.start_sftp_client() as sftp:
                for name in names:
                    async with sftp.open(f"/{centre}/{name}", "wb") as f:
                        await f.write(minimal_pdf(name))
    asyncio.run(run())


def _sent(gw) -> list:
    with gw.repo.read() as c:
        return [r for r in gw.repo.outbox(c) if r.sent_at is not None]


def test_templates_in_both_languages_and_no_header_injection():
    class Centre:
        id, name, language = "0212345668", "OCMW X\r\nBcc: evil@example.test", "fr"
    subject, body = render("activation", "fr", centre=Centre, link="https://gw/dav/0212345668/", reference="r1")
    assert "\n" not in subject and "\r" not in subject
    assert subject.startswith("Institutional Pages : votre page institutionnelle est prête")
    assert "0212345668" in body and "https://gw/dav/0212345668/" in body
    subject_nl, body_nl = render("digest", "nl", centre=Centre, link="L", count=2, documents=["a.pdf", "b.pdf"],
                                 more=0, kinds=[], unclassified=2)
    assert subject_nl.startswith("Institutional Pages: 2 nieuwe documenten")
    assert "  - a.pdf\n  - b.pdf\n" in body_nl
    # a language we have no template for falls back to Dutch
    assert render("test", "de", centre=Centre, actor="x")[0].startswith("Institutional Pages: testbericht")


def test_activation_notice_reaches_the_contacts(make_gateway, smtp_server):
    gw = make_gateway(env=smtp_server.env())
    cell = gw.services.administration(actor="cell", protocol="test",
                          principal=gw.services.mailbox.load_principal(_id(gw, "cell"), "test"))
    cell.set_contacts(CENTRE_PAPER, "secretariaat@ocmw-papier.test, it@ocmw-papier.test", "nl")
    cell.transition(CENTRE_PAPER, "request", "mail of 2026-11-02")
    assert smtp_server.wait_for(1, timeout=1.5) == []  # a request mails nobody
    _, new, outbox_id = cell.transition(CENTRE_PAPER, "activate", "signed forms received 2026-11-20")
    assert new == "active" and outbox_id is not None
    [msg] = smtp_server.wait_for(1)
    assert msg["To"] == "secretariaat@ocmw-papier.test, it@ocmw-papier.test"
    assert msg["From"] == "ip@podmi.test"
    assert msg["Subject"] == "Institutional Pages: uw instellingspagina is klaar (OCMW Papier)"
    assert msg["Message-ID"].startswith(f"<outbox-{outbox_id}-")
    body = msg.get_body(("plain",)).get_content()
    assert CENTRE_PAPER in body and "signed forms received 2026-11-20" in body and "drie wetgevingen" in body
    assert not list(msg.iter_attachments())
    time.sleep(0.6)
    assert len(smtp_server.messages) == 1  # sent once, marked sent
    assert [r.kind for r in _sent(gw)] == ["activation"]
    actions = [e.action for e in gw.audit(limit=10)]
    assert "notify-queue" in actions and "institution-status" in actions


def _id(gw, name: str) -> int:
    with gw.repo.read() as c:
        return gw.repo.account_by_name(c, name).id


def test_digest_batches_names_per_centre_at_most_once_per_interval(make_gateway, smtp_server):
    # the test drives the notifier's clock and rounds itself (the server's own round sleeps for an hour), so that
    # how fast the uploads go on a loaded machine cannot split the batch
    gw = make_gateway(env=smtp_server.env(INSTPAGES_NOTIFICATIONS_DIGEST_INTERVAL_SECONDS="3",
                                          INSTPAGES_NOTIFICATIONS_POLL_SECONDS="3600"))
    notifier = gw.services.mailbox.notifier

    def round_at(now) -> int:
        queued = notifier.queue_digests(now)
        notifier.deliver_due()
        return queued

    gw.admin.set_contacts(CENTRE_A, "team@ocmw-a.test", "fr")
    gw.admin.set_contacts(CENTRE_B, "", None)  # B has no contacts: no digest for it
    _deliver(gw, ["2026-11-maandstaat.pdf", "lijst-aanvaard.pdf", "lijst-geweigerd.pdf"])
    _deliver(gw, ["b-doc.pdf"], CENTRE_B)
    t0 = utcnow()
    assert round_at(t0) == 1
    [first] = smtp_server.wait_for(1)
    body = first.get_body(("plain",)).get_content()
    assert first["To"] == "team@ocmw-a.test"
    assert first["Subject"].startswith("Institutional Pages : 3 nouveaux documents")
    for name in ("2026-11-maandstaat.pdf", "lijst-aanvaard.pdf", "lijst-geweigerd.pdf"):
        assert f"  - {name}" in body
    assert "b-doc.pdf" not in body and "%PDF" not in first.as_string()
    assert f"/dav/{CENTRE_A}/" in body and not list(first.iter_attachments())
    # a fourth document inside the interval waits for the next digest
    _deliver(gw, ["correctie.pdf"])
    assert round_at(t0 + timedelta(seconds=2.9)) == 0
    assert len(smtp_server.messages) == 1
    assert round_at(t0 + timedelta(seconds=3.1)) == 1
    msgs = smtp_server.wait_for(2, timeout=10)
    assert len(msgs) == 2
    second = msgs[1].get_body(("plain",)).get_content()
    assert "  - correctie.pdf" in second and "maandstaat" not in second
    assert msgs[1]["Subject"].startswith("Institutional Pages : 1 nouveau document ")
    assert round_at(t0 + timedelta(seconds=10)) == 0  # nothing new, nothing sent
    time.sleep(0.5)
    assert len(smtp_server.messages) == 2


@pytest.mark.parametrize("language,lines", [
    ("nl", ["Per soort en wetgeving:", "  - Maandstaat — RMI: 2\n", "  - Maandstaat — Wet van 2 april 1965: 1\n",
            "  - Lijst van geweigerde formulieren — Voorschotten op onderhoudsgelden: 1\n",
            "  - Niet geklasseerd: 2\n"]),
    ("fr", ["Par type et législation :", "  - État mensuel — DIS : 2\n", "  - État mensuel — Loi du 2 avril 1965 : 1\n",
            "  - Liste des formulaires refusés — Avances sur pensions alimentaires : 1\n", "  - Non classés : 2\n"]),
])
def test_digest_counts_the_new_documents_per_kind_and_legislation(make_gateway, smtp_server, language, lines):
    gw = make_gateway(env=smtp_server.env(INSTPAGES_NOTIFICATIONS_POLL_SECONDS="3600"))
    notifier = gw.services.mailbox.notifier
    gw.admin.set_contacts(CENTRE_A, "team@ocmw-a.test", language)
    filed = ["ris_maandstaat_2026-10.pdf", "RMI_monthly-statement_202611.pdf", "1965_maandstaat_2026.pdf",
             "voorschotten_geweigerd_2026-09_lijst.pdf"]
    unclassified = ["brief.pdf", "ris_maandstaat_2026-13.pdf"]  # no rule; a month that is not one
    _deliver(gw, filed + unclassified)
    assert notifier.queue_digests(utcnow()) == 1
    notifier.deliver_due()
    [msg] = smtp_server.wait_for(1)
    body = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")  # (non-ASCII text: CRLF)
    for line in lines:
        assert line in body, (line, body)
    # the kinds come in the order of the codes (gateway.core.filing.KINDS), then the legislations
    assert body.index(lines[1]) < body.index(lines[2]) < body.index(lines[3]) < body.index(lines[4])
    for name in filed + unclassified:
        assert f"  - {name}" in body
    assert "%PDF" not in msg.as_string() and not list(msg.iter_attachments())


def test_failed_sends_are_retried_and_the_outbox_survives_a_restart(tmp_path, smtp_server):
    smtp_server.refuse = True  # the relay answers 451 to every mail
    env = smtp_server.env()
    gw = start_gateway(tmp_path / "var", env=env)
    try:
        populate(gw, tmp_path)
        gw.admin.set_contacts(CENTRE_A, "team@ocmw-a.test", "nl")
        _deliver(gw, ["one.pdf"])  # one document: two uploads could fall on either side of a notifier round
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with gw.repo.read() as c:
                rows = gw.repo.outbox(c)
            if rows and rows[0].attempts >= 2:
                break
            time.sleep(0.1)
        assert len(rows) == 1 and rows[0].kind == "digest" and rows[0].sent_at is None
        assert rows[0].attempts >= 2 and rows[0].last_error.startswith("SMTP 451")
    finally:
        gw.stop()
        gw.services.close()
    assert smtp_server.messages == []

    smtp_server.refuse = False
    gw2 = start_gateway(tmp_path / "var", env=env)
    try:
        [msg] = smtp_server.wait_for(1)
        body = msg.get_body(("plain",)).get_content()
        assert "  - one.pdf" in body and "Er is 1 nieuw document" in body
        time.sleep(1.0)  # several more rounds: the digest is neither rebuilt nor sent again
        assert len(smtp_server.messages) == 1
        with gw2.repo.read() as c:
            rows = gw2.repo.outbox(c)
        assert len(rows) == 1 and rows[0].sent_at is not None and rows[0].last_error == ""
    finally:
        gw2.stop()
        gw2.services.close()


@pytest.fixture
def starttls_gateway(make_gateway, tmp_path):
    """A gateway sending through a STARTTLS relay that wants the login gateway / right-password; the factory
    takes the password the gateway is configured with. Yields (factory, relay)."""
    cert, key = tmp_path / "smtp.pem", tmp_path / "smtp.key"
    ensure_self_signed(cert, key, ["127.0.0.1"])
    srv = SMTPCapture(tls_cert=cert, tls_key=key, login=("gateway", "right-password")).start()

    def factory(password: str):
        gw = make_gateway(env=srv.env(INSTPAGES_SMTP_SECURITY="starttls", INSTPAGES_SMTP_USERNAME="gateway",
                                      INSTPAGES_SMTP_PASSWORD=password, INSTPAGES_SMTP_CA_FILE=str(cert)))
        gw.admin.set_contacts(CENTRE_B, "info@cpas-b.test", "fr")
        return gw
    yield factory, srv
    srv.stop()


def test_starttls_with_credentials_and_a_verified_certificate(starttls_gateway):
    factory, srv = starttls_gateway
    gw = factory("right-password")
    outbox_id = gw.admin.notify_test(CENTRE_B)
    [msg] = srv.wait_for(1)
    assert msg["Subject"] == "Institutional Pages : message de test pour CPAS de Bstad"
    assert msg["Message-ID"].startswith(f"<outbox-{outbox_id}-")
    # the relay password is never on the record nor in the outbox
    assert not any("right-password" in (e.detail or "") for e in gw.audit(limit=200))
    with gw.repo.read() as c:
        assert all("right-password" not in r.body for r in gw.repo.outbox(c))


def test_wrong_relay_password_is_retried_not_lost(starttls_gateway):
    factory, srv = starttls_gateway
    gw = factory("wrong-password")
    gw.admin.notify_test(CENTRE_B)
    deadline = time.monotonic() + 10
    row = None
    while time.monotonic() < deadline:
        with gw.repo.read() as c:
            row = gw.repo.outbox(c)[0]
        if row.attempts >= 1:
            break
        time.sleep(0.1)
    assert row.sent_at is None and row.last_error.startswith("SMTP 535")
    assert "wrong-password" not in row.last_error and srv.messages == []


def test_two_senders_sharing_one_outbox_send_each_mail_once(make_gateway, smtp_server):
    gw = make_gateway(populated=True)  # its own server sends nothing: mail is off in its configuration
    gw.admin.set_contacts(CENTRE_A, "team@ocmw-a.test", "nl")
    cfg = load_config(None, env=smtp_server.env(), overrides={"data_dir": str(gw.data_dir)})
    senders = [Notifier(cfg, gw.repo), Notifier(cfg, gw.repo)]
    with gw.repo.write() as c:
        centre = gw.repo.institution(c, CENTRE_A)
        ids = [senders[0].queue(c, "test", centre, actor=f"run-{i}") for i in range(30)]
    assert None not in ids

    def drain(n: Notifier):
        for _ in range(40):
            n.deliver_due(limit=5)
    threads = [threading.Thread(target=drain, args=(n,)) for n in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    smtp_server.wait_for(30)
    time.sleep(0.3)
    ids_seen = sorted(m["Message-ID"] for m in smtp_server.messages)
    assert len(ids_seen) == 30 and len(set(ids_seen)) == 30
    assert len(_sent(gw)) == 30


def test_first_contacts_get_digests_of_what_arrives_from_then_on(make_gateway, smtp_server):
    gw = make_gateway(env=smtp_server.env(INSTPAGES_NOTIFICATIONS_DIGEST_INTERVAL_SECONDS="0"))
    _deliver(gw, ["before-1.pdf", "before-2.pdf"], CENTRE_B)
    time.sleep(0.6)
    gw.admin.set_contacts(CENTRE_B, "info@cpas-b.test", "fr")
    _deliver(gw, ["after.pdf"], CENTRE_B)
    [msg] = smtp_server.wait_for(1)
    body = msg.get_body(("plain",)).get_content()
    assert "  - after.pdf" in body and "before" not in body
    time.sleep(0.6)
    assert len(smtp_server.messages) == 1


def test_mail_off_queues_nothing_and_says_so(make_gateway):
    gw = make_gateway()
    gw.admin.set_contacts(CENTRE_PAPER, "x@ocmw.test", "nl")
    gw.admin.transition(CENTRE_PAPER, "request", "r")
    _, _, outbox_id = gw.admin.transition(CENTRE_PAPER, "activate", "forms")
    assert outbox_id is None
    from storage.errors import AdminConflict
    with pytest.raises(AdminConflict, match="mail is not configured"):
        gw.admin.notify_test(CENTRE_PAPER)
