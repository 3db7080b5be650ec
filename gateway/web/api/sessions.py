"""The REST API's public operations and the caller's session: the OpenAPI document, the token card number to
answer, logging in (a strong login gives a session token) and out, and who the caller is."""
from __future__ import annotations

from datetime import datetime, timezone

from gateway.web.api.request import (ApiError, Handlers, Reply, Request, fields, integer, iso, login_refused, query,
                                     required, text)
from gateway.web.websession import has_eid, strong_login
from storage.errors import AuthenticationFailed


class SessionHandlers(Handlers):
    """``/openapi.json``, ``/session``, ``/session/challenge``, ``/me``."""

    def _openapi(self, req: Request) -> Reply:
        from gateway.web.api.openapi import DOCUMENT

        return Reply(200, DOCUMENT)

    def _challenge(self, req: Request) -> Reply:
        username = query(req, "username")
        if not username:
            raise ApiError(400, "username is required")
        username = text(username, "username", max_len=64)
        return Reply(200, {"number": self.mailbox.token_challenge(username)})

    def _login(self, req: Request) -> Reply:
        body = req.body
        fields(body, {"username", "password", "number", "code"})
        username = text(required(body, "username"), "username", max_len=64)
        password = text(required(body, "password"), "password", max_len=1024)
        number = integer(body["number"], "number", 1, 1000) if "number" in body else 0
        code = text(body["code"], "code", max_len=64) if "code" in body else ""
        if not username or not password:
            raise ApiError(400, "username and password are required")
        try:
            session = strong_login(self.mailbox, req.environ, username=username, password=password, number=number,
                                   code=code, protocol="api", source=req.source)
        except AuthenticationFailed as exc:
            raise login_refused(exc) from None
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
