"""The REST API's WSGI application: authentication of every request, dispatch to the handler of its route, the
answer as JSON, and the one table :data:`ERRORS` from the core's errors to HTTP statuses.

The handlers live in one module per resource (:mod:`gateway.web.api.sessions`, ``tokens``, ``centres``,
``access``, ``documents``); :class:`RestApi` is all of them. See :mod:`gateway.web.api` for how callers
authenticate.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import parse_qs

from auth.authenticator import ApiTokenCredentials
from gateway.admin.service import Administration
from gateway.core.mailbox import Mailbox
from gateway.web.api.access import AccessHandlers
from gateway.web.api.centres import CentreHandlers
from gateway.web.api.documents import DocumentHandlers
from gateway.web.api.request import ApiError, Reply, Request, login_refused, read_json, unauthorized
from gateway.web.api.routes import route
from gateway.web.api.sessions import SessionHandlers
from gateway.web.api.tokens import TokenHandlers
from gateway.web.httpauth import parse_authorization, session_cookie
from gateway.web.websession import SessionSigner, WebSession
from storage import errors
from storage.errors import AuthenticationFailed, CentreNotFound, GatewayError, MalformedCredentials, lookup

log = logging.getLogger("instpages.api")

#: the console's session cookie; accepted here too, with a CSRF header on every request that is not a GET
COOKIE = "ip_console"
CSRF_HEADER = "HTTP_X_CSRF_TOKEN"
#: seconds the core remembers a verified API token (saves an argon2 verification per request)
TOKEN_REUSE_SECONDS = 60
NO_SUCH_CENTRE = "no such centre"

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


class RestApi(SessionHandlers, TokenHandlers, CentreHandlers, AccessHandlers, DocumentHandlers):
    """The WSGI application mounted at ``/api``; ``administration`` is the services factory's
    (``Services.administration``)."""

    def __init__(self, mailbox: Mailbox, signer: SessionSigner, *, administration: Callable[..., Administration],
                 **kw):
        self.mailbox = mailbox
        self.signer = signer
        self.administration = administration

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
                req.body = read_json(environ, required=op.body == "required")
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
                raise unauthorized(message) from None
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
            raise unauthorized("authentication failed") from None
        if auth is not None:
            if auth.scheme != "bearer":
                raise unauthorized("use Authorization: Bearer <session token or API token>")
            value = auth.secret
            if value.startswith("ipat-"):
                self._api_token(req, value)
                return
            session = self.signer.verify(value)
            if session is None:
                raise unauthorized("session expired or not valid; log in again")
            self._session(req, session, "session")
            return
        if cookie:
            session = self.signer.verify(cookie)
            if session is None:
                raise unauthorized("session expired or not valid; log in again")
            if req.method != "GET" and not self.signer.csrf_ok(session, environ.get(CSRF_HEADER, "")):
                raise ApiError(403, "missing or wrong X-CSRF-Token header")
            self._session(req, session, "cookie")
            return
        raise unauthorized()

    def _api_token(self, req: Request, secret: str) -> None:
        if len(secret) > 512:
            raise unauthorized("authentication failed")
        try:
            session = self.mailbox.login(ApiTokenCredentials(secret), protocol="api", source=req.source,
                                         reuse_seconds=TOKEN_REUSE_SECONDS)
            # the core may remember the token's principal a short while; the token is resumed in the core for
            # every request (account enabled, its and its centres' source ranges, designations and grants), so
            # a revocation or a new range applies at once (and on every gateway process)
            req.principal = self.mailbox.resume_session(session.principal.account_id, session.principal.name, None,
                                                        method="api-token", source=req.source, protocol="api")
        except AuthenticationFailed as exc:
            raise login_refused(exc) from None
        req.via = "api-token"

    def _session(self, req: Request, session: WebSession, via: str) -> None:
        try:
            principal = self.mailbox.resume_session(session.account_id, session.name, session.issued,
                                                    method="session", source=req.source, protocol="api")
        except AuthenticationFailed:
            raise unauthorized("authentication failed") from None
        req.principal, req.via = principal, via
