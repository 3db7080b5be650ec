"""What the server-rendered pages behind the strong login share: the web console (``/console/``) and the
institutional page (``/page/``).

:class:`StrongLoginPages` is a WSGI application that does everything but the pages themselves: reading the request
(form, cookies, language), the strong login (:func:`gateway.web.websession.strong_login`: the user name first,
then the password with the code of the token card whose number the page asks -- or, with an eID certificate in the
TLS handshake, the password alone), the signed session cookie (HttpOnly, SameSite=Strict, Secure) resumed in the
core on every request (``Mailbox.resume_session``), logout, CSRF tokens, rendering (Jinja2, autoescaped), the
security headers and redirects. A subclass names its cookies and templates and answers :meth:`serve` for a
logged-in principal.

Language: ``?lang=nl|fr|en`` (remembered in the ``ip_lang`` cookie), else the browser's Accept-Language, else
English. Labels live in :mod:`gateway.web.i18n`.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode

import jinja2

from auth.principal import Principal
from gateway.core.localtime import last_day, minute
from gateway.core.mailbox import Mailbox
from gateway.web import i18n
from gateway.web.httpauth import session_cookie
from gateway.web.websession import (SessionSigner, WebSession, cookie_value, has_eid, read_form_lists,
                                    retry_after, strong_login)
from storage.errors import (AuthenticationFailed, GatewayError, MalformedCredentials, MalformedRequest,
                            ServiceUnavailable)

log = logging.getLogger("instpages.web")

LANG_COOKIE = "ip_lang"
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
]


@dataclass
class Req:
    environ: dict
    method: str
    path: str
    base: str
    source: str
    lang: str
    query: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)
    #: every value of each form field (checkboxes send one name many times)
    form_lists: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Page:
    """An answer: a body, or a ``stream`` of chunks (a download; ``length`` when known)."""
    status: str
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/html; charset=utf-8"
    stream: Iterable[bytes] | None = None
    length: int | None = None


class Unauthenticated(Exception):
    """No (longer a) valid session."""

    def __init__(self, ended: bool):
        self.ended = ended


# -- formatting helpers (Jinja filters) ---------------------------------------------------------------------
def when(value) -> str:
    if not value:
        return "-"
    if isinstance(value, datetime):
        return minute(value)
    return str(value)


def grant_last_day(value) -> str:
    """A grant ends at the local midnight after its last day: show that day."""
    return last_day(value) if value else ""


def size(value) -> str:
    n = int(value or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(value)  # pragma: no cover


class StrongLoginPages:
    """The WSGI frame of a set of pages behind the strong login; see the module's docstring."""

    #: the session cookie, and the cookie that binds the login form's CSRF token before there is a session
    COOKIE = "ip_session"
    LOGIN_COOKIE = "ip_session_login"
    #: what the login form's CSRF key is derived for
    LOGIN_FORM = b"login-form"
    #: where the stylesheet is served (its bytes: ``stylesheet``)
    STYLESHEET_PATH = "/static/style.css"
    #: what the shared frame (``console/base.html``) shows of this set of pages: its name and its home link
    BRAND = "app.console"
    HOME = ("nav.centres", "nav-centres")
    #: the template folders, first match wins (a page set's own ``base.html`` frames the shared ``login.html``)
    TEMPLATES: tuple[Path, ...] = ()

    def __init__(self, mailbox: Mailbox, signer: SessionSigner, *, stylesheet: bytes, secure_cookie: bool = True):
        self.mailbox = mailbox
        self.signer = signer
        self.stylesheet = stylesheet
        self.secure_cookie = secure_cookie
        self._login_key = hmac.new(signer.secret, self.LOGIN_FORM, hashlib.sha256).digest()
        loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in self.TEMPLATES])
        self.env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                                      trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(when=when, last_day=grant_last_day, size=size)

    # -- WSGI --------------------------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        req = self._request(environ)
        try:
            page = self._dispatch(req)
        except MalformedCredentials as exc:  # a session cookie no session has: removed, and on the record
            self.mailbox.record_failed_login("", "web", req.source, "cookie", exc.reason)
            req.cookies.append(self._cookie(req, self.COOKIE, "", max_age=0))
            page = self._message(req, None, "400 Bad Request", "error.title",
                                 "malformed session cookie; it has been removed, please log in again")
        except MalformedRequest as exc:
            page = self._message(req, None, "400 Bad Request", "error.title", exc.message)
        except Exception:  # never a trace to the browser
            log.exception("%s: %s %s failed", type(self).__name__, req.method, req.path)
            page = self._message(req, None, "500 Internal Server Error", "error.title",
                                 "internal error; the details are in the gateway's log")
        length = len(page.body) if page.stream is None else page.length
        headers = [("Content-Type", page.content_type), *SECURITY_HEADERS, ("Vary", "Cookie, Accept-Language")]
        if length is not None:
            headers.append(("Content-Length", str(length)))
        if not any(k == "Cache-Control" for k, _ in page.headers):
            headers.append(("Cache-Control", "no-store"))
        headers += page.headers
        headers += [("Set-Cookie", c) for c in req.cookies]
        start_response(page.status, headers)
        if page.stream is not None:
            return page.stream
        return [b"" if req.method == "HEAD" else page.body]

    def _request(self, environ) -> Req:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        base = environ.get("SCRIPT_NAME", "").rstrip("/")
        source = environ.get("instpages.source") or environ.get("REMOTE_ADDR", "")
        req = Req(environ, method, environ.get("PATH_INFO", "") or "", base, source, i18n.DEFAULT, query)
        chosen = i18n.supported(query.get("lang"))
        if chosen:
            req.lang = chosen
            req.cookies.append(self._cookie(req, LANG_COOKIE, chosen, max_age=365 * 86400))
        else:
            req.lang = (i18n.supported(cookie_value(environ, LANG_COOKIE))
                        or i18n.negotiate(environ.get("HTTP_ACCEPT_LANGUAGE")) or i18n.DEFAULT)
        if method == "POST":
            req.form_lists = read_form_lists(environ)
            req.form = {k: v[0] for k, v in req.form_lists.items()}
        return req

    def _cookie(self, req: Req, name: str, value: str, *, max_age: int | None = None) -> str:
        attrs = f"{name}={value}; Path={req.base}/; HttpOnly; SameSite=Strict"
        if max_age is not None:
            attrs += f"; Max-Age={max_age}"
        if self.secure_cookie:
            attrs += "; Secure"
        return attrs

    # -- routing -----------------------------------------------------------------------------------------------
    def _dispatch(self, req: Req) -> Page:
        if req.method not in ("GET", "HEAD", "POST"):
            return self._message(req, None, "405 Method Not Allowed", "error.title", i18n.t("error.method", req.lang),
                                 headers=[("Allow", "GET, HEAD, POST")])
        if req.path == "":
            return self._redirect(req.base + "/")
        if req.path == self.STYLESHEET_PATH:
            return Page("200 OK", self.stylesheet, [("Cache-Control", "max-age=3600")], "text/css; charset=utf-8")
        if req.path == "/login":
            if req.method == "POST":
                return self._login(req)
            if self._session(req) is not None:
                return self._redirect(req.base + "/")
            return self._login_page(req, ended=req.query.get("ended") == "1")
        try:
            session, principal = self._resume(req)
        except Unauthenticated as exc:
            if req.method == "POST":
                return self._login_page(req, ended=True, status="401 Unauthorized")
            return self._redirect(req.base + "/login" + ("?ended=1" if exc.ended else ""))
        except ServiceUnavailable as exc:
            return self._message(req, None, "503 Service Unavailable", "error.unavailable", exc.message)
        ctx = {"user": principal, "csrf": self.signer.csrf(session)}
        if req.path == "/logout":
            if req.method != "POST":
                return self._method_not_allowed(req, ctx, "POST")
            if not self.signer.csrf_ok(session, req.form.get("csrf", "")):
                return self._csrf_refused(req, ctx)
            self.mailbox.end_sessions(session.account_id, protocol="web", source=req.source)
            req.cookies.append(self._cookie(req, self.COOKIE, "", max_age=0))
            return self._redirect(req.base + "/login")
        return self.serve(req, session, principal, ctx)

    def serve(self, req: Req, session: WebSession, principal: Principal, ctx: dict) -> Page:
        """The subclass's pages, for a logged-in ``principal``; ``ctx`` (user, csrf) goes to every template."""
        raise NotImplementedError

    # -- sessions ------------------------------------------------------------------------------------------------
    def _session(self, req: Req) -> WebSession | None:
        return self.signer.verify(session_cookie(req.environ, self.COOKIE))

    def _resume(self, req: Req) -> tuple[WebSession, Principal]:
        """The session of the request's cookie, resumed in the core (account still enabled, not logged out since,
        the source inside its ranges); Unauthenticated otherwise, with the cookie removed."""
        raw = session_cookie(req.environ, self.COOKIE)
        session = self.signer.verify(raw)
        if session is None:
            if raw:
                req.cookies.append(self._cookie(req, self.COOKIE, "", max_age=0))
            raise Unauthenticated(bool(raw))
        try:
            principal = self.mailbox.resume_session(session.account_id, session.name, session.issued, method="web",
                                                    source=req.source)
        except AuthenticationFailed:
            # disabled or removed meanwhile, logged out (on any gateway process), or from outside its networks:
            # the session ends here
            req.cookies.append(self._cookie(req, self.COOKIE, "", max_age=0))
            raise Unauthenticated(True) from None
        return session, principal

    def _login_token(self, value: str) -> str:
        return hmac.new(self._login_key, value.encode(), hashlib.sha256).hexdigest()

    def _login_value(self, req: Req, *, fresh: bool = False) -> str:
        value = cookie_value(req.environ, self.LOGIN_COOKIE)
        if fresh or not re.fullmatch(r"[0-9a-f]{32}", value or ""):
            value = secrets.token_hex(16)
            req.cookies.append(self._cookie(req, self.LOGIN_COOKIE, value))
        return value

    def _login_page(self, req: Req, *, username: str = "", error: str = "", ended: bool = False,
                    status: str = "200 OK", fresh: bool = False) -> Page:
        eid = has_eid(self.mailbox, req.environ)
        number = None
        if username and not eid:
            number = self.mailbox.token_challenge(username)
        token = self._login_token(self._login_value(req, fresh=fresh))
        return self._render(req, "login.html", status, title=i18n.t("login.title", req.lang), user=None, csrf="",
                            login_csrf=token, username=username, eid=eid, number=number, error=error,
                            ended=ended, here=req.base + "/login")

    def _login(self, req: Req) -> Page:
        form = req.form
        value = cookie_value(req.environ, self.LOGIN_COOKIE)
        token = form.get("csrf", "")
        if not (value and token and token.isascii() and hmac.compare_digest(token, self._login_token(value))):
            return self._login_page(req, error=i18n.t("login.expired", req.lang), status="403 Forbidden", fresh=True)
        username = form.get("username", "").strip()[:64]
        eid = has_eid(self.mailbox, req.environ)
        if form.get("step") == "username" and not eid:
            return self._login_page(req, username=username)
        try:
            session = strong_login(self.mailbox, req.environ, username=username, password=form.get("password", ""),
                                   number=int(form.get("number", "0") or 0), code=form.get("code", ""),
                                   protocol="web", source=req.source)
        except (AuthenticationFailed, ValueError) as exc:
            # answered at once: no thread waits out the delay (the core keeps it, and refuses until it is over)
            if getattr(exc, "throttled", False):
                page = self._login_page(req, username="" if eid else username,
                                        error=i18n.t("login.throttled", req.lang), status="429 Too Many Requests")
                page.headers.append(("Retry-After", retry_after(exc)))
                return page
            return self._login_page(req, username="" if eid else username, error=i18n.t("login.failed", req.lang),
                                    status="401 Unauthorized")
        except GatewayError as exc:
            return self._message(req, None, "503 Service Unavailable", "login.unavailable", exc.message)
        p = session.principal
        web = self.signer.issue(p.account_id, p.name)
        req.cookies.append(self._cookie(req, self.COOKIE, web.value, max_age=self.signer.seconds))
        req.cookies.append(self._cookie(req, self.LOGIN_COOKIE, "", max_age=0))
        return self._redirect(req.base + "/")

    # -- answers ---------------------------------------------------------------------------------------------------
    def _here(self, req: Req, **keep) -> str:
        """This page's address for the language links (other query parameters kept only when given)."""
        params = {k: v for k, v in keep.items() if v}
        return req.base + req.path + ("?" + urlencode(params) if params else "")

    def _render(self, req: Req, template: str, status: str = "200 OK", headers=(), **context) -> Page:
        lang = req.lang
        here = context.pop("here", None) or req.base + "/"
        sep = "&" if "?" in here else "?"
        context.setdefault("flash", "")
        context.setdefault("user", None)
        context.setdefault("csrf", "")
        html = self.env.get_template(template).render(
            lang=lang, base=req.base, t=lambda key, **v: i18n.t(key, lang, **v), langs=i18n.LANGS,
            frame={"stylesheet": self.STYLESHEET_PATH, "brand": self.BRAND, "home": self.HOME[0],
                   "home_id": self.HOME[1]},
            lang_links=[(code, f"{here}{sep}lang={code}") for code in i18n.LANGS], **context)
        return Page(status, html.encode("utf-8"), list(headers))

    def _message(self, req: Req, ctx: dict | None, status: str, title_key: str, text: str, *, back: str = "",
                 back_key: str = "nav.back_list", headers=()) -> Page:
        ctx = ctx or {}
        return self._render(req, "message.html", status, headers, title=i18n.t(title_key, req.lang), text=text,
                            back=back, back_key=back_key, code=status.split()[0], **ctx)

    def _csrf_refused(self, req: Req, ctx: dict, back: str = "", back_key: str = "nav.back_list") -> Page:
        return self._message(req, ctx, "403 Forbidden", "error.title", i18n.t("error.csrf", req.lang),
                             back=back or req.base + "/", back_key=back_key)

    def _method_not_allowed(self, req: Req, ctx: dict, allow: str, back: str = "") -> Page:
        return self._message(req, ctx, "405 Method Not Allowed", "error.title", i18n.t("error.method", req.lang),
                             back=back or req.base + "/", headers=[("Allow", allow)])

    @staticmethod
    def _redirect(location: str) -> Page:
        return Page("303 See Other", b"", [("Location", quote(location, safe="/?=&#%:-_.~"))])
