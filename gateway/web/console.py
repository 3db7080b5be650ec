"""``/console/``: the web console of the security cell and of the centres' local administrators.

Server-rendered pages (Jinja2, HTML autoescaped), plain forms and links: every task works without JavaScript, and
the pages carry none (the Content-Security-Policy forbids it). Changes are POSTs carrying a CSRF token derived
from the session, answered by a redirect (303) to the page that shows the result.

Login is the strong login of the other web pages (``gateway.web.websession.strong_login``), in the frame the console
shares with the institutional page (:mod:`gateway.web.webpages`): the user name first, then the password with the
code of the token card whose number the page asks -- or, with an eID certificate in the TLS handshake, the password
alone. The session is a signed cookie (``ip_console``; HttpOnly, SameSite=Strict, Secure)
and the principal is loaded again on every request, so a disabled account, a withdrawn designation or a changed
grant takes effect at once.

Everything the console does goes through :class:`gateway.admin.service.Administration`, which decides (delegation
policy), records and refuses; the pages only choose which forms to show. A centre the user may not administer answers
exactly as one that does not exist -- the same 404 page, whatever the id was.

Language: ``?lang=nl|fr|en`` (remembered in the ``ip_lang`` cookie), else the browser's Accept-Language, else
English. Labels live in :mod:`gateway.web.i18n`; the core's messages are shown as they are (English).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from collections.abc import Callable

from auth.policy import STATUSES, AdminAction
from auth.principal import Principal
from gateway.web import i18n
from gateway.admin.notify import LANGUAGES
from gateway.admin.service import Administration
from gateway.core.lifecycle import VERBS, allowed_verbs
from gateway.core.mailbox import Mailbox
from gateway.web.webpages import CSP, SECURITY_HEADERS, Page, Req, StrongLoginPages  # noqa: F401 (CSP: the pages')
from gateway.web.websession import SessionSigner, WebSession
from storage import errors
from storage.errors import AdminError, AdminNotFound, GatewayError, lookup

log = logging.getLogger("instpages.console")

COOKIE = "ip_console"
LOGIN_COOKIE = "ip_console_login"  # binds the login form's CSRF token before there is a session
RECORD_LIMIT = 100
TEMPLATES = Path(__file__).parent / "templates" / "console"

#: POST actions on a centre, and the confirmation shown after each
ACTIONS = ("transition", "designate", "undesignate", "consultant", "contacts", "grant", "revoke", "restore",
           "notify-test")
_DONE = {"transition", "activated", "activated_nomail", "designate", "undesignate", "consultant", "contacts",
         "grant", "revoke", "restore", "notify-test"}
_CENTRE_PATH = re.compile(r"/centres/([^/]+)(?:/([^/]+))?/?")

_NOT_FOUND = ("404 Not Found", "notfound.title")
_FORBIDDEN = ("403 Forbidden", "error.forbidden")
_CONFLICT = ("409 Conflict", "error.conflict")
_BAD_REQUEST = ("400 Bad Request", "error.bad_request")
#: a server fault: logged, and shown as a refusal with the error's message
_SERVER_FAULT = ("500 Internal Server Error", "error.title")
#: the one table from the core's errors (storage.errors) to the console's answer (status, title key), looked up
#: along the error's MRO; tests/test_errors.py checks that it answers every error
ERRORS: dict[type[GatewayError], tuple[str, str]] = {
    errors.AdminError: _BAD_REQUEST,
    errors.AdminNotFound: _NOT_FOUND,
    errors.AdminForbidden: _FORBIDDEN,
    errors.AdminConflict: _CONFLICT,
    errors.ServiceUnavailable: ("503 Service Unavailable", "error.unavailable"),
    errors.NotFound: _NOT_FOUND,
    errors.PermissionDenied: _FORBIDDEN,
    errors.AuthenticationFailed: _FORBIDDEN,
    errors.Throttled: _FORBIDDEN,
    errors.InstitutionNotActive: _FORBIDDEN,
    errors.Unsupported: _FORBIDDEN,
    errors.AlreadyExists: _CONFLICT,
    errors.Conflict: _CONFLICT,
    errors.ContentRefused: ("415 Unsupported Media Type", "error.bad_request"),
    errors.TooLarge: ("413 Content Too Large", "error.bad_request"),
    errors.InvalidName: _BAD_REQUEST,
    errors.MalformedRequest: _BAD_REQUEST,
    errors.IntegrityFailure: _SERVER_FAULT,
    errors.ConfigError: _SERVER_FAULT,
}

STYLESHEET = b"""\
:root { --ink: #1d2733; --muted: #5b6673; --line: #d5dbe2; --accent: #1f4e79; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, "Segoe UI", Roboto, Arial, sans-serif; color: var(--ink);
       background: var(--bg); }
header.top { background: var(--accent); color: #fff; padding: .6rem 1.2rem; display: flex; flex-wrap: wrap;
             gap: .6rem 1.5rem; align-items: center; }
