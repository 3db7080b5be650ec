"""Delegation in the administration core, as a matrix: every delegated operation x every kind of caller x own
centre / another centre / a forged id / a centre that does not exist. The REST API and the console call exactly
these methods (their own matrices are in test_delegation_matrix.py and test_console*.py); here the core's
decisions, its refusals on the record, grant end dates and the acting security consultant are checked directly.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from auth.authenticator import TokenCredentials
from auth.policy import AdminAction, Decision, decide_admin
from auth.principal import Principal, Role
from gateway.admin.service import Administration
from gateway.core.enterprise import with_check
from gateway.core.lifecycle import allowed_verbs, next_status
from storage.errors import AdminConflict, AdminError, AdminForbidden, AdminNotFound, IllegalTransition
from storage.repository import utcnow
from tests.conftest import (CENTRE_A, CENTRE_B, CENTRE_PAPER, STAFF_PASSWORD, populate, start_gateway)
from tests.ldapserver import ALICE_NRN, PASSWORDS, gateway_env, slapd  # noqa: F401

MISSING = with_check("09999999")  # a valid enterprise number no centre has


# -- pure functions --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status,verb,expected", [
    ("paper", "request", "requested"), ("requested", "activate", "active"), ("active", "suspend", "suspended"),
    ("suspended", "activate", "active"),
    ("paper", "activate", None), ("paper", "suspend", None), ("requested", "request", None),
    ("requested", "suspend", None), ("active", "request", None), ("active", "activate", None),
    ("suspended", "suspend", None), ("suspended", "request", None), ("active", "archive", None),
])
def test_lifecycle(status, verb, expected):
    if expected is None:
        with pytest.raises(IllegalTransition) as exc:
            next_status(status, verb)
        assert str(exc.value).startswith(("cannot ", "unknown transition"))
        assert verb not in allowed_verbs(status)
    else:
        assert next_status(status, verb) == expected
        assert verb in allowed_verbs(status)


OWN, OTHER = CENTRE_A, CENTRE_B
_P = {
    "cell": Principal(1, "cell", Role.SECURITY_CELL),
    "local-admin": Principal(2, "ladmin", Role.LOCAL_ADMIN, OWN),
    "consultant": Principal(3, "cons", Role.STAFF, administers=frozenset({OWN})),
    "staff": Principal(4, "staff", Role.STAFF),
    "uploader": Principal(5, "podmi", Role.UPLOADER),
    "archiver": Principal(6, "arch", Role.ARCHIVER, OWN),
}
A, D, H = Decision.ALLOWED, Decision.DENIED, Decision.HIDDEN
# decisions on the caller's own centre (for the cell: any centre)
_OWN = {
    #                 view tr  desig cont vacc grant rest cat audit test refile
    "cell":          (A,   A,  A,    A,   A,   D,    D,   D,  A,    A,   D),
    "local-admin":   (A,   D,  D,    A,   A,   A,    A,   A,  A,    A,   D),
    "consultant":    (A,   D,  D,    A,   A,   A,    A,   A,  A,    A,   D),
    "staff":         (H,   H,  H,    H,   H,   H,    H,   H,  H,    H,   H),
    "uploader":      (D,   D,  D,    D,   D,   D,    D,   D,  D,    D,   D),
    "archiver":      (D,   D,  D,    D,   D,   D,    D,   D,  D,    D,   D),
}
_ACTIONS = [AdminAction.VIEW, AdminAction.TRANSITION, AdminAction.DESIGNATE, AdminAction.CONTACTS,
            AdminAction.VIEW_ACCESS, AdminAction.GRANT, AdminAction.RESTORE, AdminAction.CATALOGUE, AdminAction.AUDIT,
            AdminAction.NOTIFY_TEST, AdminAction.REFILE]


@pytest.mark.parametrize("who", list(_OWN))
def test_admin_policy_matrix(who):
    p = _P[who]
    for action, expected in zip(_ACTIONS, _OWN[who]):
        assert decide_admin(p, action, OWN) is expected, (who, action)
        # another centre: the cell's answer is the same; a local admin must not even learn it exists
        other = decide_admin(p, action, OTHER)
        assert other is (expected if who in ("cell", "uploader", "archiver") else H), (who, action)
    assert decide_admin(None, AdminAction.GRANT, OTHER) is A  # the operator on the host
    assert decide_admin(None, AdminAction.REFILE) is A  # refiling by the current rules: the operator's alone
    assert decide_admin(p, AdminAction.LIST_ALL) is (A if who in ("cell", "local-admin", "consultant") else D)


# -- the core, in process ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = tmp_path_factory.mktemp("admincore")
    g = start_gateway(d / "var")
    populate(g, d)
    a = g.admin
    a.add_account("cons-b", "staff", None, [], STAFF_PASSWORD)    # security consultant of B (no local admin there)
    a.add_account("target", "staff", None, [], STAFF_PASSWORD)    # the person access is granted to
    a.add_account("former", "local-admin", CENTRE_B, [], STAFF_PASSWORD)
    a.set_security_consultant(CENTRE_B, "cons-b")
    a.unset_local_admin(CENTRE_B, "former")                       # a revoked administrator
    a.add_account("gone", "local-admin", CENTRE_A, [], STAFF_PASSWORD)
    a.set_account_enabled("gone", False)
    yield g
    g.stop()
    g.services.close()


def _admin(gw, name: str) -> Administration:
    mailbox = gw.services.mailbox
    with gw.repo.read() as c:
        acc = gw.repo.account_by_name(c, name)
    return gw.services.administration(protocol="test", source="127.0.0.1",
                          principal=mailbox.load_principal(acc.id, "test", "127.0.0.1"))


OPS = {
    "overview": lambda a, c: a.centre_overview(c),
    "history": lambda a, c: a.history(c),
    "request": lambda a, c: a.transition(c, "request", "matrix"),
    "designate": lambda a, c: (a.set_local_admin(c, "target"), a.unset_local_admin(c, "target")),
    "consultant": lambda a, c: a.set_security_consultant(c, "cons-b"),
    "contacts": lambda a, c: a.set_contacts(c, "x@ocmw.test", "nl"),
    "access": lambda a, c: a.access(c),
    "grant": lambda a, c: (a.grant("target", c), a.revoke("target", c)),
    "archived": lambda a, c: a.archived(c),
    "restore": lambda a, c: a.restore(c, "nothing-here.pdf"),
    "audit": lambda a, c: a.audit_list(c, 5),
    "notify-test": lambda a, c: a.notify_test(c),
}
# which operations each caller may run on its own centre (A for admin-a, B for the acting consultant cons-b;
# the cell may run its operations on any centre)
MAY = {
    "cell": {"overview", "history", "request", "designate", "consultant", "contacts", "access", "audit",
             "notify-test"},
    "admin-a": {"overview", "history", "contacts", "access", "grant", "archived", "restore", "audit", "notify-test"},
    "cons-b": {"overview", "history", "contacts", "access", "grant", "archived", "restore", "audit", "notify-test"},
}
OWN_CENTRE = {"cell": CENTRE_A, "admin-a": CENTRE_A, "cons-b": CENTRE_B}


def _outcome(fn) -> tuple[str, str]:
    try:
        fn()
    except AdminNotFound as exc:
        # "no archived document ..." is the operation's own answer, past the policy
        return ("hidden" if exc.message.startswith("no centre ") else "allowed"), exc.message
    except AdminForbidden as exc:
        return "forbidden", exc.message
    except (AdminConflict, AdminError) as exc:  # past the policy: the operation itself refused
        return "allowed", exc.message
    return "allowed", ""


@pytest.mark.parametrize("who", ["cell", "admin-a", "cons-b"])
@pytest.mark.parametrize("op", list(OPS))
def test_core_delegation_matrix(gw, who, op):
    admin = _admin(gw, who)
    own = OWN_CENTRE[who]
    other = CENTRE_B if own == CENTRE_A else CENTRE_A
    kind, _ = _outcome(lambda: OPS[op](admin, own))
    assert kind == ("allowed" if op in MAY[who] else "forbidden"), (who, op, own)
    # another centre, a forged id and a missing centre
    answers = {c: _outcome(lambda c=c: OPS[op](admin, c)) for c in (other, "abc", "0212345678", MISSING)}
    if who == "cell":
        expected = "allowed" if op in MAY["cell"] else "forbidden"
        assert answers[other][0] == expected
        assert answers["abc"][0] == "hidden"  # a malformed id names nothing
        assert answers[MISSING][0] == ("hidden" if expected == "allowed" else "forbidden")
    else:
        # a local administrator learns nothing of other centres: the same answer as for a centre that does not exist
        assert {k for k, _ in answers.values()} == {"hidden"}, answers
        assert {m.replace(c, "<id>") for c, (_, m) in answers.items()} == {"no centre <id>"}


def test_refusals_are_on_the_record(gw):
    admin = _admin(gw, "admin-a")
    with pytest.raises(AdminNotFound):
        admin.grant("target", CENTRE_B)
    [event] = gw.audit("admin-grant", limit=1)
    assert event.outcome == "denied" and event.actor == "admin-a" and event.institution_id == CENTRE_B
    assert gw.repo.grants_of  # nothing granted:
    with gw.repo.read() as c:
        assert [g.institution_id for g in gw.repo.grants_of(c, gw.repo.account_by_name(c, "target").id)] == []


def test_revoked_and_disabled_administrators_lose_their_powers(gw):
    former = _admin(gw, "former")
    assert former.principal.administered() == frozenset()
    with pytest.raises(AdminNotFound):
        former.access(CENTRE_B)
    from storage.errors import AuthenticationFailed
    with pytest.raises(AuthenticationFailed):
        _admin(gw, "gone")


def test_the_consultant_acts_only_while_no_local_admin_is_designated(gw):
    assert _admin(gw, "cons-b").principal.administered() == frozenset({CENTRE_B})
    gw.admin.set_local_admin(CENTRE_B, "former")
    try:
        assert _admin(gw, "cons-b").principal.administered() == frozenset()
        assert gw.admin.centre_overview(CENTRE_B)["acting_consultant"] is False
    finally:
        gw.admin.unset_local_admin(CENTRE_B, "former")
    assert gw.admin.centre_overview(CENTRE_B)["acting_consultant"] is True


def test_local_admins_cannot_grant_write_access(gw):
    with pytest.raises(AdminForbidden, match="operator only"):
        _admin(gw, "admin-a").grant("target", CENTRE_A, can_write=True)


def test_a_grant_stops_at_its_end_date_and_housekeeping_records_it(gw):
    admin = _admin(gw, "admin-a")
    admin.grant("target", CENTRE_A, until=(utcnow() + timedelta(days=2)).date().isoformat())
    mailbox = gw.services.mailbox
    with gw.repo.read() as c:
        target = gw.repo.account_by_name(c, "target").id
    assert CENTRE_A in {g.institution_id for g in mailbox.load_principal(target, "t").grants}
    # the end passes (moved into the past in the database: the clock is not ours to move)
    from storage.models import Grant
    with gw.repo.write() as c:
        c.execute(Grant.__table__.update().where(Grant.__table__.c.account_id == target)
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert CENTRE_A not in {g.institution_id for g in mailbox.load_principal(target, "t").grants}
    assert gw.services.administration(actor="system:housekeeping").expire_grants() == 1
    [event] = gw.audit("grant-expire", limit=1)
    assert event.institution_id == CENTRE_A and event.detail == "account=target"
    assert admin.access(CENTRE_A) and "target" not in [g.name for g in admin.access(CENTRE_A)]


def test_transitions_record_who_when_and_the_reference(gw):
    cell = _admin(gw, "cell")
    with pytest.raises(AdminError, match="a reference is required"):
        cell.transition(CENTRE_PAPER, "request", "   ")
    with pytest.raises(AdminConflict, match="has not asked to switch over yet"):
        cell.transition(CENTRE_PAPER, "activate", "forms")
    cell.transition(CENTRE_PAPER, "request", "letter 2026/117") if \
        gw.admin.centre(CENTRE_PAPER).status == "paper" else None
    history = cell.history(CENTRE_PAPER)
    assert history[-1].to_status == "requested" and history[-1].actor == "cell"
    assert history[-1].reference in ("letter 2026/117", "matrix")
    row = gw.admin.centre(CENTRE_PAPER)
    assert row.status_changed_by == "cell" and row.status_reference == history[-1].reference


# -- a directory person: the slapd login, and an "admin" group making them a centre's administrator --------------
def test_directory_admin_group_and_strong_login(tmp_path, slapd):  # noqa: F811
    slapd.ensure_running()
    env = gateway_env(slapd, INSTPAGES_LDAP_CACHE_SECONDS="0")
    g = start_gateway(tmp_path / "var", env=env)
    try:
        g.admin.add_institution(CENTRE_A, "A", "active")
        g.admin.add_institution(CENTRE_B, "B", "active")
        g.admin.add_account("alice", "staff", ldap=True, nrn=ALICE_NRN)
        card = dict(g.admin.issue_token_card("alice"))
        group = slapd.add_group(f"ocmw-{CENTRE_B}-admin", [slapd.user_dn("alice")])
        mailbox = g.services.mailbox
        # over HTTPS, as a script would: the directory proves the password, the token card the second factor
        from tests.gateway.test_api import call
        number = call(g.dav_port, "GET", "/session/challenge?username=alice").json["number"]
        login = call(g.dav_port, "POST", "/session", {"username": "alice", "password": PASSWORDS["alice"],
                                                      "number": number, "code": card[number]})
        assert login.status == 201, login.raw
        token = login.json["token"]
        me = call(g.dav_port, "GET", "/me", token=token).json
        assert me["administers"] == [CENTRE_B]
        assert [i["id"] for i in call(g.dav_port, "GET", "/institutions", token=token).json] == [CENTRE_B]
        assert call(g.dav_port, "GET", f"/institutions/{CENTRE_A}/access", token=token).status == 404
        assert call(g.dav_port, "GET", f"/institutions/{CENTRE_B}/access", token=token).status == 200
        with g.repo.read() as c:
            alice_id = g.repo.account_by_name(c, "alice").id
        # a wrong password from the directory is a failed login, recorded
        from storage.errors import AuthenticationFailed
        number = mailbox.token_challenge("alice")
        with pytest.raises(AuthenticationFailed):
            mailbox.login(TokenCredentials("alice", "wrong-password", number, card.get(number, "")), protocol="web",
                          source="127.0.0.1")
        # out of the group: no longer an administrator of B at the next principal load
        slapd.remove_member(group, slapd.user_dn("alice"))
        assert mailbox.load_principal(alice_id, "web").administered() == frozenset()
        assert call(g.dav_port, "GET", f"/institutions/{CENTRE_B}/access", token=token).status == 404
    finally:
        g.stop()
        g.services.close()
