"""Notifications: the activation notice, new-document digests and test mails, through an outbox.

A mail is first a row of the ``outbox`` table, written in the same transaction as its cause: the status change
of an activation, or the move of a centre's digest cursor past the documents it announces. So a crash loses
nothing and a digest is never built twice. :meth:`Notifier.deliver_due` then sends due rows over SMTP; each row
is claimed for a while by one process first (several gateways may share a database), marked sent after the
relay accepted it, and on failure retried with exponential back-off -- never dropped. The only duplicate
possible is a process dying between the relay's "250" and the mark; the Message-ID is derived from the row,
so such a duplicate carries the same Message-ID as the first copy.

Templates are plain text in ``templates/mail/<kind>.<language>.txt`` (Dutch and French); their first line is
the subject. Mails name documents and count them, never carry their content. A digest counts the new documents
per kind and legislation as the filing rules filed them (:mod:`gateway.core.filing`), the unclassified apart.
"""
from __future__ import annotations

import logging
import smtplib
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import jinja2

from gateway.config import Config
from gateway.core import filing
from storage.repository import Repository, as_utc, utcnow

log = logging.getLogger("instpages.notify")

LANGUAGES = ("nl", "fr")
KINDS = ("activation", "digest", "test")
#: a digest names at most this many documents; the rest are counted
DIGEST_NAMES = 50
#: seconds a process holds a message it is sending
CLAIM_SECONDS = 120.0

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates" / "mail"),
                          autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(kind: str, language: str, **context) -> tuple[str, str]:
    """(subject, body) of a mail in the centre's language (Dutch when it has none of ours)."""
    lang = language if language in LANGUAGES else "nl"
    text = _ENV.get_template(f"{kind}.{lang}.txt").render(**context)
    subject, _, body = text.partition("\n")
    # a header never carries a line break, whatever a centre's name holds
    return " ".join(subject.split())[:300], body


#: how a digest names the kinds of document and the legislations, per language (the codes: gateway.core.filing)
KIND_WORDS = {
    "nl": {"monthly-statement": "Maandstaat",
           "accepted-forms": "Lijst van aanvaarde of gedeeltelijk aanvaarde formulieren",
           "refused-forms": "Lijst van geweigerde formulieren",
           "legality-letter": "Brief over illegaliteit of legaliteit",
           "annual-settlement": "Jaarlijkse afrekening",
           "settlement-annex": "Bijlage bij de jaarlijkse afrekening"},
    "fr": {"monthly-statement": "État mensuel",
           "accepted-forms": "Liste des formulaires acceptés ou partiellement acceptés",
           "refused-forms": "Liste des formulaires refusés",
           "legality-letter": "Lettre concernant l'illégalité ou la légalité",
           "annual-settlement": "Décompte annuel",
           "settlement-annex": "Annexe au décompte annuel"},
}
LEGISLATION_WORDS = {
    "nl": {"ris": "RMI", "law1965": "Wet van 2 april 1965", "maintenance": "Voorschotten op onderhoudsgelden"},
    "fr": {"ris": "DIS", "law1965": "Loi du 2 avril 1965", "maintenance": "Avances sur pensions alimentaires"},
}
assert all(set(w) == set(filing.KINDS) for w in KIND_WORDS.values())
assert all(set(w) == set(filing.LEGISLATIONS) for w in LEGISLATION_WORDS.values())


def by_kind(docs, language: str) -> tuple[list[tuple[str, int]], int]:
    """([("<kind> — <legislation>", count)], unclassified count) of documents with ``kind`` and ``legislation``
    attributes, in the order of the kinds, then of the legislations (codes as filing.py lists them)."""
    lang = language if language in LANGUAGES else "nl"
    counts: dict[tuple[str, str], int] = {}
    unclassified = 0
    for d in docs:
        if d.kind is None:
            unclassified += 1
        else:
            counts[(d.kind, d.legislation)] = counts.get((d.kind, d.legislation), 0) + 1
    order = {k: i for i, k in enumerate(filing.KINDS)}, {k: i for i, k in enumerate(filing.LEGISLATIONS)}
    groups = sorted(counts.items(), key=lambda kv: (order[0].get(kv[0][0], 99), order[1].get(kv[0][1], 99)))
    words_k, words_l = KIND_WORDS[lang], LEGISLATION_WORDS[lang]
    return [(f"{words_k.get(k, k)} — {words_l.get(leg, leg)}", n) for (k, leg), n in groups], unclassified


def recipients_of(contacts: str) -> list[str]:
    return [a.strip() for a in (contacts or "").split(",") if a.strip()]


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0


