"""``/account/``: a person's own page, after a strong login, to create and revoke device passwords.

Strong login here is the eID certificate (from the TLS handshake) plus the password, or the password plus the
code of the token card with the number the page asks. Server-rendered, no script, strict Content-Security-Policy,
a CSRF token on every form, a signed session cookie (HttpOnly, Secure, SameSite=Strict, 15 minutes) whose key
is derived from the master key so that every gateway process accepts it.

Every request with the cookie resumes the session in the core (``Mailbox.resume_session``: the account still
enabled, not logged out since, the source inside its and its centres' ranges; a refusal is on the record) and
acts as that person (``Administration(principal=...)``), never as the operator.
"""
from __future__ import annotations

import html
import time
from collections.abc import Callable

from gateway.admin.service import Administration
from gateway.web.httpauth import session_cookie
from gateway.core.mailbox import Mailbox
from gateway.web.websession import SessionSigner, WebSession, has_eid, read_form, retry_after, strong_login
from storage import errors
from storage.errors import AuthenticationFailed, GatewayError, MalformedCredentials, lookup

COOKIE = "ip_account"
SESSION_SECONDS = 900
CSP = "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
PAGES = ("/", "/login", "/logout", "/create", "/revoke")

_REFUSED = "Refused"
_UNAVAILABLE = ("503 Service Unavailable", "Unavailable")
#: the one table from the core's errors (storage.errors) to this page's answer (status, title), looked up along the
#: error's MRO; the error's message is the text. tests/test_errors.py checks that it answers every error.
ERRORS: dict[type[GatewayError], tuple[str, str]] = {
    errors.AdminError: ("400 Bad Request", _REFUSED),  # the whole administrative family, as always
    errors.ServiceUnavailable: _UNAVAILABLE,
    errors.ConfigError: _UNAVAILABLE,
    errors.NotFound: ("404 Not Found", "Not found"),
    errors.PermissionDenied: ("403 Forbidden", _REFUSED),
    errors.AuthenticationFailed: ("403 Forbidden", _REFUSED),
    errors.Throttled: ("429 Too Many Requests", _REFUSED),
    errors.InstitutionNotActive: ("403 Forbidden", _REFUSED),
    errors.Unsupported: ("403 Forbidden", _REFUSED),
    errors.AlreadyExists: ("409 Conflict", _REFUSED),
    errors.Conflict: ("409 Conflict", _REFUSED),
    errors.ContentRefused: ("415 Unsupported Media Type", _REFUSED),
    errors.TooLarge: ("413 Content Too Large", _REFUSED),
    errors.InvalidName: ("400 Bad Request", _REFUSED),
    errors.MalformedRequest: ("400 Bad Request", _REFUSED),
    errors.IntegrityFailure: ("500 Internal Server Error", "Error"),
}

_PAGE = """<!DOCTYPE html>
<html lang="nl"><head><meta charset="utf-8"><title>Institutional Pages - {title}</title></head>
<body><h1>{title}</h1>{body}</body></html>
"""


