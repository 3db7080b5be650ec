"""The REST API under ``/api/``: everything the web console does, as JSON, described by ``/api/openapi.json``.

Like the other front-ends it only translates: HTTP requests into calls of the core's :class:`Administration`
(which asks :func:`auth.policy.decide_admin` and puts every change and every refusal on the record), and the
core's errors into HTTP statuses through the one table :data:`ERRORS`. Nothing here decides who may do what.

Authentication, per request (nothing is remembered between requests except by the core):

- ``Authorization: Bearer <session token>``: the signed value ``POST /api/session`` returns after a strong login
  (password + token card code, or password + eID certificate), valid for ``webdav.session_seconds``;
- ``Authorization: Bearer ipat-...``: an API token for scripts, created with ``POST /api/tokens`` after a strong
  login (never with another API token, so a stolen token cannot mint more);
- the console's cookie ``ip_console`` (same signer), with ``X-CSRF-Token`` on every request that is not a GET.

Whichever it is, the session is resumed in the core for every request (``Mailbox.resume_session``): a revoked
designation, a removed grant, a disabled account or a source range set on the account or its centres applies to
the very next call, on every gateway process, and the refusal is on the record.

Bodies are JSON objects (``application/json``, at most 64 KiB, unknown fields refused); answers are JSON with
``Cache-Control: no-store``; errors are ``{"error": "<message>"}``. A centre the caller may not know about
answers exactly as a centre that does not exist, and as a malformed id: 404 ``{"error": "no such centre"}``.
"""
from __future__ import annotations

import json
import logging
from http import HTTPStatus
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qs

from auth.authenticator import ApiTokenCredentials
from auth.policy import STATUSES
from auth.principal import Principal
from gateway.admin.service import Administration
from gateway.web.httpauth import parse_authorization, session_cookie
from gateway.core.localtime import last_day
from gateway.core.mailbox import Mailbox
from gateway.web.openapi import DATE, DOCUMENT_PATH, EMAIL, REFERENCE
from gateway.web.websession import SessionSigner, WebSession, has_eid, retry_after, strong_login
from storage import errors
from storage.errors import AuthenticationFailed, CentreNotFound, GatewayError, MalformedCredentials, lookup
from storage.repository import as_utc

log = logging.getLogger("instpages.api")

#: the console's session cookie; accepted here too, with a CSRF header on every request that is not a GET
COOKIE = "ip_console"
CSRF_HEADER = "HTTP_X_CSRF_TOKEN"
MAX_BODY = 64 * 1024
#: a body too large is still read (and dropped) up to this size before the answer, so the client gets it
DRAIN_LIMIT = 1024 * 1024
#: seconds the core remembers a verified API token (saves an argon2 verification per request)
TOKEN_REUSE_SECONDS = 60
NO_SUCH_CENTRE = "no such centre"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# the patterns of the OpenAPI document: the server accepts exactly what the document describes
_REFERENCE, _EMAIL, _PATH, _DATE = (re.compile(p) for p in (REFERENCE, EMAIL, DOCUMENT_PATH, DATE))
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

#: the one table from the core's errors (storage.errors) to HTTP statuses, looked up along the error's MRO.
#: tests/test_errors.py checks that it answers every error. 500 is kept for server faults (damaged stored bytes,
#: bad configuration): those are logged and answered with the generic "internal error".
ERRORS: dict[type[GatewayError], int] = {
    errors.AdminError: 400,
    errors.AdminNotFound: 404,
    errors.AdminForbidden: 403,
    errors.AdminConflict: 409,
    errors.NotFound: 404,
    errors.PermissionDenied: 403,
    errors.AuthenticationFailed: 401,
    errors.Throttled: 429,
    errors.ServiceUnavailable: 503,
    errors.MalformedRequest: 400,
    errors.AlreadyExists: 409,
    errors.ContentRefused: 415,
    errors.InstitutionNotActive: 403,
    errors.TooLarge: 413,
    errors.InvalidName: 400,
    errors.Unsupported: 403,
    errors.Conflict: 409,
    errors.IntegrityFailure: 500,
    errors.ConfigError: 500,
}

