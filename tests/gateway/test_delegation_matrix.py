"""Delegation over the REST API, as a matrix: every endpoint x every kind of caller, over real HTTPS.

Callers: nobody (no credentials); the security cell (session, and API token); the local administrator of
centre A on A, on centre B, on a forged id ("abc") and on a well-formed id no centre has; the security cell on
those two ids; a local administrator whose designation was removed after login (same session, same API token);
a disabled account (session and API token); a staff member without administrative powers.

Each cell checks the status code; every refused call (anything but 2xx) must leave the administration exactly as
it was (centres, accounts, grants, documents, tokens, outbox, history), and every 404 about a centre must be
byte for byte the same answer -- whether the centre belongs to someone else, does not exist, or is not even a
well-formed id. Allowed changes are undone by the operator afterwards, so cells do not depend on each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
import sqlalchemy as sa

from gateway.core.enterprise import with_check
from storage.models import Base
from tests.conftest import CENTRE_A, CENTRE_B, STAFF_PASSWORD, SMTPCapture
from tests.gateway.test_api import api_token, archive_document, call, core_session, login, start_api_gateway

GHOST = with_check("09999999")  # well formed; no centre has it
FORGED = "abc"
NO_SUCH_CENTRE = b'{"error":"no such centre"}'
ARCHIVED = "2026-11/matrix.pdf"
CONTACTS = ["secretariaat@ocmw-aalst.test"]


@dataclass(frozen=True)
class Caller:
    key: str
    account: str | None      # whose credentials (None: none at all)
    credential: str          # "session" or "api-token"
    centre: str              # the centre id put into the path


CALLERS = [
    Caller("anonymous", None, "session", CENTRE_A),
    Caller("cell", "cell", "session", CENTRE_A),
    Caller("cell-token", "cell", "api-token", CENTRE_A),
    Caller("cell-forged-id", "cell", "session", FORGED),
    Caller("cell-unknown-id", "cell", "session", GHOST),
    Caller("admin-a", "admin-a", "session", CENTRE_A),
    Caller("admin-a-token", "admin-a", "api-token", CENTRE_A),
    Caller("admin-a-on-b", "admin-a", "session", CENTRE_B),
    Caller("admin-a-forged-id", "admin-a", "session", FORGED),
    Caller("admin-a-unknown-id", "admin-a", "session", GHOST),
    Caller("revoked-admin", "admin-r", "session", CENTRE_A),
    Caller("revoked-admin-token", "admin-r", "api-token", CENTRE_A),
    Caller("disabled", "admin-d", "session", CENTRE_A),
    Caller("disabled-token", "admin-d", "api-token", CENTRE_A),
    Caller("staff", "staff-a", "session", CENTRE_A),
]
BY_KEY = {c.key: c for c in CALLERS}
#: callers that may not know the addressed centre: the answer is the one 404
HIDDEN = {"cell-forged-id", "cell-unknown-id", "admin-a-on-b", "admin-a-forged-id", "admin-a-unknown-id",
          "revoked-admin", "revoked-admin-token", "staff"}
UNAUTHENTICATED = {"anonymous", "disabled", "disabled-token"}


def _undo_status(gw):
    gw.admin.set_status(CENTRE_A, "active", "matrix: undo")


def _undo_restore(gw):
    core_session(gw, "arch-a").archive(f"/{CENTRE_A}/{ARCHIVED}")


@dataclass(frozen=True)
class Endpoint:
    key: str
    method: str
    path: str                 # "{id}" is the caller's centre
    body: dict | None
    cell: int                 # status for the security cell on centre A
    admin: int                # status for the local administrator of centre A on A
    undo: Callable | None = None
    #: answered by the core's catalogue for the caller (not by administration): staff granted the centre read it,
    #: and a centre nobody has is one that does not exist, for the security cell too
    core: bool = False


#: every centre endpoint of the API, with what the security cell and the local administrator get on centre A
#: (centre A is active, has contacts, two local administrators and one archived document)
ENDPOINTS = [
    Endpoint("overview", "GET", "/institutions/{id}", None, 200, 200),
    Endpoint("request", "POST", "/institutions/{id}/request", {"reference": "matrix"}, 409, 403),  # A is active
    Endpoint("activate", "POST", "/institutions/{id}/activate", {"reference": "matrix"}, 409, 403),
    Endpoint("suspend", "POST", "/institutions/{id}/suspend", {"reference": "matrix"}, 200, 403, _undo_status),
    Endpoint("set-local-admin", "PUT", "/institutions/{id}/local-admins/staff-ab", None, 204, 403,
             lambda gw: gw.admin.unset_local_admin(CENTRE_A, "staff-ab")),
    Endpoint("unset-local-admin", "DELETE", "/institutions/{id}/local-admins/admin-a2", None, 204, 403,
             lambda gw: gw.admin.set_local_admin(CENTRE_A, "admin-a2")),
    Endpoint("security-consultant", "PUT", "/institutions/{id}/security-consultant", {"account": "staff-ab"},
             204, 403, lambda gw: gw.admin.set_security_consultant(CENTRE_A, None)),
    Endpoint("contacts", "PUT", "/institutions/{id}/contacts", {"contacts": ["x@ocmw.test"], "language": "fr"},
             204, 204, lambda gw: gw.admin.set_contacts(CENTRE_A, CONTACTS, "nl")),
    Endpoint("access", "GET", "/institutions/{id}/access", None, 200, 200),
    Endpoint("grant", "PUT", "/institutions/{id}/access/staff-ab", {"can_remove": True}, 403, 204,
             lambda gw: gw.admin.grant("staff-ab", CENTRE_A)),
    Endpoint("revoke", "DELETE", "/institutions/{id}/access/staff-x", None, 403, 204,
             lambda gw: gw.admin.grant("staff-x", CENTRE_A)),
    Endpoint("archived", "GET", "/institutions/{id}/archived", None, 403, 200),
    Endpoint("restore", "POST", "/institutions/{id}/restore", {"path": ARCHIVED}, 403, 200, _undo_restore),
    Endpoint("audit", "GET", "/institutions/{id}/audit?limit=10", None, 200, 200),
    Endpoint("documents", "GET", "/institutions/{id}/documents", None, 403, 200, core=True),
    Endpoint("receipt", "GET", "/institutions/{id}/documents/1/receipt", None, 403, 200, core=True),
    Endpoint("notify-test", "POST", "/institutions/{id}/notify-test", None, 202, 202),
]


@dataclass(frozen=True)
class Global:
    key: str
    method: str
    path: str
    body: dict | None
    #: status per caller kind: "cell", "admin", "revoked", "staff" (sessions; API tokens noted separately)
    expect: dict
    #: the status for API tokens, when it differs from the session's
    token_status: int | None = None


GLOBALS = [
    Global("me", "GET", "/me", None, {"cell": 200, "admin": 200, "revoked": 200, "staff": 200}),
    Global("institutions", "GET", "/institutions", None, {"cell": 200, "admin": 200, "revoked": 403, "staff": 403}),
    Global("tokens", "GET", "/tokens", None, {"cell": 200, "admin": 200, "revoked": 200, "staff": 200}),
    Global("create-token", "POST", "/tokens", {"label": "matrix"},
           {"cell": 201, "admin": 201, "revoked": 201, "staff": 201}, token_status=403),
    # someone else's token (staff-ab's): nobody else can revoke it, nor learn it exists
    Global("revoke-token", "DELETE", "/tokens/{victim}", None, {"cell": 404, "admin": 404, "revoked": 404,
                                                                "staff": 404}),
]
KIND = {"cell": "cell", "cell-token": "cell", "admin-a": "admin", "admin-a-token": "admin", "revoked-admin": "revoked",
        "revoked-admin-token": "revoked", "staff": "staff"}


def expected(endpoint: Endpoint, caller: Caller) -> int:
    if caller.key in UNAUTHENTICATED:
        return 401
    if endpoint.core and caller.key == "staff":
        return 200  # staff-a is granted centre A
    if endpoint.core and caller.key == "cell-unknown-id":
        return 404
    if caller.key == "cell-unknown-id" and endpoint.cell == 403:
        # the security cell knows every centre (it lists them all): what it may never do is refused as such,
        # for any well-formed id
        return 403
    if caller.key in HIDDEN:
        return 404
    if caller.account == "cell":
        return endpoint.cell
    assert caller.account == "admin-a"
    return endpoint.admin


# -- the world -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    smtp = SMTPCapture().start()
    gw = start_api_gateway(tmp_path_factory.mktemp("matrix"), smtp)
    op = gw.admin
    op.add_account("admin-a2", "local-admin", CENTRE_A, password=STAFF_PASSWORD)
    op.add_account("admin-r", "local-admin", CENTRE_A, password=STAFF_PASSWORD)
    op.add_account("admin-d", "local-admin", CENTRE_A, password=STAFF_PASSWORD)
    op.add_account("staff-x", "staff", password=STAFF_PASSWORD)
    op.grant("staff-x", CENTRE_A)
    op.set_contacts(CENTRE_A, CONTACTS, "nl")
    archive_document(gw, CENTRE_A, ARCHIVED, "matrix")
    credentials: dict[tuple[str, str], str] = {}
    for name in ("cell", "admin-a", "admin-r", "admin-d", "staff-a"):
        session = login(gw, name)
        credentials[(name, "session")] = session
        credentials[(name, "api-token")] = api_token(gw, session, "matrix")[1]
    victim_id, _ = api_token(gw, login(gw, "staff-ab"), "victim")
    # after login: one designation removed, one account disabled
    op.unset_local_admin(CENTRE_A, "admin-r")
    op.set_account_enabled("admin-d", False)
    gw.credentials = credentials
    gw.victim_token_id = victim_id
    yield gw
    gw.stop()
    gw.services.close()
    smtp.stop()


def send(gw, caller: Caller, method: str, path: str, body):
    token = gw.credentials[(caller.account, caller.credential)] if caller.account else None
    return call(gw.dav_port, method, path, body, token=token)


_SNAPSHOT = {
    "institutions": ("id", "name", "status", "status_reference", "status_changed_by", "contacts", "language",
                     "security_consultant_id", "networks", "content_types", "mutable"),
    "accounts": ("id", "name", "role", "institution_id", "enabled", "password_hash", "networks"),
    "grants": ("id", "account_id", "institution_id", "can_remove", "can_write", "granted_by", "expires_at"),
    "documents": ("id", "institution_id", "folder", "name", "state", "archived_at", "archived_by"),
    "folders": ("id", "institution_id", "path"),
    "status_changes": ("id", "institution_id", "from_status", "to_status", "actor", "reference"),
    "outbox": ("id", "kind", "institution_id", "recipients", "subject"),
    "device_passwords": ("id", "account_id", "kind", "label", "expires_at", "revoked_at"),
}


def snapshot(gw) -> dict:
    """Everything administration can change (not the record, which grows with every refusal)."""
    out = {}
    with gw.repo.read() as c:
        for table, columns in _SNAPSHOT.items():
            t = Base.metadata.tables[table]
            out[table] = [tuple(r) for r in c.execute(sa.select(*(t.c[n] for n in columns)).order_by(t.c.id))]
    return out


def denied_events(gw, actor: str) -> int:
    return sum(1 for e in gw.audit(limit=500) if e.actor == actor and e.outcome == "denied")


# -- the matrix ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", CALLERS, ids=[c.key for c in CALLERS])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.key for e in ENDPOINTS])
def test_centre_endpoint(world, endpoint: Endpoint, caller: Caller):
    want = expected(endpoint, caller)
    before = snapshot(world)
    denials = denied_events(world, caller.account) if caller.account else 0
    a = send(world, caller, endpoint.method, endpoint.path.replace("{id}", caller.centre), endpoint.body)
    assert a.status == want, (a.status, a.raw)
    if want >= 300:
        assert snapshot(world) == before, "a refused call changed something"
        assert a.headers["content-type"] == "application/json; charset=utf-8" and "error" in a.json
    if want == 404:
        assert a.raw == NO_SUCH_CENTRE
    if want == 401:
        assert a.raw in (b'{"error":"authentication required"}', b'{"error":"authentication failed"}')
    if want == 403:
        assert denied_events(world, caller.account) == denials + 1, "a refusal is on the record"
    if 200 <= want < 300 and endpoint.undo is not None:
        endpoint.undo(world)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.key for e in ENDPOINTS])
def test_hidden_centres_answer_exactly_like_missing_ones(world, endpoint: Endpoint):
    """Another centre, a malformed id, an id nobody has: one and the same answer, headers included."""
    answers = set()
    for key in sorted(HIDDEN):
        caller = BY_KEY[key]
        if expected(endpoint, caller) != 404:
            continue
        a = send(world, caller, endpoint.method, endpoint.path.replace("{id}", caller.centre), endpoint.body)
        answers.add((a.status, a.raw, a.headers["content-type"], a.headers["content-length"]))
    assert answers == {(404, NO_SUCH_CENTRE, "application/json; charset=utf-8", str(len(NO_SUCH_CENTRE)))}


IDENTITIES = [c for c in CALLERS if c.centre == CENTRE_A]


@pytest.mark.parametrize("caller", IDENTITIES, ids=[c.key for c in IDENTITIES])
@pytest.mark.parametrize("endpoint", GLOBALS, ids=[g.key for g in GLOBALS])
def test_global_endpoint(world, endpoint: Global, caller: Caller):
    if caller.key in UNAUTHENTICATED:
        want = 401
    elif caller.credential == "api-token" and endpoint.token_status is not None:
        want = endpoint.token_status
    else:
        want = endpoint.expect[KIND[caller.key]]
    before = snapshot(world)
    path = endpoint.path.replace("{victim}", str(world.victim_token_id))
    a = send(world, caller, endpoint.method, path, endpoint.body)
    assert a.status == want, (a.status, a.raw)
    if want >= 300:
        assert snapshot(world) == before, "a refused call changed something"
    if endpoint.key == "me" and want == 200:
        assert a.json["name"] == caller.account
        assert a.json["administers"] == ([CENTRE_A] if caller.account == "admin-a" else [])
    if endpoint.key == "institutions" and want == 200:
        ids = [i["id"] for i in a.json]
        assert ids == ([CENTRE_A] if caller.account == "admin-a" else sorted(ids))
        assert caller.account != "cell" or CENTRE_B in ids
