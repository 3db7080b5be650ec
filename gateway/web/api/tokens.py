"""The REST API's ``/tokens``: the caller's own API tokens, listed, created (after a strong login only, see
:data:`gateway.web.api.routes.ROUTES`) and revoked; and ``/uploaders/{account}/tokens``: the security cell issues,
lists and revokes the API tokens of POD MI's uploaders -- machine accounts, which cannot log in strongly to make
their own -- with which they read the receipts of what they sent."""
from __future__ import annotations

from gateway.web.api.request import ApiError, Handlers, Reply, Request, fields, integer, iso, text


def _token_json(t) -> dict:
    return {"id": t.id, "label": t.label, "created_at": iso(t.created_at), "expires_at": iso(t.expires_at),
            "revoked": bool(t.revoked), "last_used_at": iso(t.last_used_at)}


class TokenHandlers(Handlers):
    """``/tokens``, ``/tokens/{token_id}``, ``/uploaders/{account}/tokens`` and
    ``/uploaders/{account}/tokens/{token_id}``."""

    def _tokens(self, req: Request) -> Reply:
        tokens = self._admin(req).api_tokens(req.principal.name)
        return Reply(200, [_token_json(t) for t in tokens])

    def _create_token(self, req: Request) -> Reply:
        label, days = _token_request(req.body)
        admin = self._admin(req)
        token_id, secret = admin.create_api_token(req.principal.name, label, days)
        made = next((t for t in admin.api_tokens(req.principal.name) if t.id == token_id), None)
        return Reply(201, {"id": token_id, "token": secret, "label": label,
                           "expires_at": iso(made.expires_at) if made else None})

    def _revoke_token(self, req: Request) -> Reply:
        self._admin(req).revoke_api_token(req.principal.name, _token_id(req))
        return Reply(204)

    # -- an uploader's, by the security cell ------------------------------------------------------------------
    def _uploader_tokens(self, req: Request) -> Reply:
        tokens = self._admin(req).api_tokens(req.params["account"], uploader=True)
        return Reply(200, [_token_json(t) for t in tokens])

    def _create_uploader_token(self, req: Request) -> Reply:
        label, days = _token_request(req.body)
        admin = self._admin(req)
        account = req.params["account"]
        token_id, secret = admin.create_api_token(account, label, days, uploader=True)
        made = next((t for t in admin.api_tokens(account, uploader=True) if t.id == token_id), None)
        return Reply(201, {"id": token_id, "token": secret, "label": label,
                           "expires_at": iso(made.expires_at) if made else None})

    def _revoke_uploader_token(self, req: Request) -> Reply:
        self._admin(req).revoke_api_token(req.params["account"], _token_id(req), uploader=True)
        return Reply(204)


def _token_request(body: dict) -> tuple[str, int | None]:
    fields(body, {"label", "days"})
    label = text(body["label"], "label", max_len=100) if "label" in body else ""
    days = integer(body["days"], "days", 1, 365) if "days" in body else None
    return label, days


def _token_id(req: Request) -> int:
    raw = req.params["token_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ApiError(404, f"no live API token {raw[:20]}")
    return int(raw)
