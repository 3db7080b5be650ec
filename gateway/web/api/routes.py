"""The REST API's routes: which operation a path and a method name, and the one place a path is taken apart.

Each operation is the name of a handler method (``_<name>`` on :class:`gateway.web.api.app.RestApi`) with what it
asks of the request: authentication, a body, a strong login.
"""
from __future__ import annotations

from dataclasses import dataclass

from gateway.web.api.request import CONTROL, ApiError


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
    (("uploaders", "{account}", "tokens"),
     {"GET": Op("uploader_tokens"), "POST": Op("create_uploader_token", body="optional", strong=True)}),
    (("uploaders", "{account}", "tokens", "{token_id}"), {"DELETE": Op("revoke_uploader_token")}),
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
    (("institutions", "{id}", "documents"), {"GET": Op("documents")}),
    (("institutions", "{id}", "documents", "{doc}", "receipt"), {"GET": Op("receipt")}),
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
    if any(not s or CONTROL.search(s) for s in segments):
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
