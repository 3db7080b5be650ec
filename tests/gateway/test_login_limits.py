"""Where from, and how often (issue 4, parts 6 and 7), against real gateways with the second factor required:

- source networks per account and per centre, checked on the connection's peer address before any password
  (proved by counting the password and code verifications the gateway makes: none); a person with grants on
  several centres sees only those whose ranges admit the source; ``X-Forwarded-For`` names the client for
  WebDAV only when the connection comes from a trusted proxy, read right to left;
- brute force: failed logins are answered at once; the account name then waits base * 2^(n-1) before it is
  looked at again (attempts meanwhile: refused at once with Retry-After), then the name is banned (its right
  credentials are refused too, from anywhere; the address is not, for one name) and after ``ban_seconds``
  access works again; an unknown name and a wrong password get the same answer in comparable time; every
  failure is on the record with its reason, which the client never sees. Keys, other people, many names from
  one address and the ban commands: tests/gateway/test_throttle.py.
"""
from __future__ import annotations

import base64
import http.client
import ssl
import statistics
import time

import asyncssh
import pytest

import auth.authenticator
import auth.secondfactor
from tests.conftest import CENTRE_A, CENTRE_B, keygen, start_gateway
from tests.gateway.test_api import call
from tests.people import (GENERIC_SSH_REFUSAL, challenge_row, curl, kbd_login, logins, openssh_token_sftp, run,
                          wait_logins)

BASE_ENV = {
    "INSTPAGES_AUTH_SECOND_FACTOR": "required",
    "INSTPAGES_AUTH_TOKEN_CODES": "4",  # the minimum: each code is an argon2 hash
}
NET = "10.9.0.0/16"
INSIDE = "10.9.1.2"
OUTSIDE = "198.51.100.7"
PW = {"net-jan": "net-jan-passw0rd", "plain-eva": "plain-eva-passw0rd"}


# -- helpers ----------------------------------------------------------------------------------------------------
class Answer:
    def __init__(self, status: int, headers: dict, body: bytes, elapsed: float):
        self.status, self.headers, self.body, self.elapsed = status, headers, body, elapsed

    def __repr__(self):
        return f"Answer({self.status}, {self.body[:80]!r}, {self.elapsed:.3f}s)"


def dav_get(gw, user: str, secret: str, *, xff: str | None = None, path: str = "/") -> Answer:
    """GET with Basic credentials over a new TLS connection (server certificate checked); timed end to end."""
    ctx = ssl.create_default_context(cafile=str(gw.config.tls_cert_path))
    conn = http.client.HTTPSConnection("127.0.0.1", gw.dav_port, context=ctx, timeout=30)
    headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}
    if xff is not None:
        headers["X-Forwarded-For"] = xff
    try:
        t0 = time.perf_counter()
        conn.request("GET", "/dav" + path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        elapsed = time.perf_counter() - t0
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, body, elapsed)
    finally:
        conn.close()


class VerificationCounter:
    """Counts the secret verifications the (in-process) gateway makes: account passwords, token codes and device
    passwords all go through these two module functions."""

    def __init__(self, monkeypatch):
        self.calls = 0
        for module in (auth.authenticator, auth.secondfactor):
            original = module._verify

            def counting(*a, _original=original, **kw):
                self.calls += 1
                return _original(*a, **kw)

            monkeypatch.setattr(module, "_verify", counting)


def sftp_names(p) -> list[str]:
    return sorted(ln.strip().strip("/") for ln in p.stdout.splitlines() if ln.strip() and not ln.startswith("sftp>"))


# -- the network gateway ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """Second factor required, no delay, no ban; 127.0.0.1 is a trusted proxy (X-Forwarded-For believed)."""
    d = tmp_path_factory.mktemp("limits-net")
    g = start_gateway(d / "var", env=dict(BASE_ENV, INSTPAGES_AUTH_FAILURE_DELAY_BASE="0",
                                          INSTPAGES_AUTH_BAN_AFTER="100000",
                                          INSTPAGES_AUTH_TRUSTED_PROXIES="127.0.0.1"))
    a = g.admin
    a.add_institution(CENTRE_A, "OCMW Aalst-test", "active")
    a.add_institution(CENTRE_B, "CPAS de Bstad", "active")
    for name, role, centre in (("arch-a", "archiver", CENTRE_A), ("arch-b", "archiver", CENTRE_B)):
        g.keys[name] = keygen(d / name)
        a.add_account(name, role, centre, [g.keys[name].with_suffix(".pub").read_text()])
    g.keys["staff-ab"] = keygen(d / "staff-ab")
    a.add_account("staff-ab", "staff", ssh_keys=[g.keys["staff-ab"].with_suffix(".pub").read_text()], allow_keys=True)
    a.grant("staff-ab", CENTRE_A)
    a.grant("staff-ab", CENTRE_B)
    g.keys["net-jan"] = keygen(d / "net-jan")
    a.add_account("net-jan", "staff", ssh_keys=[g.keys["net-jan"].with_suffix(".pub").read_text()],
                  password=PW["net-jan"], allow_keys=True, networks=NET)
    a.grant("net-jan", CENTRE_A)
    g.net_jan_card = a.issue_token_card("net-jan")
    a.add_account("plain-eva", "staff", password=PW["plain-eva"])
    a.grant("plain-eva", CENTRE_A)
    yield g
    g.stop()
    g.services.close()


