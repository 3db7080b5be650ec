"""The REST API's request and reply: what a handler is given and returns, the errors it raises, and the checks of
what clients send (the JSON body, its fields, the query).

Every check answers 400 (or 413/415 for the body itself) with a message naming the field; the handlers of each
resource (:class:`Handlers`) build on these.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from auth.principal import Principal
from gateway.web.websession import retry_after
from storage.errors import AuthenticationFailed
from storage.repository import as_utc

if TYPE_CHECKING:
    from gateway.admin.service import Administration
    from gateway.core.mailbox import Mailbox
    from gateway.web.websession import SessionSigner

MAX_BODY = 64 * 1024
#: a body too large is still read (and dropped) up to this size before the answer, so the client gets it
DRAIN_LIMIT = 1024 * 1024
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, message, (("WWW-Authenticate", 'Bearer realm="Institutional Pages"'),))


def login_refused(exc: AuthenticationFailed) -> ApiError:
    """Answered at once, no thread waits: 429 + Retry-After while the name or the address may not try (nothing
    was looked at), otherwise the one generic 401."""
    if exc.throttled:
        return ApiError(429, "too many failed logins; try again later", (("Retry-After", retry_after(exc)),))
    return unauthorized("authentication failed")


# -- the request and the reply ----------------------------------------------------------------------------------
@dataclass
class Request:
    environ: dict
    method: str
    params: dict[str, str]
    source: str
    query: dict[str, list[str]] = field(default_factory=dict)
    principal: Principal | None = None
    #: "session" (bearer), "cookie" (the console's), "api-token"
    via: str = ""
    body: dict = field(default_factory=dict)


@dataclass
class Reply:
    status: int
    data: Any = None
    headers: tuple[tuple[str, str], ...] = ()


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return as_utc(value).isoformat(timespec="seconds").replace("+00:00", "Z")


class Handlers:
    """What the handlers of every resource share: the core, the session signer, and an Administration acting for
    the caller. :class:`gateway.web.api.app.RestApi` is all the resources' handlers."""

    mailbox: Mailbox
    signer: SessionSigner
    #: the services factory's (``Services.administration``)
    administration: Callable[..., Administration]

    def _admin(self, req: Request) -> Administration:
        return self.administration(actor=req.principal.name, protocol="api", source=req.source,
                                   principal=req.principal)


# -- the query -------------------------------------------------------------------------------------------------
def query(req: Request, name: str) -> str | None:
    values = req.query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, f"{name} is given more than once")
    return values[0]


# -- the body --------------------------------------------------------------------------------------------------
def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate field {key[:40]!r}")
        out[key] = value
    return out


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def read_json(environ, *, required: bool) -> dict:
    raw_length = (environ.get("CONTENT_LENGTH") or "").strip()
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    try:
        length = int(raw_length) if raw_length else None
    except ValueError:
        raise ApiError(400, "bad Content-Length") from None
    if not chunked and not length:
        if required:
            raise ApiError(400, "a JSON object is required as the body")
        return {}
    mime, _, params = environ.get("CONTENT_TYPE", "").partition(";")
    charset = params.strip().lower().replace(" ", "")
    if mime.strip().lower() != "application/json" or charset not in ("", "charset=utf-8", 'charset="utf-8"'):
        raise ApiError(415, "the body must be application/json (UTF-8)")
    if length is not None and length > MAX_BODY:
        if length <= DRAIN_LIMIT:  # read it, so that the client is not cut off while still sending
            for _ in range(0, length, 65536):
                if not environ["wsgi.input"].read(65536):
                    break
        raise ApiError(413, f"the body is limited to {MAX_BODY // 1024} KiB")
    data = environ["wsgi.input"].read(length if length is not None else MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise ApiError(413, f"the body is limited to {MAX_BODY // 1024} KiB")
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        detail = str(exc)[:100] if isinstance(exc, ValueError) else "nested too deeply"
        raise ApiError(400, f"malformed JSON: {detail}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the body must be a JSON object")
    return value


# -- fields of a body ---------------------------------------------------------------------------------------
def fields(body: dict, allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        shown = ", ".join(repr(k[:40]) for k in extra[:5])
        raise ApiError(400, f"unknown field{'s' if len(extra) > 1 else ''}: {shown}")


def text(value, name: str, *, max_len: int) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    if len(value) > max_len:
        raise ApiError(400, f"{name} is limited to {max_len} characters")
    if CONTROL.search(value):
        raise ApiError(400, f"{name} may not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"{name} is not valid Unicode") from None
    return value


def required(body: dict, name: str):
    if name not in body:
        raise ApiError(400, f"{name} is required")
    return body[name]


def integer(value, name: str, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON does not tell 2 from 2.0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{name} must be an integer")
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value