class Notifier:
    def __init__(self, config: Config, repo: Repository, *, clock: Callable[[], float] = time.time):
        self.config = config
        self.repo = repo
        self.clock = clock
        self.smtp = config.smtp
        self.settings = config.notifications
        self.node = config.effective_node_id

    @property
    def enabled(self) -> bool:
        return bool(self.smtp.host)

    def mailbox_link(self, institution_id: str) -> str:
        return f"{self.config.public_url}/dav/{quote(institution_id)}/"

    # -- queueing (inside the caller's transaction) ---------------------------------------------------------------
    def queue(self, c, kind: str, centre, **context) -> int | None:
        """Queue a mail to the centre's contacts; None when mail is off or the centre has no contacts."""
        to = recipients_of(centre.contacts)
        if not self.enabled or not to:
            return None
        subject, body = render(kind, centre.language, centre=centre, link=self.mailbox_link(centre.id), **context)
        return self.repo.enqueue(c, kind, centre.id, ",".join(to), subject, body)

    def queue_digests(self, now: datetime | None = None) -> int:
        """One digest per active centre with contacts and new documents, unless its last one is younger than
        the interval. Returns how many were queued."""
        if not self.enabled:
            return 0
        now = now or utcnow()
        interval = timedelta(seconds=self.settings.digest_interval_seconds)
        queued = 0
        with self.repo.read() as c:
            candidates = self.repo.digest_candidates(c)
        for cand in candidates:
            last = as_utc(cand.last_digest_at)
            if last is not None and now - last < interval:
                continue
            with self.repo.write() as c:
                centre = self.repo.institution(c, cand.id)
                if centre is None or centre.digest_cursor != cand.digest_cursor:
                    continue  # another process got there first
                docs = self.repo.documents_after(c, cand.id, cand.digest_cursor, limit=100000)
                if not docs:
                    continue
                names = [f"{d.folder}/{d.name}" if d.folder else d.name for d in docs]
                if not self.repo.advance_digest(c, cand.id, cand.digest_cursor, docs[-1].id, now):
                    continue
                kinds, unclassified = by_kind(docs, centre.language)
                self.queue(c, "digest", centre, count=len(names), documents=names[:DIGEST_NAMES],
                           more=max(0, len(names) - DIGEST_NAMES), kinds=kinds, unclassified=unclassified)
                queued += 1
        return queued

    # -- sending ------------------------------------------------------------------------------------------------
    def deliver_due(self, limit: int = 20) -> DeliveryReport:
        if not self.enabled:
            return DeliveryReport()
        sent = failed = 0
        now = self.clock()
        with self.repo.read() as c:
            due = self.repo.due_messages(c, now, limit)
        for message_id in due:
            with self.repo.write() as c:
                row = self.repo.claim_message(c, message_id, self.node, now, now + CLAIM_SECONDS)
            if row is None:
                continue
            try:
                self._send(row)
            except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
                failed += 1
                delay = min(self.settings.retry_base_seconds * 2 ** row.attempts, self.settings.retry_max_seconds)
                error = _describe(exc)
                log.warning("mail %d to centre %s not sent (attempt %d, next in %.1f s): %s", row.id,
                            row.institution_id, row.attempts + 1, delay, error)
                with self.repo.write() as c:
                    self.repo.message_failed(c, row.id, self.clock() + delay, error)
                continue
            with self.repo.write() as c:
                self.repo.message_sent(c, row.id)
            sent += 1
            log.info("mail %d (%s) sent for centre %s", row.id, row.kind, row.institution_id)
        return DeliveryReport(sent, failed)

    def message_of(self, row) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.smtp.from_address
        msg["To"] = ", ".join(recipients_of(row.recipients))
        msg["Subject"] = row.subject
        msg["Date"] = formatdate(as_utc(row.created_at).timestamp(), usegmt=True)
        domain = self.smtp.from_address.rpartition("@")[2] or "localhost"
        # the same row always gets the same Message-ID: a resend after a crash is recognisably the same mail
        msg["Message-ID"] = f"<outbox-{row.id}-{int(as_utc(row.created_at).timestamp())}@{domain}>"
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Instpages-Kind"] = row.kind
        msg.set_content(row.body)
        return msg

    def _send(self, row) -> None:
        s = self.smtp
        ctx = ssl.create_default_context(cafile=s.ca_file or None)
        if s.security == "tls":
            client = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=ctx)
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        with client:
            client.ehlo()
            if s.security == "starttls":
                if not client.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError("the relay does not offer STARTTLS")
                client.starttls(context=ctx)
                client.ehlo()
            if s.username:
                client.login(s.username, s.password)
            client.send_message(self.message_of(row), from_addr=s.from_address,
                                to_addrs=recipients_of(row.recipients))


def _describe(exc: BaseException) -> str:
    """A short reason for the record; never the credentials."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code}: {exc.smtp_error.decode('utf-8', 'replace')[:200]}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "recipients refused: " + ", ".join(sorted(exc.recipients))[:200]
    return f"{type(exc).__name__}: {exc}"[:300]