class AccountPage:
    def __init__(self, mailbox: Mailbox, secret: bytes, *, administration: Callable[..., Administration],
                 secure_cookie: bool = True):
        self.mailbox = mailbox
        #: the services factory's (``Services.administration``)
        self.administration = administration
        self.signer = SessionSigner(secret, seconds=SESSION_SECONDS, purpose="account")
        self.secure_cookie = secure_cookie

    def _session(self, environ) -> WebSession | None:
        return self.signer.verify(session_cookie(environ, COOKIE))

    # -- responses -------------------------------------------------------------------------------------------
    def _page(self, start_response, title: str, body: str, status: str = "200 OK", headers=()):
        data = _PAGE.format(title=html.escape(title), body=body).encode()
        start_response(status, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(data))),
                                ("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                                ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store"), *headers])
        return [data]

    def _refused(self, start_response, exc: GatewayError):
        status, title = lookup(ERRORS, exc) or ("500 Internal Server Error", "Error")
        return self._page(start_response, title, f"<p>{html.escape(exc.message)}</p>", status)

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO", "/") or "/"
        source = environ.get("instpages.source") or environ.get("REMOTE_ADDR", "")
        if path not in PAGES:
            return self._page(start_response, "Not found", '<p>No such page. <a href="/account/">My account</a></p>',
                              "404 Not Found")
        if method == "POST" and path == "/login":
            return self._login(environ, start_response, source)
        try:
            session = self._session(environ)
        except MalformedCredentials as exc:  # a cookie no session has: removed, and on the record
            self.mailbox.record_failed_login("", "web", source, "cookie", exc.reason)
            return self._page(start_response, "Refused", "<p>Malformed session cookie; it has been removed. "
                              '<a href="./">Log in again</a>.</p>', "400 Bad Request",
                              [("Set-Cookie", f"{COOKIE}=; Path=/account/; Max-Age=0; HttpOnly; SameSite=Strict"
                                              + ("; Secure" if self.secure_cookie else ""))])
        if session is None:
            return self._login_form(environ, start_response)
        try:
            principal = self.mailbox.resume_session(session.account_id, session.name, session.issued,
                                                    method="account-page", source=source, protocol="web")
        except AuthenticationFailed:
            # disabled, logged out or outside its ranges since: the session ends here (the core recorded why)
            return self._login_form(environ, start_response, "Your session has ended; log in again.",
                                    headers=(("Set-Cookie", self._cookie("", max_age=0)),))
        except GatewayError as exc:
            return self._refused(start_response, exc)
        name = principal.name
        admin = self.administration(protocol="web", source=source, principal=principal)
        if method == "POST":
            form = read_form(environ)
            if not self.signer.csrf_ok(session, form.get("csrf", "")):
                return self._page(start_response, "Refused", "<p>The form expired; reload the page.</p>",
                                  "403 Forbidden")
            if path == "/logout":
                return self._logout(start_response, principal, source)
            try:
                if path == "/create":
                    device_id, secret = admin.create_device_password(name, form.get("label", "")[:100])
                    return self._page(start_response, "Device password", (
                        f"<p>Device password {device_id} for {html.escape(name)}. Copy it now: it is not shown again."
                        f" It works for the WebDAV drive only.</p><pre>{html.escape(secret)}</pre>"
                        '<p><a href="./">Back</a></p>'))
                if path == "/revoke":
                    admin.revoke_device_password(name, int(form.get("id", "0")))
            except GatewayError as exc:
                return self._refused(start_response, exc)
            except ValueError:
                return self._page(start_response, "Refused", "<p>bad request</p>", "400 Bad Request")
        return self._overview(start_response, session, admin)

    def _cookie(self, value: str, max_age: int | None = None) -> str:
        attrs = "; Path=/account/; HttpOnly; SameSite=Strict" + ("; Secure" if self.secure_cookie else "")
        return f"{COOKIE}={value}{attrs}" + (f"; Max-Age={max_age}" if max_age is not None else "")

    def _logout(self, start_response, principal, source: str):
        """Ends every session of the account issued until now, on every gateway process (the core records it)."""
        self.mailbox.end_sessions(principal.account_id, protocol="web", source=source)
        start_response("303 See Other", [("Location", "./"), ("Set-Cookie", self._cookie("", max_age=0)),
                                         ("Content-Length", "0"), ("Cache-Control", "no-store")])
        return [b""]

    def _login_form(self, environ, start_response, error: str = "", username: str = "", status: str = "",
                    headers=()):
        eid = has_eid(self.mailbox, environ)
        fields = (f'<p><label>Gebruiker / Utilisateur <input name="username" value="{html.escape(username)}" '
                  'autocomplete="username"></label></p>'
                  '<p><label>Wachtwoord / Mot de passe <input name="password" type="password" '
                  'autocomplete="current-password"></label></p>')
        if eid:
            note = "<p>Your eID card is the second factor.</p>"
        elif username:
            number = self.mailbox.token_challenge(username)
            note = (f'<input type="hidden" name="number" value="{number}">'
                    f'<p><label>Code number {number} of your token <input name="code" autocomplete="off">'
                    "</label></p>")
        else:
            note = '<input type="hidden" name="step" value="username">'
            fields = fields.split("<p><label>Wachtwoord")[0]
        err = f'<p role="alert">{html.escape(error)}</p>' if error else ""
        body = f'{err}<form method="post" action="login">{fields}{note}<p><button>Log in</button></p></form>'
        return self._page(start_response, "Log in", body, status or ("401 Unauthorized" if error else "200 OK"),
                          headers)

    def _login(self, environ, start_response, source: str):
        form = read_form(environ)
        username = form.get("username", "").strip()[:64]
        nrn = has_eid(self.mailbox, environ)
        if form.get("step") == "username" and not nrn:
            return self._login_form(environ, start_response, username=username)
        try:
            session = strong_login(self.mailbox, environ, username=username, password=form.get("password", ""),
                                   number=int(form.get("number", "0") or 0), code=form.get("code", ""),
                                   source=source)
        except (AuthenticationFailed, ValueError) as exc:
            # answered at once: no thread waits out the delay (the core keeps it, and refuses until it is over)
            if isinstance(exc, AuthenticationFailed) and exc.throttled:
                return self._login_form(environ, start_response, "Too many failed logins: wait a moment and try "
                                        "again.", username if not nrn else "", status="429 Too Many Requests",
                                        headers=[("Retry-After", retry_after(exc))])
            return self._login_form(environ, start_response, "Login failed.", username if not nrn else "")
        except GatewayError as exc:
            return self._refused(start_response, exc)
        p = session.principal
        cookie = self.signer.issue(p.account_id, p.name).value
        start_response("303 See Other", [("Location", "./"), ("Set-Cookie", self._cookie(cookie)),
                                         ("Content-Length", "0"), ("Cache-Control", "no-store")])
        return [b""]

    def _overview(self, start_response, session: WebSession, admin: Administration):
        name = admin.principal.name
        devices = admin.device_passwords(name)
        csrf = self.signer.csrf(session)
        rows = []
        for d in devices:
            state = "revoked" if d.revoked else ("expired" if d.expires_at.timestamp() < time.time() else "live")
            revoke = ("" if state != "live" else f'<form method="post" action="revoke"><input type="hidden" '
                      f'name="csrf" value="{csrf}"><input type="hidden" name="id" value="{d.id}">'
                      "<button>Revoke</button></form>")
            used = d.last_used_at.strftime("%Y-%m-%d %H:%M") if d.last_used_at else "-"
            rows.append(f"<tr><td>{d.id}</td><td>{html.escape(d.label)}</td><td>{d.expires_at:%Y-%m-%d}</td>"
                        f"<td>{state}</td><td>{used}</td><td>{revoke}</td></tr>")
        body = (f"<p>Logged in as {html.escape(name)}.</p><h2>Device passwords (WebDAV drive only)</h2>"
                "<table><tr><th>ID</th><th>Label</th><th>Expires</th><th>State</th><th>Last used</th><th></th></tr>"
                + "".join(rows) + "</table>"
                f'<form method="post" action="create"><input type="hidden" name="csrf" value="{csrf}">'
                '<p><label>Label <input name="label" maxlength="100"></label> <button>Create a device password'
                "</button></p></form>"
                f'<form method="post" action="logout"><input type="hidden" name="csrf" value="{csrf}">'
                "<p><button>Log out</button></p></form>")
        return self._page(start_response, "My account", body)