# -- source networks -------------------------------------------------------------------------------------------
def test_an_account_bound_to_a_range_is_refused_before_any_password_is_checked(net, monkeypatch, tmp_path):
    counter = VerificationCounter(monkeypatch)
    # the right password and the right code, from 127.0.0.1: refused, and neither was looked at
    s = openssh_token_sftp(net, "net-jan", PW["net-jan"], net.net_jan_card, tmp_path / "kbd")
    assert s.rc == 255, s
    assert GENERIC_SSH_REFUSAL in s.stderr and "network" not in s.stderr and "10.9." not in s.stderr
    assert s.numbers == [], f"the server asked for a token code, so it went on past the source check: {s.prompts}"
    # its own (allowed) key: refused as well
    p = net.sftp("net-jan", "ls /\n")
    assert p.returncode == 255, p.stderr

    async def with_key():
        async with net.connect("net-jan") as conn:
            return conn

    with pytest.raises(asyncssh.PermissionDenied):
        run(with_key())
    assert counter.calls == 0, "a password or code was verified for a connection from outside the account's networks"
    assert challenge_row(net, "net-jan") is None  # no code was even drawn

    failed = wait_logins(net, "net-jan", "failed", count=3)
    assert len(failed) >= 3 and all("source address 127.0.0.1 is outside the account's networks" in e.detail
                                    for e in failed), [e.detail for e in failed]
    assert all(e.source == "127.0.0.1" and e.protocol == "sftp" for e in failed)
    assert not logins(net, "net-jan", "ok")

    # control: once its ranges include the loopback, the same answers log in (and are verified)
    net.admin.set_account_networks("net-jan", f"{NET}, 127.0.0.0/8")
    try:
        s = openssh_token_sftp(net, "net-jan", PW["net-jan"], net.net_jan_card, tmp_path / "kbd")
        assert s.rc == 0, s
        assert counter.calls >= 2  # the password, then the code
        assert sftp_names(s) == [CENTRE_A]
    finally:
        net.admin.set_account_networks("net-jan", NET)


def test_a_centre_bound_to_a_range_refuses_its_archiver_from_elsewhere(net):
    assert net.sftp("arch-a", "ls /\n").returncode == 0
    net.admin.set_institution_networks(CENTRE_A, NET)
    try:
        p = net.sftp("arch-a", f"ls /{CENTRE_A}\n")
        assert p.returncode == 255 and GENERIC_SSH_REFUSAL in p.stderr, p
        failed = wait_logins(net, "arch-a", "failed")
        assert failed and "source address 127.0.0.1 is outside the account's networks" in failed[0].detail
        # the other centre's archiver is not concerned
        p = net.sftp("arch-b", "ls /\n")
        assert p.returncode == 0, p.stderr
    finally:
        net.admin.set_institution_networks(CENTRE_A, "")
    assert net.sftp("arch-a", "ls /\n").returncode == 0


def test_staff_with_two_centres_sees_only_the_centre_whose_range_admits_the_source(net):
    """staff-ab has grants on A and B; A is bound to 10.9.0.0/16, B to nothing (any source). From inside A's
    range both centres show; from 127.0.0.1 only B does -- the login itself must not be refused, since B admits
    any source (auth/networks.py: "must connect from the ranges of at least one of its centres")."""
    _, secret = net.admin.create_device_password("staff-ab", "drive")
    net.admin.set_institution_networks(CENTRE_A, NET)
    try:
        inside = curl(net, "/", user="staff-ab", secret=secret, headers=(f"X-Forwarded-For: {INSIDE}",))
        assert inside.code == 200 and CENTRE_A in inside.body and CENTRE_B in inside.body, inside

        outside = curl(net, "/", user="staff-ab", secret=secret)
        assert outside.code == 200, (
            f"staff-ab is refused from 127.0.0.1 although centre B has no ranges: {outside}; audit: "
            f"{[e.detail for e in logins(net, 'staff-ab', 'failed')[:1]]}")
        assert CENTRE_B in outside.body and CENTRE_A not in outside.body, outside
        p = net.sftp("staff-ab", "ls -1 /\n")
        assert p.returncode == 0, p.stderr
        assert sftp_names(p) == [CENTRE_B]
        p = net.sftp("staff-ab", f"ls /{CENTRE_A}\n")
        assert "not found" in p.stderr.lower() or p.returncode != 0, p
    finally:
        net.admin.set_institution_networks(CENTRE_A, "")


