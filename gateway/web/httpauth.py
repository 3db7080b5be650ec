"""The one parser of the credentials an HTTP request carries: the ``Authorization`` header (Basic, Bearer) and
the gateway's session cookies.

WSGI hands header values over as latin-1 text, so any byte can arrive. Whatever does not have the exact form
raises :class:`MalformedCredentials`, with a reason for the record; the front-ends answer it as a failed
authentication (401, or 400 for a cookie, which is then removed) and put it on the record, like any failed login.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from storage.errors import MalformedCredentials

MAX_HEADER = 8192
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+\-.^_`|~]*")
#: what the gateway's own session values consist of (base64url, ".", hex)
_SESSION_VALUE = re.compile(r"[A-Za-z0-9_\-.]{1,512}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Authorization:
    #: lower case: "basic", "bearer", or another scheme the caller does not take
    scheme: str
    username: str = ""
    #: the Basic password or the bearer token
    secret: str = field(default="", repr=False)


def parse_authorization(header: str) -> Authorization:
    """An ``Authorization`` header value. Raises MalformedCredentials."""
    if len(header) > MAX_HEADER:
        raise MalformedCredentials("Authorization header too long")
    scheme, _, rest = header.strip().partition(" ")
    rest = rest.strip()
    if not _SCHEME.fullmatch(scheme):
        raise MalformedCredentials("Authorization header without a valid scheme")
    scheme = scheme.lower()
    if scheme == "basic":
        return _basic(rest)
    if scheme == "bearer":
        if not _TOKEN68.fullmatch(rest):
            raise MalformedCredentials("bearer token is not a token of printable ASCII")
        return Authorization("bearer", secret=rest)
    return Authorization(scheme)


def _basic(value: str) -> Authorization:
    if not _TOKEN68.fullmatch(value):
        raise MalformedCredentials("Basic credentials are not base64")
    if "=" not in value:  # padding left out: accepted
        value += "=" * (-len(value) % 4)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedCredentials("Basic credentials are not base64") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedCredentials("Basic credentials are not UTF-8") from None
    username, colon, password = text.partition(":")
    if not colon:
        raise MalformedCredentials("Basic credentials without a colon between user name and password")
    if _CONTROL.search(username):
        raise MalformedCredentials("control characters in the Basic user name")
    return Authorization("basic", username, password)


def basic_header(auth: Authorization) -> str:
    """The canonical ``Authorization`` value of parsed Basic credentials (what the next layer parses again)."""
    return "Basic " + base64.b64encode(f"{auth.username}:{auth.secret}".encode()).decode("ascii")


def cookies(environ) -> dict[str, str]:
    """The request's cookies, first value of each name (values as sent, possibly any byte)."""
    found: dict[str, str] = {}
    for part in environ.get("HTTP_COOKIE", "")[:MAX_HEADER].split(";"):
        key, eq, value = part.strip().partition("=")
        if eq and key not in found:
            found[key] = value.strip()
    return found


def session_cookie(environ, name: str) -> str:
    """The value of the gateway's session cookie ``name``: "" when there is none. Raises MalformedCredentials when
    it has bytes no session value has."""
    value = cookies(environ).get(name, "")
    if value and not _SESSION_VALUE.fullmatch(value):
        raise MalformedCredentials(f"malformed {name} cookie")
    return value