header.top a { color: #fff; }
header.top .brand { font-weight: 600; margin-right: auto; }
header.top form { display: inline; margin: 0; }
header.top button { background: transparent; color: #fff; border: 1px solid #fff; }
nav.langs a, nav.langs strong { margin-left: .4rem; }
main { max-width: 72rem; margin: 1rem auto; padding: 0 1.2rem 2rem; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .4rem 1.2rem 1rem;
          margin: 1rem 0; }
h1 { font-size: 1.6rem; margin: .6rem 0; }
h2 { font-size: 1.2rem; margin: .8rem 0 .5rem; }
h3 { font-size: 1rem; margin: .8rem 0 .4rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: .9rem; }
td form { margin: 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
form.block { margin: .6rem 0; padding: .6rem .8rem; border: 1px dashed var(--line); border-radius: 6px; }
form.block p { margin: .3rem 0; }
label { display: inline-block; margin-right: .6rem; }
input, select, textarea, button { font: inherit; }
input, select, textarea { padding: .25rem .35rem; border: 1px solid #9aa5b1; border-radius: 4px; }
button { padding: .25rem .8rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent);
         color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
.status { display: inline-block; padding: 0 .5rem; border-radius: 1rem; font-size: .9rem; border: 1px solid; }
.status-paper { color: #6b5800; background: #fff8d6; }
.status-requested { color: #0b4f8a; background: #e2f0ff; }
.status-active { color: #135e2b; background: #e1f6e7; }
.status-suspended { color: #8a1c1c; background: #ffe5e5; }
.flash { background: #e1f6e7; border: 1px solid #9fd3ae; padding: .5rem .8rem; border-radius: 6px; }
.alert { background: #ffe5e5; border: 1px solid #e3a1a1; padding: .5rem .8rem; border-radius: 6px; }
.muted { color: var(--muted); }
.filters a, .filters strong { margin-right: .7rem; }
"""


def _addresses(contacts: str) -> list[str]:
    return [a for a in (contacts or "").split(",") if a.strip()]


class Console(StrongLoginPages):
    COOKIE = COOKIE
    LOGIN_COOKIE = LOGIN_COOKIE
    LOGIN_FORM = b"console-login-form"
    STYLESHEET_PATH = "/static/console.css"
    BRAND = "app.console"
    HOME = ("nav.centres", "nav-centres")
    TEMPLATES = (TEMPLATES,)

    def __init__(self, mailbox: Mailbox, signer: SessionSigner, *, administration: Callable[..., Administration],
                 secure_cookie: bool = True):
        super().__init__(mailbox, signer, stylesheet=STYLESHEET, secure_cookie=secure_cookie)
        #: the services factory's (``Services.administration``)
        self.administration = administration

    # -- routing -----------------------------------------------------------------------------------------------
    def serve(self, req: Req, session: WebSession, principal: Principal, ctx: dict) -> Page:
        admin = self.administration(protocol="web", source=req.source, principal=principal)
        if not admin.may(AdminAction.LIST_ALL):
            return self._message(req, ctx, "403 Forbidden", "nothing.title", i18n.t("nothing.text", req.lang))
        if req.path in ("/", "/unclassified"):
            if req.method == "POST":
                return self._method_not_allowed(req, ctx, "GET, HEAD")
            page = self._centres if req.path == "/" else self._unclassified
            return self._guarded(req, ctx, None, lambda: page(req, ctx, admin))
        m = _CENTRE_PATH.fullmatch(req.path)
        if m is None or (m.group(2) is not None and m.group(2) not in ACTIONS + ("record",)):
            return self._not_found(req, ctx)
        raw_id, action = m.groups()
        try:
            # the same answer for a centre that does not exist, a malformed id and one the user may not know
            centre = admin.centre(raw_id)
        except AdminNotFound:
            return self._not_found(req, ctx)
        except GatewayError as exc:
            return self._refused(req, ctx, exc, None)
        back = f"{req.base}/centres/{centre.id}"
        if action is None or action == "record":
            if req.method == "POST":
                return self._method_not_allowed(req, ctx, "GET, HEAD")
            if action == "record":
                return self._guarded(req, ctx, centre, lambda: self._record(req, ctx, admin, centre))
            return self._guarded(req, ctx, centre, lambda: self._centre(req, ctx, admin, centre))
        if req.method != "POST":
            return self._method_not_allowed(req, ctx, "POST", back)
        if not self.signer.csrf_ok(session, req.form.get("csrf", "")):
            return self._csrf_refused(req, ctx, back, "nav.back_centre")
        return self._guarded(req, ctx, centre, lambda: self._change(req, admin, centre, action))

    def _guarded(self, req: Req, ctx: dict, centre, produce) -> Page:
        try:
            return produce()
        except GatewayError as exc:
            return self._refused(req, ctx, exc, centre)

    # -- pages ---------------------------------------------------------------------------------------------------
    def _centres(self, req: Req, ctx: dict, admin: Administration) -> Page:
        rows = admin.institutions()
        wanted = req.query.get("status", "")
        if wanted and wanted not in STATUSES:
            return self._refused(req, ctx, AdminError(f"unknown status {wanted[:20]!r} (one of "
                                                      f"{', '.join(STATUSES)})"), None)
        counts = {s: sum(1 for r in rows if r.status == s) for s in STATUSES}
        shown = [r for r in rows if not wanted or r.status == wanted]
        return self._render(req, "centres.html", title=i18n.t("centres.title", req.lang), centres=shown,
                            total=len(rows), counts=counts, statuses=STATUSES, wanted=wanted,
                            may_unclassified=admin.may(AdminAction.UNCLASSIFIED),
                            here=self._here(req, status=wanted or None), **ctx)

    def _unclassified(self, req: Req, ctx: dict, admin: Administration) -> Page:
        """The security cell's count of documents no filing rule filed, per centre (Administration decides who
        may see it)."""
        rows = admin.unclassified()
        return self._render(req, "unclassified.html", title=i18n.t("unclassified.title", req.lang), rows=rows,
                            total=sum(n for _, _, n in rows), here=self._here(req), **ctx)

    def _centre(self, req: Req, ctx: dict, admin: Administration, centre) -> Page:
        cid = centre.id
        ov = admin.centre_overview(cid)
        centre = ov["centre"]
        may = {a.value.replace("-", "_"): admin.may(a, cid) for a in AdminAction}
        access = admin.access(cid) if may["view_access"] else None
        archived = admin.archived(cid) if may["restore"] else None
        verbs = allowed_verbs(centre.status) if may["transition"] else []
        done = req.query.get("done", "")
        flash = i18n.t("done." + done, req.lang) if done in _DONE else ""
        return self._render(req, "centre.html", title=centre.name, centre=centre, may=may, verbs=verbs,
                            local_admins=ov["local_admins"], consultant=ov["consultant"],
                            acting_consultant=ov["acting_consultant"], history=list(reversed(ov["history"])),
                            outbox=ov["outbox"], access=access, archived=archived,
                            contacts=_addresses(centre.contacts), languages=LANGUAGES, flash=flash,
                            here=self._here(req), **ctx)

    def _record(self, req: Req, ctx: dict, admin: Administration, centre) -> Page:
        events = admin.audit_list(centre.id, RECORD_LIMIT)
        return self._render(req, "record.html", title=f"{i18n.t('record.title', req.lang)} - {centre.name}",
                            centre=centre, events=events, limit=RECORD_LIMIT, here=self._here(req), **ctx)

    # -- changes ---------------------------------------------------------------------------------------------------
    def _change(self, req: Req, admin: Administration, centre, action: str) -> Page:
        form, cid = req.form, centre.id
        account = form.get("account", "").strip()[:64]
        anchor = ""
        done = action
        if action in ("designate", "undesignate", "grant", "revoke") and not account:
            raise AdminError("give an account name")
        if action == "transition":
            verb = form.get("verb", "")
            if verb not in VERBS:
                raise AdminError(f"unknown transition {verb[:20]!r} (one of {', '.join(VERBS)})")
            _old, _new, outbox_id = admin.transition(cid, verb, form.get("reference", ""))
            if verb == "activate":
                done = "activated" if outbox_id is not None else "activated_nomail"
            anchor = "switch-over"
        elif action == "designate":
            admin.set_local_admin(cid, account)
            anchor = "administrators"
        elif action == "undesignate":
            admin.unset_local_admin(cid, account)
            anchor = "administrators"
        elif action == "consultant":
            admin.set_security_consultant(cid, None if form.get("clear") else (account or None))
            anchor = "administrators"
        elif action == "contacts":
            language = form.get("language", "") or None
            admin.set_contacts(cid, contacts=form.get("contacts", ""), language=language)
            anchor = "notifications"
        elif action == "grant":
            rights = form.get("rights", "read")
            if rights not in ("read", "remove"):
                raise AdminError("rights are 'read' or 'remove' (read + remove)")
            admin.grant(account, cid, can_remove=rights == "remove", until=form.get("until", "").strip() or None)
            anchor = "access"
        elif action == "revoke":
            admin.revoke(account, cid)
            anchor = "access"
        elif action == "restore":
            path = form.get("path", "").strip()
            if not path:
                raise AdminError("give the document's path inside the mailbox")
            admin.restore(cid, path)
            anchor = "archived"
        elif action == "notify-test":
            admin.notify_test(cid)
            anchor = "notifications"
        return self._redirect(f"{req.base}/centres/{cid}?done={done}" + (f"#{anchor}" if anchor else ""))

    # -- answers ---------------------------------------------------------------------------------------------------
    def _not_found(self, req: Req, ctx: dict) -> Page:
        # deliberately nothing of the request in it: every unknown or hidden centre gets the very same page
        return self._message(req, ctx, "404 Not Found", "notfound.title", i18n.t("notfound.text", req.lang),
                             back=req.base + "/")

    def _refused(self, req: Req, ctx: dict, exc: GatewayError, centre) -> Page:
        status, title = lookup(ERRORS, exc) or _SERVER_FAULT
        if status == _SERVER_FAULT[0]:
            log.warning("console: %s %s: %s", req.method, req.path, exc.message)
        if centre is not None:
            return self._message(req, ctx, status, title, exc.message, back=f"{req.base}/centres/{centre.id}",
                                 back_key="nav.back_centre")
        return self._message(req, ctx, status, title, exc.message, back=req.base + "/")
