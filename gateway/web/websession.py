"""Sessions after a strong login, shared by the web pages (``/account/``, ``/console/``) and the REST API.

A session is a signed value (HMAC-SHA256 under a key derived from the master key, so every gateway process
accepts it; no server-side state, no sticky sessions): ``account id | name | expiry | nonce``. In a browser it
travels as a cookie (HttpOnly, Secure, SameSite=Strict); for the API, as a bearer token. Every state-changing
form or API call made with a cookie carries a CSRF token derived from the session value.

The strong login itself is :func:`strong_login`: the eID certificate of the TLS handshake plus the password,
or the password plus the code of the person's token card with the number the server asked. It goes through the
core's one login (``Mailbox.login``), so throttling, bans, networks and the record apply as everywhere.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from auth.authenticator import EidCredentials, TokenCredentials
from gateway.web.httpauth import cookies
from gateway.core.mailbox import Mailbox
from gateway.core.session import MailboxSession

MAX_FORM = 16 * 1024
#: the form of a signed value: base64url payload, ".", 32 hex digits of MAC
_SIGNED = re.compile(r"[A-Za-z0-9_\-]+\.[0-9a-f]{32}")


@dataclass(frozen=True)
class WebSession:
    account_id: int
    name: str
    expires: float
    #: the signed value itself (cookie or bearer token); the CSRF token is derived from it
    value: str
    #: when the strong login happened (epoch seconds): a logout ends every session issued until then
    issued: float = 0.0


class SessionSigner:
    def __init__(self, secret: bytes, *, seconds: int = 900, purpose: str = "session"):
        self.secret = hashlib.sha256(purpose.encode() + b"\0" + secret).digest()
        self.seconds = seconds

    def _mac(self, payload: str) -> str:
        return hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, account_id: int, name: str) -> WebSession:
        issued = time.time()
        expires = issued + self.seconds
        payload = f"{account_id}|{name}|{issued:.3f}|{expires:.0f}|{secrets.token_hex(8)}"
        value = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=") + "." + self._mac(payload)
        return WebSession(account_id, name, float(f"{expires:.0f}"), value, float(f"{issued:.3f}"))

    def verify(self, value: str) -> WebSession | None:
        """The session of a signed value; None for anything else, whatever bytes it holds."""
        if not value or len(value) > 512 or not _SIGNED.fullmatch(value):
            return None
        try:
            b64, mac = value.rsplit(".", 1)
            payload = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).decode()
            if not hmac.compare_digest(mac, self._mac(payload)):
                return None
            account_id, name, issued, expires, _nonce = payload.split("|", 4)
            if float(expires) <= time.time():
                return None
            return WebSession(int(account_id), name, float(expires), value, float(issued))
        except (ValueError, UnicodeDecodeError):
            return None

    def csrf(self, session: WebSession) -> str:
        return hmac.new(self.secret, b"csrf|" + session.value.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: WebSession, token: str) -> bool:
        return bool(token) and token.isascii() and hmac.compare_digest(token, self.csrf(session))


def cookie_value(environ, name: str) -> str:
    """A cookie's value as sent (any bytes); session cookies are read with
    :func:`gateway.web.httpauth.session_cookie`."""
    return cookies(environ).get(name, "")


def read_body(environ, limit: int = MAX_FORM) -> bytes:
    """The request body, at most ``limit`` bytes (Content-Length or chunked)."""
    try:
        n = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        n = 0
    if n <= 0:
        if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return b""
        n = limit
    return environ["wsgi.input"].read(min(n, limit))


def read_form(environ) -> dict[str, str]:
    return {k: v[0] for k, v in read_form_lists(environ).items()}


def read_form_lists(environ) -> dict[str, list[str]]:
    """Every value of each field of a urlencoded form (a field may repeat: checkboxes)."""
    raw = read_body(environ).decode("utf-8", "replace")
    return parse_qs(raw, keep_blank_values=True)


def client_certificate(environ) -> str:
    """The certificate the client presented in the TLS handshake (PEM), as the HTTPS server puts it into the
    environ; "" without one. Whose it is, auth/ decides (:mod:`auth.clientcert`)."""
    return environ.get("SSL_CLIENT_CERT") or ""


def has_eid(mailbox: Mailbox, environ) -> bool:
    """Did the client present a valid eID certificate? (chooses the login form; proves nothing by itself)"""
    return mailbox.presents_eid(client_certificate(environ))


def retry_after(exc) -> str:
    """The Retry-After value (whole seconds, at least 1) of a throttled login refusal."""
    return str(max(1, math.ceil(getattr(exc, "retry_after", 0) or 0)))


def strong_login(mailbox: Mailbox, environ, *, username: str, password: str, number: int = 0, code: str = "",
                 protocol: str = "web", source: str = "") -> MailboxSession:
    """eID (from the TLS handshake) + password, or password + token code. Raises AuthenticationFailed (answered
    at once: ``throttled`` with ``retry_after`` when the name or address may not try now) or
    ServiceUnavailable."""
    cert = client_certificate(environ)
    if mailbox.presents_eid(cert):
        creds = EidCredentials(username, password, cert)
    else:
        creds = TokenCredentials(username, password, number, code)
    return mailbox.login(creds, protocol=protocol, source=source)
