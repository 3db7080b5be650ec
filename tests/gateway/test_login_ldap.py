"""Directory people through the whole gateway, against a real slapd: the password from LDAP plus the token
card over SFTP, centres from LDAP groups, a disabled user losing access within the cache TTL, and an LDAP
server that is down meaning "no login", never a login."""
from __future__ import annotations

import asyncio
import time

import asyncssh
import pytest

from tests.conftest import CENTRE_A, CENTRE_B, start_gateway
from tests.ldapserver import ALICE_NRN, PASSWORDS, gateway_env, slapd  # noqa: F401


@pytest.fixture(scope="module")
def gw(tmp_path_factory, slapd):  # noqa: F811
    slapd.ensure_running()
    env = gateway_env(slapd, INSTPAGES_LDAP_CACHE_SECONDS="1", INSTPAGES_LDAP_TIMEOUT="2",
                      INSTPAGES_LDAP_DISABLED_FILTER="(employeeType=disabled)")
    g = start_gateway(tmp_path_factory.mktemp("ldapgw") / "var", env=env)
    g.admin.add_institution(CENTRE_A, "A", "active")
    g.admin.add_institution(CENTRE_B, "B", "active")
    g.admin.add_account("alice", "staff", ldap=True, nrn=ALICE_NRN)
    g.card = dict(g.admin.issue_token_card("alice"))
    yield g
    g.stop()
    g.services.close()


@pytest.fixture(autouse=True)
def directory_restored(slapd):  # noqa: F811
    yield
    slapd.ensure_running()
    slapd.set_disabled("alice", False)


class KbdClient(asyncssh.SSHClient):
    def __init__(self, password, card):
        self.password, self.card, self.asked, self._tried = password, card, [], False

    def kbdint_auth_requested(self):
        if self._tried:
            return None
        self._tried = True
        return ""

    def kbdint_challenge_received(self, name, instructions, lang, prompts):
        answers = []
        for prompt, _echo in prompts:
            self.asked.append(prompt)
            if prompt.startswith("Password"):
                answers.append(self.password)
            else:
                number = int(prompt.split("Code number ")[1].split()[0])
                answers.append(self.card.get(number, "000000"))
        return answers


def connect(gw, user, password, card):
    client = KbdClient(password, card)
    return client, asyncssh.connect("127.0.0.1", gw.port, username=user, known_hosts=None, client_keys=None,
                                    agent_path=None, preferred_auth="keyboard-interactive",
                                    client_factory=lambda: client)


def test_directory_password_plus_token_and_group_centres(gw):
    async def run():
        client, conn = connect(gw, "alice", PASSWORDS["alice"], gw.card)
        async with conn as c:
            async with c.start_sftp_client() as sftp:
                return client.asked, sorted(await sftp.listdir("/"))
    asked, names = asyncio.run(run())
    assert asked[0] == "Password: " and asked[1].startswith("Code number ") and asked[1].endswith(" of your token: ")
    # no grant in the gateway's own database: the centres come from the LDAP groups
    assert [n for n in names if n not in (".", "..")] == sorted([CENTRE_A, CENTRE_B])
    ok = [e for e in gw.audit(action="login") if e.actor == "alice" and e.outcome == "ok"]
    assert ok and ok[0].detail == "method=password+token"


@pytest.mark.parametrize("user,password", [("alice", "wrong-password"), ("*", PASSWORDS["alice"]),
                                           ("alice)(uid=*", PASSWORDS["alice"]), ("carol", PASSWORDS["carol"])])
def test_refused(gw, user, password):
    async def run():
        _, conn = connect(gw, user, password, gw.card)
        async with conn:
            pass
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(run())


def test_disabled_in_the_directory_loses_access_within_the_ttl(gw, slapd, monkeypatch):  # noqa: F811
    # sessions re-read who they are this often (30 s by default); the directory cache TTL is 1 s here
    monkeypatch.setattr(gw.services.mailbox, "PRINCIPAL_TTL", 0.5, raising=False)

    async def run():
        _, conn = connect(gw, "alice", PASSWORDS["alice"], gw.card)
        async with conn as c:
            async with c.start_sftp_client() as sftp:
                assert CENTRE_A in await sftp.listdir("/")
                slapd.set_disabled("alice", True)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    try:
                        await sftp.listdir("/")
                    except asyncssh.SFTPError as exc:
                        return exc
                    await asyncio.sleep(0.3)
        return None
    exc = asyncio.run(run())
    assert isinstance(exc, asyncssh.SFTPPermissionDenied)


def test_directory_down_is_never_a_login(gw, slapd):  # noqa: F811
    slapd.stop()
    try:
        async def run():
            _, conn = connect(gw, "alice", PASSWORDS["alice"], gw.card)
            async with conn:
                pass
        started = time.monotonic()
        with pytest.raises(asyncssh.PermissionDenied):
            asyncio.run(run())
        assert time.monotonic() - started < 20
        failed = [e for e in gw.audit(action="login") if e.actor == "alice" and e.outcome == "failed"]
        assert failed and "authentication service unavailable" in failed[0].detail
    finally:
        slapd.start()


