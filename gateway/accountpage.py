"""``/account/``: a person's own page, after a strong login, to create and revoke device passwords.

Strong login here is the eID certificate (from the TLS handshake) plus the password, or the password plus the
code of the token card with the number the page asks. Server-rendered, no script, strict Content-Security-Policy,
a CSRF token on every form, a signed session cookie (HttpOnly, Secure, SameSite=Strict, 15 minutes) whose key
is derived from the master key so that every gateway process accepts it.
"""
from __future__ import annotations

import html
import time

from auth.authenticator import AuthenticationFailed
from gateway.admin import Administration, AdminError
from gateway.errors import GatewayError
from gateway.mailbox import Mailbox
from gateway.websession import (SessionSigner, WebSession, cookie_value, eid_nrn, read_form, retry_after,
                                strong_login)

COOKIE = "ip_account"
SESSION_SECONDS = 900
CSP = "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

_PAGE = """<!DOCTYPE html>
<html lang="nl"><head><meta charset="utf-8"><title>Institutional Pages - {title}</title></head>
<body><h1>{title}</h1>{body}</body></html>
"""


class AccountPage:
    def __init__(self, mailbox: Mailbox, secret: bytes, *, secure_cookie: bool = True):
        self.mailbox = mailbox
        self.signer = SessionSigner(secret, seconds=SESSION_SECONDS, purpose="account")
        self.secure_cookie = secure_cookie

    def _session(self, environ) -> WebSession | None:
        return self.signer.verify(cookie_value(environ, COOKIE))

    # -- responses -------------------------------------------------------------------------------------------
    def _page(self, start_response, title: str, body: str, status: str = "200 OK", headers=()):
        data = _PAGE.format(title=html.escape(title), body=body).encode()
        start_response(status, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(data))),
                                ("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                                ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store"), *headers])
        return [data]

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO", "/") or "/"
        source = environ.get("instpages.source") or environ.get("REMOTE_ADDR", "")
        if method == "POST" and path == "/login":
            return self._login(environ, start_response, source)
        session = self._session(environ)
        if session is None:
            return self._login_form(environ, start_response)
        name = session.name
        if method == "POST":
            form = read_form(environ)
            if not self.signer.csrf_ok(session, form.get("csrf", "")):
                return self._page(start_response, "Refused", "<p>The form expired; reload the page.</p>",
                                  "403 Forbidden")
            admin = Administration(self.mailbox, actor=name, protocol="web", source=source)
            try:
                if path == "/create":
                    device_id, secret = admin.create_device_password(name, form.get("label", "")[:100])
                    return self._page(start_response, "Device password", (
                        f"<p>Device password {device_id} for {html.escape(name)}. Copy it now: it is not shown again."
                        f" It works for the WebDAV drive only.</p><pre>{html.escape(secret)}</pre>"
                        '<p><a href="./">Back</a></p>'))
                if path == "/revoke":
                    admin.revoke_device_password(name, int(form.get("id", "0")))
            except (AdminError, ValueError) as exc:
                msg = exc.message if isinstance(exc, GatewayError) else "bad request"
                return self._page(start_response, "Refused", f"<p>{html.escape(msg)}</p>", "400 Bad Request")
        return self._overview(start_response, session)

    def _login_form(self, environ, start_response, error: str = "", username: str = "", status: str = "",
                    headers=()):
        eid = bool(eid_nrn(environ))
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
        nrn = eid_nrn(environ)
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
            return self._page(start_response, "Unavailable", f"<p>{html.escape(exc.message)}</p>",
                              "503 Service Unavailable")
        p = session.principal
        cookie = self.signer.issue(p.account_id, p.name).value
        attrs = "; Path=/account/; HttpOnly; SameSite=Strict" + ("; Secure" if self.secure_cookie else "")
        start_response("303 See Other", [("Location", "./"), ("Set-Cookie", f"{COOKIE}={cookie}{attrs}"),
                                         ("Content-Length", "0"), ("Cache-Control", "no-store")])
        return [b""]

    def _overview(self, start_response, session: WebSession):
        name = session.name
        devices = self.mailbox.authenticator.devices.list(session.account_id)
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
                "</button></p></form>")
        return self._page(start_response, "My account", body)