class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, message, (("WWW-Authenticate", 'Bearer realm="Institutional Pages"'),))


def _login_refused(exc: AuthenticationFailed) -> ApiError:
    """Answered at once, no thread waits: 429 + Retry-After while the name or the address may not try (nothing
    was looked at), otherwise the one generic 401."""
    if exc.throttled:
        return ApiError(429, "too many failed logins; try again later", (("Retry-After", retry_after(exc)),))
    return _unauthorized("authentication failed")


# -- routes ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    handler: str
    #: no authentication (the document, the login itself)
    public: bool = False
    #: "required", "optional" or None (any body is ignored)
    body: str | None = None
    #: only with a session from a strong login, not with an API token
    strong: bool = False


ROUTES: tuple[tuple[tuple[str, ...], dict[str, Op]], ...] = (
    (("openapi.json",), {"GET": Op("openapi", public=True)}),
    (("session", "challenge"), {"GET": Op("challenge", public=True)}),
    (("session",), {"POST": Op("login", public=True, body="required"), "DELETE": Op("logout", public=True)}),
    (("me",), {"GET": Op("me")}),
    (("tokens",), {"GET": Op("tokens"), "POST": Op("create_token", body="optional", strong=True)}),
    (("tokens", "{token_id}"), {"DELETE": Op("revoke_token")}),
    (("institutions",), {"GET": Op("institutions")}),
    (("institutions", "{id}"), {"GET": Op("overview")}),
    (("institutions", "{id}", "request"), {"POST": Op("request", body="required")}),
    (("institutions", "{id}", "activate"), {"POST": Op("activate", body="required")}),
    (("institutions", "{id}", "suspend"), {"POST": Op("suspend", body="required")}),
    (("institutions", "{id}", "local-admins", "{account}"),
     {"PUT": Op("set_local_admin"), "DELETE": Op("unset_local_admin")}),
    (("institutions", "{id}", "security-consultant"), {"PUT": Op("security_consultant", body="required")}),
    (("institutions", "{id}", "contacts"), {"PUT": Op("contacts", body="required")}),
    (("institutions", "{id}", "access"), {"GET": Op("access")}),
    (("institutions", "{id}", "access", "{account}"), {"PUT": Op("grant", body="optional"), "DELETE": Op("revoke")}),
    (("institutions", "{id}", "archived"), {"GET": Op("archived")}),
    (("institutions", "{id}", "restore"), {"POST": Op("restore", body="required")}),
    (("institutions", "{id}", "audit"), {"GET": Op("audit")}),
    (("institutions", "{id}", "notify-test"), {"POST": Op("notify_test")}),
)


def route(path_info: str, method: str) -> tuple[Op, dict[str, str]]:
    """The one place a path is taken apart: (operation, path parameters), or ApiError 404/405."""
    not_found = ApiError(404, "no such endpoint (see /api/openapi.json)")
    try:
        path = path_info.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise not_found from None
    if not path.startswith("/"):
        raise not_found
    segments = path[1:].split("/")
    if any(not s or _CONTROL.search(s) for s in segments):
        raise not_found
    for pattern, methods in ROUTES:
        if len(pattern) != len(segments):
            continue
        params: dict[str, str] = {}
        for want, got in zip(pattern, segments):
            if want.startswith("{"):
                params[want[1:-1]] = got
            elif want != got:
                break
        else:
            if method == "OPTIONS":
                raise ApiError(204, "", (("Allow", ", ".join([*methods, "OPTIONS"])),))
            if method not in methods:
                raise ApiError(405, f"{method[:20]} is not allowed here",
                               (("Allow", ", ".join([*methods, "OPTIONS"])),))
            return methods[method], params
    raise not_found


# -- the request --------------------------------------------------------------------------------------------
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


def _until(expires: datetime | None) -> str | None:
    """The last day (Brussels) of a grant ending at ``expires``: what ``until`` was given as."""
    return None if expires is None else last_day(expires)


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate field {key[:40]!r}")
        out[key] = value
    return out


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