def test_x_forwarded_for_names_the_client_only_from_a_trusted_proxy(net, make_gateway):
    net.admin.add_account("xff-di", "staff", password="xff-di-passw0rd", networks=NET)
    net.admin.grant("xff-di", CENTRE_A)
    _, secret = net.admin.create_device_password("xff-di", "drive")

    r = curl(net, "/", user="xff-di", secret=secret, headers=(f"X-Forwarded-For: {INSIDE}",))
    assert r.code == 200 and CENTRE_A in r.body, r
    assert logins(net, "xff-di", "ok")[0].source == INSIDE
    # the proxy appends the address it saw: read from the right, the first one that is not a trusted proxy
    r = curl(net, "/", user="xff-di", secret=secret, headers=(f"X-Forwarded-For: {INSIDE}, 127.0.0.1",))
    assert r.code == 200, r
    r = curl(net, "/", user="xff-di", secret=secret, headers=(f"X-Forwarded-For: {INSIDE}, {OUTSIDE}",))
    assert r.code == 401, r  # the client wrote INSIDE itself; the proxy saw OUTSIDE
    assert f"source address {OUTSIDE} is outside" in logins(net, "xff-di", "failed")[0].detail
    r = curl(net, "/", user="xff-di", secret=secret)
    assert r.code == 401, r
    assert "source address 127.0.0.1 is outside" in logins(net, "xff-di", "failed")[0].detail

    # a gateway without trusted proxies ignores the header: the peer address is the source
    g = make_gateway(populated=False, env=dict(BASE_ENV, INSTPAGES_AUTH_FAILURE_DELAY_BASE="0"))
    g.admin.add_institution(CENTRE_A, "OCMW Aalst-test", "active")
    g.admin.add_account("xff-di", "staff", password="xff-di-passw0rd", networks=NET)
    g.admin.grant("xff-di", CENTRE_A)
    _, secret2 = g.admin.create_device_password("xff-di", "drive")
    r = curl(g, "/", user="xff-di", secret=secret2, headers=(f"X-Forwarded-For: {INSIDE}",))
    assert r.code == 401, r
    failed = logins(g, "xff-di", "failed")
    assert failed[0].source == "127.0.0.1" and "source address 127.0.0.1 is outside" in failed[0].detail
    assert not logins(g, "xff-di", "ok")


# -- the same answer for everyone ------------------------------------------------------------------------------
def test_unknown_name_and_wrong_password_get_the_same_answer_in_comparable_time(net):
    cases = {
        "unknown name": ("nobody-at-all", "some-guessed-passw0rd"),
        "wrong password": ("plain-eva", "not-eva-s-passw0rd"),
        "right password, no second factor": ("plain-eva", PW["plain-eva"]),
    }
    answers: dict[str, list[Answer]] = {k: [] for k in cases}
    for _ in range(4):  # interleaved, so that load changes hit every case alike
        for k, (user, pw) in cases.items():
            answers[k].append(dav_get(net, user, pw))
    shapes = {(a.status, a.body, a.headers.get("www-authenticate"), a.headers.get("content-type"))
              for v in answers.values() for a in v}
    assert len(shapes) == 1, shapes
    status, body, _, _ = shapes.pop()
    assert status == 401 and b"password" not in body.lower() and b"unknown" not in body.lower(), body
    medians = {k: statistics.median(a.elapsed for a in v) for k, v in answers.items()}
    assert max(medians.values()) < 3 * min(medians.values()), medians

    # on the record, with the precise reason (server side only)
    details = [e.detail for e in logins(net, "nobody-at-all", "failed")]
    assert len(details) == 4 and all("unknown account" in d for d in details), details
    details = [e.detail for e in logins(net, "plain-eva", "failed")]
    assert sum("wrong password" in d for d in details) == 4
    assert sum("password is not enough for a staff account over webdav" in d for d in details) == 4

    # over SFTP: an unknown name is asked a code number too (always the same one), and refused alike
    timings: dict[str, list[float]] = {"unknown": [], "wrong": []}
    numbers = []
    for _ in range(3):
        for k, user in (("unknown", "nobody-at-all"), ("wrong", "plain-eva")):
            t0 = time.perf_counter()
            client, res = run(kbd_login(net, user, "a-wrong-passw0rd", {}))
            timings[k].append(time.perf_counter() - t0)
            assert isinstance(res, asyncssh.PermissionDenied), res
            if k == "unknown":
                assert client.prompts[0] == "Password: " and len(client.numbers) == 1, client.prompts
                numbers.append(client.numbers[0])
    assert len(set(numbers)) == 1, numbers
    m = {k: statistics.median(v) for k, v in timings.items()}
    assert max(m.values()) < 3 * min(m.values()), m