# -- the canonical account: a directory name in another case is the same person, with her ranges (issue 9) ------
def sftp_login(gw, user):
    """keyboard-interactive (directory password + the token code asked) with asyncssh: the names listed at /, or
    the PermissionDenied that refused the login."""
    async def run():
        _, conn = connect(gw, user, PASSWORDS["alice"], gw.card)
        try:
            async with conn as c:
                async with c.start_sftp_client() as sftp:
                    return sorted(n for n in await sftp.listdir("/") if n not in (".", ".."))
        except asyncssh.PermissionDenied as exc:
            return exc
    return asyncio.run(run())


def api_login(gw, user):
    """POST /api/session with the directory password and the code asked (a real HTTPS client): the status."""
    from tests.gateway.test_api import call

    number = call(gw.dav_port, "GET", f"/session/challenge?username={user}").json["number"]
    return call(gw.dav_port, "POST", "/session", {"username": user, "password": PASSWORDS["alice"],
                                                  "number": number, "code": gw.card[number]}).status


def refusals_since(gw, mark: int) -> list:
    return [e for e in gw.audit(action="login", limit=100) if e.id > mark and e.outcome == "failed"]


def newest_id(gw) -> int:
    return gw.audit(limit=1)[0].id


def test_a_directory_name_in_another_case_is_alice_and_her_range_applies(gw):
    gw.admin.set_account_networks("alice", "10.9.0.0/16")
    try:
        mark = newest_id(gw)
        for user in ("ALICE", "Alice", "alice"):
            assert isinstance(sftp_login(gw, user), asyncssh.PermissionDenied), user
            assert api_login(gw, user) == 401, user
        events = refusals_since(gw, mark)
        assert len(events) == 6, [(e.actor, e.detail) for e in events]
        assert all("source address 127.0.0.1 is outside the account's networks" in e.detail for e in events)
        assert {e.protocol for e in events} == {"sftp", "api"}
        gw.admin.set_account_networks("alice", "10.9.0.0/16, 127.0.0.0/8")
        assert sftp_login(gw, "ALICE") == sorted([CENTRE_A, CENTRE_B])
        assert api_login(gw, "Alice") == 201
        ok = [e for e in gw.audit(action="login", limit=5) if e.outcome == "ok"]
        assert [e.actor for e in ok[:2]] == ["alice", "alice"]  # one account, whatever the spelling
        assert [a.name for a in gw.admin.accounts() if a.name.casefold() == "alice"] == ["alice"]
    finally:
        gw.admin.set_account_networks("alice", "")


def test_the_ranges_of_alices_directory_centres_apply_whatever_the_case_of_her_name(gw):
    """Alice's centres come from directory groups only (A staff, B remove): both bound to a range she is not in,
    she may not log in at all; one of them bound, she logs in and sees the other."""
    gw.admin.set_institution_networks(CENTRE_A, "10.9.0.0/16")
    gw.admin.set_institution_networks(CENTRE_B, "10.9.0.0/16")
    try:
        mark = newest_id(gw)
        assert isinstance(sftp_login(gw, "ALICE"), asyncssh.PermissionDenied)
        assert api_login(gw, "Alice") == 401
        events = refusals_since(gw, mark)
        assert len(events) == 2 and all(e.actor == "alice" and "(those of its centres)" in e.detail
                                        for e in events), [(e.actor, e.detail) for e in events]
        gw.admin.set_institution_networks(CENTRE_B, "")
        assert sftp_login(gw, "ALICE") == [CENTRE_B]
    finally:
        gw.admin.set_institution_networks(CENTRE_A, "")
        gw.admin.set_institution_networks(CENTRE_B, "")


@pytest.fixture(scope="module")
def eid_gw(tmp_path_factory, slapd):  # noqa: F811
    """A directory gateway that also takes the eID (the test PKI's Citizen CA) as the second factor."""
    from tests.pki import EidPki

    d = tmp_path_factory.mktemp("ldap-eid")
    pki = EidPki(d / "pki")
    slapd.ensure_running()
    g = start_gateway(d / "var", env=gateway_env(slapd, INSTPAGES_WEBDAV_CLIENT_CA_FILE=str(pki.ca_bundle)))
    g.admin.add_institution(CENTRE_A, "A", "active")
    g.admin.add_institution(CENTRE_B, "B", "active")
    g.admin.add_account("alice", "staff", ldap=True, nrn=ALICE_NRN)
    g.alice_eid = pki.person("alice", "Alice", "Peeters", ALICE_NRN)
    yield g
    g.stop()
    g.services.close()


def test_alices_eid_and_password_under_another_spelling_do_not_escape_her_range(eid_gw):
    from tests.people import curl

    gw = eid_gw
    gw.admin.set_account_networks("alice", "10.9.0.0/16")
    try:
        mark = newest_id(gw)
        for user in ("ALICE", "Alice", "alice"):
            r = curl(gw, "/", user=user, secret=PASSWORDS["alice"], cert=gw.alice_eid)
            assert r.code == 401, (user, r)
        events = refusals_since(gw, mark)
        assert len(events) == 3 and all("outside the account's networks" in e.detail for e in events), \
            [(e.actor, e.detail) for e in events]
        gw.admin.set_account_networks("alice", "127.0.0.0/8")
        r = curl(gw, "/", user="ALICE", secret=PASSWORDS["alice"], cert=gw.alice_eid)
        assert r.code == 200 and CENTRE_A in r.body, r
        assert [e.actor for e in gw.audit(action="login", limit=1)] == ["alice"]
    finally:
        gw.admin.set_account_networks("alice", "")
