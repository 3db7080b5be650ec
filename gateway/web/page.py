"""``/page/``: the institutional page -- a centre's mailbox in the browser, for its staff.

Staff open ``https://<host>:8443/`` (a browser is sent here), log in strongly -- the console's login, in the frame
both share (:mod:`gateway.web.webpages`) -- and land on the mailboxes of the centres that granted them access
(straight into the centre when there is one). A centre's page lists its documents newest first with kind,
legislation, period, size, delivery and receipt; filters them by kind, legislation, period and "new since my last
visit" (a plain GET form); downloads one document, or a selection or a whole period as one streamed ZIP
(:mod:`gateway.web.zipstream`, bounded by :data:`ZIP_MAX_DOCUMENTS` and :data:`ZIP_MAX_BYTES`); archives a document
where the grant allows it (POST with a CSRF token); and shows each document's receipt.

The page asks the core for everything about documents (:class:`~gateway.core.session.MailboxSession`: the catalogue,
receipts, downloads, archive), so the permission checks and the record are those of every other way in. A centre
or a document the caller may not see -- another centre's id in the URL or a form, a forged id, one that does not
exist -- gets one and the same "not found" page. The page's own refusals (an unknown filter value, a form without
its CSRF token, a ZIP over its limit) change nothing and are put on the record through the core too.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlencode

from auth.policy import Action, Decision, decide
from auth.principal import Principal, Role
from gateway.core import filing
from gateway.core.catalogue import MAX_ROWS, UNCLASSIFIED, DocumentFilter, document_filter
from gateway.core.mailbox import Mailbox
from gateway.core.path import VPath
from gateway.core.session import MailboxSession
from gateway.web import i18n
from gateway.web.console import ERRORS, STYLESHEET
from gateway.web.console import TEMPLATES as CONSOLE_TEMPLATES
from gateway.web.webpages import Page, Req, StrongLoginPages, size
from gateway.web.websession import SessionSigner, WebSession
from gateway.web.zipstream import CHUNK, Member, member_names, zip_stream
from storage.errors import GatewayError, MalformedRequest, NotFound, lookup
from storage.repository import CatalogueRow

TEMPLATES = Path(__file__).parent / "templates" / "page"
#: a ZIP holds at most this many documents, and this many bytes of them (read at each request)
ZIP_MAX_DOCUMENTS = 500
ZIP_MAX_BYTES = 1024 * 1024 * 1024
#: documents on one page of the list
PAGE_SIZE = 100

_CENTRE = re.compile(r"/centres/([^/]+)(/zip|/documents/([^/]+)(/download|/archive)?)?/?")
_KINDS = (*filing.KINDS, UNCLASSIFIED)
_MAX_ID = 2**31 - 1

PAGE_STYLES = b"""\
table.documents td.size, table.documents th.size { text-align: right; white-space: nowrap; }
table.documents td.period, table.documents td.delivered { white-space: nowrap; }
table.documents td.actions form { display: inline; }
table.documents tr.new td:first-child { border-left: 3px solid var(--accent); }
form.filter label { margin: .2rem .8rem .2rem 0; }
.receipt-state { font-size: .9rem; }
"""


def _doc_id(raw: str) -> int:
    """A document id from a URL or a form; anything else is 0, an id no document has (the core answers it)."""
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) <= 10 and int(raw) <= _MAX_ID else 0


class InstitutionalPage(StrongLoginPages):
    COOKIE = "ip_page"
    LOGIN_COOKIE = "ip_page_login"
    LOGIN_FORM = b"page-login-form"
    STYLESHEET_PATH = "/static/page.css"
    BRAND = "app.page"
    HOME = ("page.mailboxes", "nav-mailboxes")
    #: the page's own templates first; the frame, the login and the message pages are the console's
    TEMPLATES = (TEMPLATES, CONSOLE_TEMPLATES)

    def __init__(self, mailbox: Mailbox, signer: SessionSigner, *, secure_cookie: bool = True):
        super().__init__(mailbox, signer, stylesheet=STYLESHEET + PAGE_STYLES, secure_cookie=secure_cookie)
        self.env.filters.update(kind=lambda code: "dockind." + (code or UNCLASSIFIED))

    # -- routing -----------------------------------------------------------------------------------------------
    def serve(self, req: Req, session: WebSession, principal: Principal, ctx: dict) -> Page:
        mailbox = MailboxSession(self.mailbox, principal, "web", req.source)
        if req.path == "/":
            if req.method == "POST":
                return self._method_not_allowed(req, ctx, "GET, HEAD")
            return self._guarded(req, ctx, lambda: self._mailboxes(req, ctx, mailbox))
        m = _CENTRE.fullmatch(req.path)
        if m is None:
            return self._not_found(req, ctx)
        centre, tail, raw_doc, verb = m.groups()
        if len(centre) != 10 or not centre.isdigit():  # not even the form of a centre: as one that does not exist
            mailbox.record_refusal("list", None, f"no such centre {centre[:20]!r}", outcome="denied")
            return self._not_found(req, ctx)
        posted = tail == "/zip" or verb == "/archive"
        if req.method == "POST" and not posted:
            return self._method_not_allowed(req, ctx, "GET, HEAD")
        if posted:
            if req.method != "POST":
                return self._method_not_allowed(req, ctx, "POST")
            if not self.signer.csrf_ok(session, req.form.get("csrf", "")):
                action = "archive" if verb else "download"
                mailbox.record_refusal(action, centre, "form without a valid CSRF token", outcome="denied")
                return self._csrf_refused(req, ctx, f"{req.base}/centres/{centre}", "page.back")
        if tail is None:
            produce = functools.partial(self._centre, req, ctx, mailbox, centre)
        elif tail == "/zip":
            produce = functools.partial(self._zip, req, ctx, mailbox, centre)
        elif verb is None:
            produce = functools.partial(self._receipt, req, ctx, mailbox, centre, _doc_id(raw_doc))
        elif verb == "/download":
            if req.method == "HEAD":
                return self._method_not_allowed(req, ctx, "GET")
            produce = functools.partial(self._download, mailbox, centre, _doc_id(raw_doc))
        else:
            produce = functools.partial(self._archive, req, mailbox, centre, _doc_id(raw_doc))
        return self._guarded(req, ctx, produce, back=f"{req.base}/centres/{centre}")

    def _guarded(self, req: Req, ctx: dict, produce: Callable[[], Page], back: str = "") -> Page:
        try:
            return produce()
        except NotFound:
            return self._not_found(req, ctx)
        except GatewayError as exc:
            return self._refused(req, ctx, exc, back)

    # -- pages ---------------------------------------------------------------------------------------------------
    def _mailboxes(self, req: Req, ctx: dict, mailbox: MailboxSession) -> Page:
        if mailbox.principal.role is Role.SECURITY_CELL:
            return self._render(req, "mailboxes.html", title=i18n.t("page.mailboxes", req.lang), centres=[],
                                cell=True, **ctx)
        centres = mailbox.list("/")
        if len(centres) == 1:
            return self._redirect(f"{req.base}/centres/{centres[0].name}")
        return self._render(req, "mailboxes.html", title=i18n.t("page.mailboxes", req.lang), centres=centres,
                            cell=False, **ctx)

    def _filter(self, req: Req, mailbox: MailboxSession, centre: str) -> DocumentFilter:
        """The list's filter from the query; an unknown value is refused (on the record) naming what is accepted."""
        q = req.query
        try:
            new = q.get("new", "")
            if new not in ("", "1"):
                raise MalformedRequest("new is 1 (only the documents delivered since your last visit) or absent")
            offset = q.get("offset", "0") or "0"
            if not (offset.isascii() and offset.isdigit() and len(offset) <= 6):
                raise MalformedRequest("offset is a number of documents (0, 100, 200...)")
            return document_filter(kind=q.get("kind"), legislation=q.get("legislation"),
                                   period=q.get("period", "").strip(), new=new == "1", limit=PAGE_SIZE + 1,
                                   offset=int(offset))
        except MalformedRequest as exc:
            mailbox.record_refusal("list", centre, f"filter refused: {exc.message}")
            raise

    def _centre(self, req: Req, ctx: dict, mailbox: MailboxSession, centre: str) -> Page:
        try:
            flt = self._filter(req, mailbox, centre)
        except MalformedRequest as exc:
            return self._bad_filter(req, ctx, exc, centre)
        catalogue = mailbox.documents(centre, flt, visit=True)
        inst = self.mailbox.institution(centre)
        rows = catalogue.documents[:PAGE_SIZE]
        keep = {"kind": flt.kind, "legislation": flt.legislation, "period": flt.period, "new": "1" if flt.new else ""}
        here = f"{req.base}/centres/{inst.id}"
        older = here + "?" + urlencode({**keep, "offset": flt.offset + PAGE_SIZE}) \
            if len(catalogue.documents) > PAGE_SIZE else ""
        newer = here + "?" + urlencode({**keep, "offset": max(0, flt.offset - PAGE_SIZE)}) if flt.offset else ""
        done = req.query.get("done", "")
        return self._render(req, "centre.html", title=inst.name, centre=inst, documents=rows, flt=flt,
                            last_visit=catalogue.last_visit, kinds=_KINDS, legislations=tuple(filing.LEGISLATIONS),
                            may_archive=self._may_archive(mailbox, inst), older=older, newer=newer,
                            zip_max=ZIP_MAX_DOCUMENTS, zip_bytes=size(ZIP_MAX_BYTES),
                            flash=i18n.t("done.archived", req.lang) if done == "archived" else "",
                            here=self._here(req, **keep, offset=flt.offset or None), **ctx)

    def _receipt(self, req: Req, ctx: dict, mailbox: MailboxSession, centre: str, doc_id: int) -> Page:
        row = mailbox.receipt(centre, doc_id)
        inst = self.mailbox.institution(centre)
        return self._render(req, "receipt.html", title=f"{i18n.t('doc.receipt', req.lang)} - {row.name}",
                            centre=inst, doc=row, may_archive=self._may_archive(mailbox, inst),
                            here=self._here(req), **ctx)

    @staticmethod
    def _may_archive(mailbox: MailboxSession, inst) -> bool:
        """Whether to offer the archive button (the core decides again when it is pressed)."""
        return decide(mailbox.principal, Action.ARCHIVE, inst.id, inst.status) is Decision.ALLOWED

    # -- downloads and changes ----------------------------------------------------------------------------------
    def _download(self, mailbox: MailboxSession, centre: str, doc_id: int) -> Page:
        download = mailbox.open_download(mailbox.document_path(centre, doc_id))
        name = download.path.name
        return Page("200 OK", headers=[("Content-Disposition", _attachment(name))], content_type="application/pdf",
                    stream=DocumentBody(download), length=download.size)

    def _archive(self, req: Req, mailbox: MailboxSession, centre: str, doc_id: int) -> Page:
        mailbox.archive(mailbox.document_path(centre, doc_id))
        return self._redirect(f"{req.base}/centres/{centre}?done=archived")

    def _zip(self, req: Req, ctx: dict, mailbox: MailboxSession, centre: str) -> Page:
        """The selected documents (``doc`` fields), or those of a period (``period``, with ``kind`` and
        ``legislation``), as one ZIP -- or a refusal that changes nothing: over the limits, an id that is no
        document of the centre's mailbox, an unknown filter value."""
        selected = req.form_lists.get("doc", [])
        if selected:
            if len(selected) > ZIP_MAX_DOCUMENTS:
                return self._zip_refused(req, ctx, mailbox, centre, "zip.too_many", len(selected))
            rows = self._selected(mailbox, centre, list(dict.fromkeys(_doc_id(s) for s in selected)))
            label = "selection"
        else:
            form = req.form
            period = form.get("period", "").strip()
            if not period:
                mailbox.record_refusal("download", centre, "ZIP refused: no document selected and no period")
                return self._message(req, ctx, "400 Bad Request", "error.bad_request", i18n.t("zip.nothing", req.lang),
                                     back=f"{req.base}/centres/{centre}", back_key="page.back")
            try:
                flt = document_filter(kind=form.get("kind"), legislation=form.get("legislation"), period=period,
                                      limit=MAX_ROWS)
            except MalformedRequest as exc:
                mailbox.record_refusal("download", centre, f"ZIP refused: {exc.message}")
                return self._bad_filter(req, ctx, exc, centre)
            rows = mailbox.documents(centre, flt).documents
            if len(rows) > ZIP_MAX_DOCUMENTS:
                asked = len(rows) if len(rows) < MAX_ROWS else f"{MAX_ROWS}+"
                return self._zip_refused(req, ctx, mailbox, centre, "zip.too_many", asked)
            label = flt.period
        total = sum(r.size for r in rows)
        if total > ZIP_MAX_BYTES:
            return self._zip_refused(req, ctx, mailbox, centre, "zip.too_large", size(total))
        if not rows:
            return self._message(req, ctx, "404 Not Found", "notfound.title", i18n.t("page.none", req.lang),
                                 back=f"{req.base}/centres/{centre}", back_key="page.back")
        names = member_names([r.relpath for r in rows])
        members = [Member(n, r.delivered_at, functools.partial(mailbox.open_download,
                                                                VPath(r.institution_id, tuple(r.relpath.split("/")))))
                   for n, r in zip(names, rows)]
        filename = f"{rows[0].institution_id}-{label}.zip"
        return Page("200 OK", headers=[("Content-Disposition", _attachment(filename))],
                    content_type="application/zip", stream=zip_stream(members))

    @staticmethod
    def _selected(mailbox: MailboxSession, centre: str, ids: list[int]) -> list[CatalogueRow]:
        """The documents of the centre's mailbox with these ids, newest first; NotFound (on the record) when one
        is not there -- another centre's, archived, forged."""
        listed = {r.id: r for r in mailbox.documents(centre, document_filter(limit=MAX_ROWS)).documents}
        rows = []
        for doc_id in ids:
            row = listed.get(doc_id)
            if row is None:  # beyond the listing, or no document of this mailbox: the core says which
                mailbox.document_path(centre, doc_id)
                row = mailbox.receipt(centre, doc_id)
            rows.append(row)
        return sorted(rows, key=lambda r: (r.delivered_at, r.id), reverse=True)

    # -- answers ---------------------------------------------------------------------------------------------------
    def _not_found(self, req: Req, ctx: dict) -> Page:
        # deliberately nothing of the request in it: every unknown or hidden centre or document, the same page
        return self._message(req, ctx, "404 Not Found", "notfound.title", i18n.t("page.notfound", req.lang),
                             back=req.base + "/", back_key="page.mailboxes")

    def _refused(self, req: Req, ctx: dict, exc: GatewayError, back: str) -> Page:
        status, title = lookup(ERRORS, exc) or ("500 Internal Server Error", "error.title")
        return self._message(req, ctx, status, title, exc.message, back=back or req.base + "/",
                             back_key="page.back" if back else "page.mailboxes")

    def _bad_filter(self, req: Req, ctx: dict, exc: MalformedRequest, centre: str) -> Page:
        return self._message(req, ctx, "400 Bad Request", "error.filter", exc.message,
                             back=f"{req.base}/centres/{centre}", back_key="page.back")

    def _zip_refused(self, req: Req, ctx: dict, mailbox: MailboxSession, centre: str, key: str, asked) -> Page:
        values = dict(n=ZIP_MAX_DOCUMENTS, size=size(ZIP_MAX_BYTES), asked=asked)
        mailbox.record_refusal("download", centre, "ZIP refused: " + i18n.t(key, "en", **values))
        text = i18n.t(key, req.lang, **values)
        return self._message(req, ctx, "413 Content Too Large", "error.too_large", text,
                             back=f"{req.base}/centres/{centre}", back_key="page.back")


class DocumentBody:
    """The body of one document's download: read through the core as the client takes it; whatever happens,
    the download is closed and on the record (complete only when every byte went out)."""

    def __init__(self, download):
        self.download = download

    def __iter__(self):
        d, offset = self.download, 0
        while offset < d.size:
            data = d.fetch(offset, CHUNK)
            if not data:
                break
            yield data
            d.served(offset, len(data))  # handed to the server, and it asked for more: sent
            offset += len(data)
        d.close()  # on the record now, not only once the server is done with the connection

    def close(self) -> None:
        self.download.close()


def _attachment(name: str) -> str:
    ascii_name = re.sub(r'[^A-Za-z0-9._() -]', "_", name)[:150] or "document"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