# -- fields of a body ---------------------------------------------------------------------------------------
def _fields(body: dict, allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        shown = ", ".join(repr(k[:40]) for k in extra[:5])
        raise ApiError(400, f"unknown field{'s' if len(extra) > 1 else ''}: {shown}")


def _text(value, name: str, *, max_len: int) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    if len(value) > max_len:
        raise ApiError(400, f"{name} is limited to {max_len} characters")
    if _CONTROL.search(value):
        raise ApiError(400, f"{name} may not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"{name} is not valid Unicode") from None
    return value


def _required(body: dict, name: str):
    if name not in body:
        raise ApiError(400, f"{name} is required")
    return body[name]


def _integer(value, name: str, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON does not tell 2 from 2.0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{name} must be an integer")
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value


class RestApi:
    def __init__(self, mailbox: Mailbox, signer: SessionSigner, **kw):
        self.mailbox = mailbox
        self.signer = signer

    # -- WSGI ------------------------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            reply = self._handle(environ, method)
        except ApiError as exc:
            reply = Reply(exc.status, {"error": exc.message} if exc.status != 204 else None, exc.headers)
        except Exception:  # pragma: no cover - a bug; never a traceback to the client
            log.exception("API %s %s failed", method, environ.get("PATH_INFO", "")[:200])
            reply = Reply(500, {"error": "internal error"})
        return self._send(start_response, reply)

    @staticmethod
    def _send(start_response, reply: Reply):
        headers = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                   ("Referrer-Policy", "no-referrer"), *reply.headers]
        if reply.status == 204:
            body = b""
        else:
            body = json.dumps(reply.data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers.append(("Content-Type", "application/json; charset=utf-8"))
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{reply.status} {HTTPStatus(reply.status).phrase}", headers)
        return [body]

    def _handle(self, environ, method: str) -> Reply:
        op, params = route(environ.get("PATH_INFO", "") or "", method)
        source = environ.get("instpages.source") or environ.get("REMOTE_ADDR", "")
        req = Request(environ, method, params, source,
                      parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        try:
            if not op.public:
                self._authenticate(req)
                if op.strong and req.via == "api-token":
                    raise ApiError(403, "API tokens are created after a strong login (a session), "
                                        "not with another API token")
            if op.body is not None:
                req.body = self._json(environ, required=op.body == "required")
            handler: Callable[[Request], Reply] = getattr(self, "_" + op.handler)
            return handler(req)
        except GatewayError as exc:
            status = lookup(ERRORS, exc)
            if status is None or status == 500:
                raise
            message = exc.message
            if isinstance(exc, CentreNotFound):
                # not administered by this caller, not there, or not a centre id: one and the same answer
                message = NO_SUCH_CENTRE
            if status == 401:
                raise _unauthorized(message) from None
            raise ApiError(status, message) from None

    # -- authentication ----------------------------------------------------------------------------------
    def _authenticate(self, req: Request) -> None:
        environ = req.environ
        header = environ.get("HTTP_AUTHORIZATION", "")
        try:
            auth = parse_authorization(header) if header else None
            cookie = session_cookie(environ, COOKIE) if auth is None else ""
        except MalformedCredentials as exc:
            self.mailbox.record_failed_login("", "api", req.source, "bearer" if header else "cookie", exc.reason)
            raise _unauthorized("authentication failed") from None
        if auth is not None:
            if auth.scheme != "bearer":
                raise _unauthorized("use Authorization: Bearer <session token or API token>")
            value = auth.secret
            if value.startswith("ipat-"):
                self._api_token(req, value)
                return
            session = self.signer.verify(value)
            if session is None:
                raise _unauthorized("session expired or not valid; log in again")
            self._session(req, session, "session")
            return
        if cookie:
            session = self.signer.verify(cookie)
            if session is None:
                raise _unauthorized("session expired or not valid; log in again")
            if req.method != "GET" and not self.signer.csrf_ok(session, environ.get(CSRF_HEADER, "")):
                raise ApiError(403, "missing or wrong X-CSRF-Token header")
            self._session(req, session, "cookie")
            return
        raise _unauthorized()

    def _api_token(self, req: Request, secret: str) -> None:
        if len(secret) > 512:
            raise _unauthorized("authentication failed")
        try:
            session = self.mailbox.login(ApiTokenCredentials(secret), protocol="api", source=req.source,
                                         reuse_seconds=TOKEN_REUSE_SECONDS)
            # the core may remember the token's principal a short while; the token is resumed in the core for
            # every request (account enabled, its and its centres' source ranges, designations and grants), so
            # a revocation or a new range applies at once (and on every gateway process)
            req.principal = self.mailbox.resume_session(session.principal.account_id, session.principal.name, None,
                                                        method="api-token", source=req.source, protocol="api")
        except AuthenticationFailed as exc:
            raise _login_refused(exc) from None
        req.via = "api-token"

    def _session(self, req: Request, session: WebSession, via: str) -> None:
        try:
            principal = self.mailbox.resume_session(session.account_id, session.name, session.issued,
                                                    method="session", source=req.source, protocol="api")
        except AuthenticationFailed:
            raise _unauthorized("authentication failed") from None
        req.principal, req.via = principal, via

    # -- bodies --------------------------------------------------------------------------------------------
    def _json(self, environ, *, required: bool) -> dict:
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

    # -- helpers -------------------------------------------------------------------------------------------
    def _admin(self, req: Request) -> Administration:
        return Administration(self.mailbox, actor=req.principal.name, protocol="api", source=req.source,
                              principal=req.principal)

    @staticmethod
    def _query(req: Request, name: str) -> str | None:
        values = req.query.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise ApiError(400, f"{name} is given more than once")
        return values[0]

    # -- public --------------------------------------------------------------------------------------------
    def _openapi(self, req: Request) -> Reply:
        from gateway.web.openapi import DOCUMENT

        return Reply(200, DOCUMENT)

    def _challenge(self, req: Request) -> Reply:
        username = self._query(req, "username")
        if not username:
            raise ApiError(400, "username is required")
        username = _text(username, "username", max_len=64)
        return Reply(200, {"number": self.mailbox.token_challenge(username)})

    def _login(self, req: Request) -> Reply:
        body = req.body
        _fields(body, {"username", "password", "number", "code"})
        username = _text(_required(body, "username"), "username", max_len=64)
        password = _text(_required(body, "password"), "password", max_len=1024)
        number = _integer(body["number"], "number", 1, 1000) if "number" in body else 0
        code = _text(body["code"], "code", max_len=64) if "code" in body else ""
        if not username or not password:
            raise ApiError(400, "username and password are required")
        try:
            session = strong_login(self.mailbox, req.environ, username=username, password=password, number=number,
                                   code=code, protocol="api", source=req.source)
        except AuthenticationFailed as exc:
            raise _login_refused(exc) from None
        p = session.principal
        web = self.signer.issue(p.account_id, p.name)
        expires = datetime.fromtimestamp(web.expires, timezone.utc)
        return Reply(201, {"token": web.value, "expires_at": iso(expires), "account": p.name,
                           "second_factor": "eid" if has_eid(self.mailbox, req.environ) else "token"})

    def _logout(self, req: Request) -> Reply:
        """Ends the caller's sessions on every gateway process (the core records the moment); API tokens are
        revoked separately (DELETE /tokens/{id})."""
        header = req.environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = header.strip().partition(" ")
        session = self.signer.verify(value.strip()) if scheme.lower() == "bearer" else None
        if session is not None:
            self.mailbox.end_sessions(session.account_id, protocol="api", source=req.source)
        return Reply(204)

    # -- who am I ------------------------------------------------------------------------------------------
    def _me(self, req: Request) -> Reply:
        p = req.principal
        return Reply(200, {"name": p.name, "role": p.role.value, "administers": sorted(p.administered()),
                           "authenticated_by": req.via})

    # -- API tokens (the caller's own) -------------------------------------------------------------------------
    def _token_json(self, t) -> dict:
        return {"id": t.id, "label": t.label, "created_at": iso(t.created_at), "expires_at": iso(t.expires_at),
                "revoked": bool(t.revoked), "last_used_at": iso(t.last_used_at)}

    def _tokens(self, req: Request) -> Reply:
        tokens = self._admin(req).api_tokens(req.principal.name)
        return Reply(200, [self._token_json(t) for t in tokens])

    def _create_token(self, req: Request) -> Reply:
        body = req.body
        _fields(body, {"label", "days"})
        label = _text(body["label"], "label", max_len=100) if "label" in body else ""
        days = _integer(body["days"], "days", 1, 365) if "days" in body else None
        admin = self._admin(req)
        token_id, secret = admin.create_api_token(req.principal.name, label, days)
        made = next((t for t in admin.api_tokens(req.principal.name) if t.id == token_id), None)
        return Reply(201, {"id": token_id, "token": secret, "label": label,
                           "expires_at": iso(made.expires_at) if made else None})

    def _revoke_token(self, req: Request) -> Reply:
        raw = req.params["token_id"]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise ApiError(404, f"no live API token {raw[:20]}")
        self._admin(req).revoke_api_token(req.principal.name, int(raw))
        return Reply(204)

    # -- centres -------------------------------------------------------------------------------------------
    def _institutions(self, req: Request) -> Reply:
        status = self._query(req, "status")
        if status is not None and status not in STATUSES:
            raise ApiError(400, f"status must be one of {', '.join(STATUSES)}")
        rows = self._admin(req).institutions()
        return Reply(200, [{"id": i.id, "name": i.name, "status": i.status, "language": i.language,
                            "status_changed_at": iso(i.status_changed_at),
                            "status_changed_by": i.status_changed_by or ""}
                           for i in rows if status is None or i.status == status])

    def _overview(self, req: Request) -> Reply:
        o = self._admin(req).centre_overview(req.params["id"])
        c = o["centre"]
        consultant = o["consultant"]
        return Reply(200, {
            "id": c.id, "name": c.name, "status": c.status, "status_reference": c.status_reference or "",
            "status_changed_at": iso(c.status_changed_at), "status_changed_by": c.status_changed_by or "",
            "language": c.language,
            "contacts": [a.strip() for a in (c.contacts or "").split(",") if a.strip()],
            "local_admins": [a.name for a in o["local_admins"]],
            "security_consultant": consultant.name if consultant is not None else None,
            "acting_consultant": bool(o["acting_consultant"]),
            "history": [{"from": h.from_status, "to": h.to_status, "actor": h.actor, "reference": h.reference or "",
                         "at": iso(h.at)} for h in o["history"]],
            "outbox": [{"id": m.id, "kind": m.kind, "created_at": iso(m.created_at), "sent_at": iso(m.sent_at),
                        "attempts": m.attempts, "last_error": m.last_error or ""} for m in o["outbox"]],
        })

    def _transition(self, req: Request, verb: str) -> Reply:
        _fields(req.body, {"reference"})
        reference = _text(_required(req.body, "reference"), "reference", max_len=500)
        if not _REFERENCE.fullmatch(reference):
            raise ApiError(400, "a reference is required (e.g. the date and number of the request, or of the "
                                "signed forms received)")
        old, new, outbox_id = self._admin(req).transition(req.params["id"], verb, reference)
        return Reply(200, {"from": old, "to": new, "notice_queued": outbox_id is not None, "outbox_id": outbox_id})

    def _request(self, req: Request) -> Reply:
        return self._transition(req, "request")

    def _activate(self, req: Request) -> Reply:
        return self._transition(req, "activate")

    def _suspend(self, req: Request) -> Reply:
        return self._transition(req, "suspend")

    def _set_local_admin(self, req: Request) -> Reply:
        self._admin(req).set_local_admin(req.params["id"], req.params["account"])
        return Reply(204)

    def _unset_local_admin(self, req: Request) -> Reply:
        self._admin(req).unset_local_admin(req.params["id"], req.params["account"])
        return Reply(204)

    def _security_consultant(self, req: Request) -> Reply:
        _fields(req.body, {"account"})
        account = _required(req.body, "account")
        if account is not None:
            account = _text(account, "account", max_len=64)
            if not account:
                raise ApiError(400, "account must be a person's account name, or null to remove the consultant")
        self._admin(req).set_security_consultant(req.params["id"], account)
        return Reply(204)

    def _contacts(self, req: Request) -> Reply:
        body = req.body
        _fields(body, {"contacts", "language"})
        contacts = language = None
        if "contacts" in body:
            if not isinstance(body["contacts"], list):
                raise ApiError(400, "contacts must be a list of e-mail addresses")
            if len(body["contacts"]) > 20:
                raise ApiError(400, "at most 20 notification addresses per centre")
            contacts = []
            for item in body["contacts"]:
                addr = _text(item, "a contact", max_len=254)
                if not _EMAIL.fullmatch(addr):
                    raise ApiError(400, f"not an e-mail address: {addr[:80]!r}")
                contacts.append(addr)
        if "language" in body:
            language = _text(body["language"], "language", max_len=2)
        if contacts is None and language is None:
            raise ApiError(400, "give contacts, language or both")
        self._admin(req).set_contacts(req.params["id"], contacts=contacts, language=language)
        return Reply(204)

    def _access(self, req: Request) -> Reply:
        rows = self._admin(req).access(req.params["id"])
        return Reply(200, [{"account": g.name, "display_name": g.display_name or "", "enabled": bool(g.enabled),
                            "can_remove": bool(g.can_remove), "can_write": bool(g.can_write),
                            "granted_by": g.granted_by or "", "since": iso(g.created_at),
                            "until": _until(g.expires_at), "expires_at": iso(g.expires_at)} for g in rows])

    def _grant(self, req: Request) -> Reply:
        body = req.body
        _fields(body, {"can_remove", "until"})
        can_remove = body.get("can_remove", False)
        if not isinstance(can_remove, bool):
            raise ApiError(400, "can_remove must be true or false")
        until = body.get("until")
        if until is not None:
            until = _text(until, "until", max_len=10)
            try:
                date.fromisoformat(until if _ISO_DAY.fullmatch(until) else "")
            except ValueError:
                raise ApiError(400, f"until is not a date (YYYY-MM-DD): {until!r}") from None
            if not _DATE.fullmatch(until):  # also keeps the core's date arithmetic far from date.max
                raise ApiError(400, f"until {until} is too far in the future (dates before the year 9000)")
        self._admin(req).grant(req.params["account"], req.params["id"], can_remove=can_remove, until=until)
        return Reply(204)

    def _revoke(self, req: Request) -> Reply:
        self._admin(req).revoke(req.params["account"], req.params["id"])
        return Reply(204)

    def _archived(self, req: Request) -> Reply:
        rows = self._admin(req).archived(req.params["id"])
        return Reply(200, [{"id": d.id, "path": f"{d.folder}/{d.name}" if d.folder else d.name, "size": d.size,
                            "delivered_at": iso(d.committed_at), "archived_at": iso(d.archived_at),
                            "archived_by": d.archived_by or ""} for d in rows])

    def _restore(self, req: Request) -> Reply:
        _fields(req.body, {"path"})
        path = _text(_required(req.body, "path"), "path", max_len=1000)
        if not _PATH.fullmatch(path):
            raise ApiError(400, "give the document's path inside the mailbox, e.g. 2026-11/report.pdf "
                                "(no empty, '.' or '..' components)")
        document_id = self._admin(req).restore(req.params["id"], path)
        return Reply(200, {"document_id": document_id})

    def _audit(self, req: Request) -> Reply:
        raw = self._query(req, "limit")
        limit = 50
        if raw is not None:
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and 1 <= int(raw) <= 500):
                raise ApiError(400, "limit must be an integer between 1 and 500")
            limit = int(raw)
        events = self._admin(req).audit_list(req.params["id"], limit)
        return Reply(200, [{"id": e.id, "ts": iso(e.ts), "actor": e.actor or "", "protocol": e.protocol or "",
                            "action": e.action, "outcome": e.outcome, "path": e.path or "",
                            "detail": e.detail or ""} for e in events])

    def _notify_test(self, req: Request) -> Reply:
        outbox_id = self._admin(req).notify_test(req.params["id"])
        return Reply(202, {"outbox_id": outbox_id})
