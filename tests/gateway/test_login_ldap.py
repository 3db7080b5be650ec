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