# -- brute force -----------------------------------------------------------------------------------------------
BAN_SECONDS = 6  # small, but well above an argon2 hash on a loaded machine
BF_ENV = dict(BASE_ENV, INSTPAGES_AUTH_FAILURE_DELAY_BASE="0.5", INSTPAGES_AUTH_FAILURE_DELAY_MAX="2",
              INSTPAGES_AUTH_BAN_AFTER="5", INSTPAGES_AUTH_BAN_SECONDS=str(BAN_SECONDS),
              INSTPAGES_AUTH_FAILURE_WINDOW_SECONDS="60", INSTPAGES_AUTH_TRUSTED_PROXIES="127.0.0.1")


def test_failures_delay_then_ban_the_name_until_the_ban_runs_out(make_gateway):
    """Sources are told apart with X-Forwarded-For from the trusted proxy 127.0.0.1 (only loopback is used).
    Failures are answered at once; the name then waits base * 2^(n-1) before it is looked at again (an attempt
    before that: refused at once, told when to come back), and the 5th failure bans the name (not the address:
    one known name scores once there) for ban_seconds. (tests/gateway/test_throttle.py: keys, other people,
    many names from one address, the CLI.)"""
    g = make_gateway(populated=False, env=BF_ENV)
    a = g.admin
    a.add_institution(CENTRE_A, "OCMW Aalst-test", "active")
    a.add_account("bf-jan", "staff", password="bf-jan-passw0rd")
    a.add_account("bf-piet", "staff")
    for name in ("bf-jan", "bf-piet"):
        a.grant(name, CENTRE_A)
    _, jan_secret = a.create_device_password("bf-jan", "drive")
    _, piet_secret = a.create_device_password("bf-piet", "drive")
    attacker, elsewhere = "192.0.2.10", "192.0.2.20"

    waits = []
    for i in range(5):
        answer = dav_get(g, "bf-jan", f"guess-{i}-passw0rd", xff=attacker)
        assert answer.status == 401 and "retry-after" not in answer.headers, answer  # looked at, answered at once
        again = dav_get(g, "bf-jan", f"guess-{i}-passw0rd", xff=attacker)  # at once: not looked at
        assert again.status == 401 and again.body != answer.body, again
        waits.append(int(again.headers["retry-after"]))
        if i < 4:
            time.sleep(waits[-1])
    # 0.5, 1, 2, 2 (capped) seconds, rounded up; then the ban
    assert waits[:4] == [1, 1, 2, 2] and 3 <= waits[4] <= BAN_SECONDS, waits
    with g.repo.read() as c:
        row = g.repo.failure(c, "account:bf-jan")
        assert row.count == 5 and row.banned_until > time.time(), row
        assert g.repo.failure(c, f"source:{attacker}").count == 1
    failed = logins(g, "bf-jan", "failed")
    assert sum("wrong password" in e.detail for e in failed) == 5
    assert sum("must wait" in e.detail or "is banned" in e.detail for e in failed) == 5

    # the name is banned wherever it comes from: its right device password is refused, at once
    r = dav_get(g, "bf-jan", jan_secret, xff=elsewhere)
    assert r.status == 401 and int(r.headers["retry-after"]) >= 1, r
    assert "account:bf-jan is banned" in logins(g, "bf-jan", "failed")[0].detail
    # the address is not: another account's right device password from it is fine
    r = dav_get(g, "bf-piet", piet_secret, xff=attacker)
    assert r.status == 200 and CENTRE_A.encode() in r.body, r

    # after ban_seconds (counted from the 5th failure, not extended since) the name works again
    time.sleep(max(0.0, row.banned_until - time.time()) + 0.2)
    r = dav_get(g, "bf-jan", jan_secret, xff=elsewhere)
    assert r.status == 200, r
    # a device password proves nothing about the password that was guessed: the count stays; a login with the
    # password (and the token card) wipes it
    with g.repo.read() as c:
        assert g.repo.failure(c, "account:bf-jan").count == 5
    card = dict(a.issue_token_card("bf-jan"))
    number = call(g.dav_port, "GET", "/session/challenge?username=bf-jan").json["number"]
    r = call(g.dav_port, "POST", "/session", {"username": "bf-jan", "password": "bf-jan-passw0rd", "number": number,
                                              "code": card[number]})
    assert r.status == 201, r.raw
    with g.repo.read() as c:
        assert g.repo.failure(c, "account:bf-jan") is None
