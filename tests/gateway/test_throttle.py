"""Failed logins on shared networks (issue 9, items 1 and 3), against real gateways with real clients: OpenSSH
``sftp`` and asyncssh for SFTP, HTTPS requests for WebDAV Basic, the REST API, the console and the account page,
curl with a pinned client certificate, and the ``instpages`` CLI as a subprocess.

Everything a centre does comes from one address here (127.0.0.1, the NAT of Publilink/VERA); other addresses are
told apart with X-Forwarded-For from the trusted proxy 127.0.0.1 (WebDAV and the web pages only).

- one person's wrong passwords ban that account name only: POD MI's uploader (an SSH key), the same person's
  SSH key and other people's passwords from the same address keep working, and attempts during the ban neither
  get in nor extend it; ``instpages ban list`` / ``ban lift`` see and end it, on the record;
- many names from one address (unknown names score most) ban the address for guessable logins only: keys and
  pinned certificates of machine accounts still log in; exempt networks never score;
- a failed web login is answered at once (no thread sleeps): while the name is in its delay, 429 +
  Retry-After (WebDAV: 401 + Retry-After), and a few failures cannot occupy every server thread.
"""
from __future__ import annotations

import getpass
import http.client
import re
import ssl
import subprocess
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import asyncssh
import pytest

from tests import pdfsamples
from tests.conftest import CENTRE_A, keygen
from tests.gateway.test_api import call
from tests.gateway.test_console import Client, csrf_of
from tests.gateway.test_login_limits import Answer, VerificationCounter, dav_get
from tests.machinecert import add_machine
from tests.people import kbd_login, logins, run, wait_logins, wrong_card
from tests.test_cli import after, before, ok
from tests.test_cli import run as run_cli

PW = "a-long-passw0rd-for-{}"
SHARED_ENV = {
    "INSTPAGES_AUTH_SECOND_FACTOR": "required",
    "INSTPAGES_AUTH_TOKEN_CODES": "4",  # the minimum: each code is an argon2 hash
    "INSTPAGES_AUTH_FAILURE_DELAY_BASE": "0.1",
    "INSTPAGES_AUTH_FAILURE_DELAY_MAX": "0.4",
    "INSTPAGES_AUTH_FAILURE_WINDOW_SECONDS": "600",
    "INSTPAGES_AUTH_BAN_AFTER": "5",
    "INSTPAGES_AUTH_BAN_SECONDS": "120",  # longer than any test: bans end here by `instpages ban lift`
    "INSTPAGES_AUTH_SOURCE_BAN_SCORE": "12",
    "INSTPAGES_AUTH_SOURCE_SCORE_UNKNOWN_NAME": "3",
    "INSTPAGES_AUTH_SOURCE_SCORE_KNOWN_NAME": "1",
    "INSTPAGES_AUTH_SOURCE_EXEMPT_NETWORKS": "198.18.0.0/15",
    "INSTPAGES_AUTH_TRUSTED_PROXIES": "127.0.0.1",
}
EXEMPT = "198.18.3.4"


# -- helpers ----------------------------------------------------------------------------------------------------
def person(gw, name: str, tmp_path=None, *, key: bool = False) -> str:
    """A staff member of centre A with a password, a token card and a device password (returned); with an SSH
    key the administrator allowed, when ``key``."""
    keys = []
    if key:
        gw.keys[name] = keygen(tmp_path / name)
        keys = [gw.keys[name].with_suffix(".pub").read_text()]
    gw.admin.add_account(name, "staff", password=PW.format(name), ssh_keys=keys, allow_keys=key)
    gw.admin.grant(name, CENTRE_A)
    gw.__dict__.setdefault("cards", {})[name] = dict(gw.admin.issue_token_card(name))
    return gw.admin.create_device_password(name, "drive")[1]


def uploader(gw, tmp_path) -> None:
    gw.admin.add_institution(CENTRE_A, "OCMW Aalst-test", "active")
    gw.keys["podmi"] = keygen(tmp_path / "podmi")
    gw.admin.add_account("podmi", "uploader", ssh_keys=[gw.keys["podmi"].with_suffix(".pub").read_text()])


def retry_after(a) -> int | None:
    value = a.headers.get("retry-after")
    return int(value) if value is not None else None


def mistype(gw, user: str, attempts: int, *, xff: str | None = None) -> list[Answer]:
    """Someone typing wrong passwords into a drive mount: a short Retry-After (the name's delay) is waited out
    and the same attempt made again; a ban (a long one) is not."""
    answers = []
    for i in range(attempts):
        a = dav_get(gw, user, f"wrong-{i}-passw0rd", xff=xff)
        for _ in range(5):
            if retry_after(a) is None or retry_after(a) > 5:
                break
            time.sleep(retry_after(a))
            a = dav_get(gw, user, f"wrong-{i}-passw0rd", xff=xff)
        answers.append(a)
    return answers


def failure_row(gw, key: str):
    with gw.repo.read() as c:
        return gw.repo.failure(c, key)


def upload(gw, name: str, as_user: str = "podmi", tmp_path=None) -> subprocess.CompletedProcess:
    f = tmp_path / name
    f.write_bytes(pdfsamples.minimal_pdf(name))
    return gw.sftp(as_user, f"put {f} /{CENTRE_A}/{name}\n")


def token_login(gw, name: str, password: str | None = None):
    """The REST API's strong login (password + the card's code for the number asked), from 127.0.0.1."""
    number = call(gw.dav_port, "GET", f"/session/challenge?username={name}").json["number"]
    return call(gw.dav_port, "POST", "/session", {"username": name, "password": password or PW.format(name),
                                                  "number": number, "code": gw.cards[name][number]})


# -- item 1: one person's mistakes --------------------------------------------------------------------------------
def test_one_persons_wrong_passwords_ban_that_name_only_never_keys_or_other_people(make_gateway, tmp_path):
    g = make_gateway(populated=False, env=SHARED_ENV)
    uploader(g, tmp_path)
    jan_secret = person(g, "jan", tmp_path, key=True)
    piet_secret = person(g, "piet")

    # ten wrong passwords for jan from the shared address: five are looked at (each after the name's delay),
    # then the name is banned and the rest are refused at once, with a Retry-After of the ban
    answers = mistype(g, "jan", 10)
    assert [a.status for a in answers] == [401] * 10, answers
    assert [retry_after(a) for a in answers[:5]] == [None] * 5, answers
    assert all((retry_after(a) or 0) > 60 for a in answers[5:]), answers
    jan_row = failure_row(g, "account:jan")
    assert jan_row.count == 5 and jan_row.banned_until > time.time() + 60
    # the address only noted "a known name failed here" once: nowhere near a ban
    source = failure_row(g, "source:127.0.0.1")
    assert source.count == 1 and source.banned_until == 0

    # POD MI's uploader, with its key, from the same address: delivers
    p = upload(g, "maandstaat.pdf", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    # jan's own SSH key: a key is never refused because someone mistyped (a guesser is "someone else")
    p = g.sftp("jan", "ls -1 /\n")
    assert p.returncode == 0 and CENTRE_A in p.stdout, p.stderr
    # piet's device password and piet's token login from the same address: in
    r = dav_get(g, "piet", piet_secret)
    assert r.status == 200 and CENTRE_A.encode() in r.body, r
    assert token_login(g, "piet").status == 201

    # jan's own right device password and token login are refused during the ban, at once, and do not extend it
    for attempt in range(3):
        r = dav_get(g, "jan", jan_secret)
        assert r.status == 401 and (retry_after(r) or 0) > 60 and r.elapsed < 2, r
        a = token_login(g, "jan")
        assert a.status == 429 and int(a.headers["retry-after"]) > 60, a.raw
    shown = subprocess.run(["curl", "-sk", "-i", "-H", "Content-Type: application/json", "-d",
                            '{"username": "jan", "password": "x", "number": 1, "code": "0"}',
                            f"https://127.0.0.1:{g.dav_port}/api/session"], capture_output=True, text=True, timeout=30)
    assert shown.stdout.splitlines()[0] == "HTTP/1.1 429 Too Many Requests", shown.stdout[:200]
    assert tuple(failure_row(g, "account:jan")) == tuple(jan_row), "attempts during the ban changed it"
    failed = logins(g, "jan", "failed")
    assert sum("account:jan is banned" in e.detail for e in failed) == 5 + 7, [e.detail for e in failed[:8]]
    assert sum("wrong password" in e.detail for e in failed) == 5

    # the operator sees the ban and lifts it, both on the record
    listed = ok(after(g.data_dir, "ban", "list"))
    assert re.search(r"^account\s+jan\s+5\s+\S+ \S+\s+\S+ \S+$", listed, re.M), listed
    assert "127.0.0.1" not in listed
    assert "ban lifted" in ok(before(g.data_dir, "ban", "lift", "jan"))
    assert "jan" not in ok(after(g.data_dir, "ban", "list")).split()
    operator = "cli:" + getpass.getuser()
    lift = g.audit(action="ban-lift")
    assert lift and lift[0].actor == operator and "account jan: ban lifted" in lift[0].detail, lift
    assert [e.actor for e in g.audit(action="ban-list")] == [operator, operator]
    r = dav_get(g, "jan", jan_secret)
    assert r.status == 200, r
    assert failure_row(g, "account:jan") is None  # lifting forgot the count too


def test_sftp_password_guesses_ban_the_name_not_its_key(make_gateway, tmp_path, monkeypatch):
    g = make_gateway(populated=False, env=dict(SHARED_ENV, INSTPAGES_AUTH_BAN_AFTER="3"))
    uploader(g, tmp_path)
    person(g, "sam", tmp_path, key=True)
    card = g.cards["sam"]
    took = []
    for _ in range(3):  # the right password, a wrong code
        t0 = time.perf_counter()
        _, res = run(kbd_login(g, "sam", PW.format("sam"), wrong_card(card)))
        took.append(time.perf_counter() - t0)
        assert isinstance(res, asyncssh.PermissionDenied), res
    # SFTP keeps the delay by waiting in the event loop (no thread): base * 2^(n-1)
    assert all(t >= d for t, d in zip(took, (0.1, 0.2, 0.4))), took
    assert failure_row(g, "account:sam").banned_until > time.time()

    counter = VerificationCounter(monkeypatch)
    _, res = run(kbd_login(g, "sam", PW.format("sam"), card))  # everything right: banned, nothing looked at
    assert isinstance(res, asyncssh.PermissionDenied), res
    assert counter.calls == 0
    assert "account:sam is banned" in wait_logins(g, "sam", "failed", count=4)[0].detail
    # the same person's key, and the uploader's, from the same address
    p = g.sftp("sam", "ls -1 /\n")
    assert p.returncode == 0 and CENTRE_A in p.stdout, p.stderr
    assert upload(g, "lijst.pdf", tmp_path=tmp_path).returncode == 0


# -- item 1: many names from one address ---------------------------------------------------------------------------
def test_many_names_from_one_address_ban_it_for_passwords_not_for_machines(make_gateway, tmp_path):
    g = make_gateway(populated=False, env=SHARED_ENV)
    uploader(g, tmp_path)
    cert, key = add_machine(g, tmp_path, "podmi-dav")
    piet_secret = person(g, "piet")
    for name in ("eva", "kim", "lou"):
        person(g, name)

    # four names that are no account (3 points each) from the shared address: the address is banned
    answers = [dav_get(g, f"nobody-{i}", "some-guessed-passw0rd") for i in range(4)]
    assert [(a.status, retry_after(a)) for a in answers] == [(401, None)] * 4, answers
    assert failure_row(g, "source:127.0.0.1").banned_until > time.time() + 60
    r = dav_get(g, "nobody-5", "some-guessed-passw0rd")
    assert r.status == 401 and (retry_after(r) or 0) > 60, r
    assert "source:127.0.0.1 is banned" in logins(g, "nobody-5", "failed")[0].detail

    # guessable logins from it are refused, even right ones (this is what the address ban is for) ...
    r = dav_get(g, "piet", piet_secret)
    assert r.status == 401 and (retry_after(r) or 0) > 60, r
    assert token_login(g, "piet").status == 429
    # ... but machine accounts still deliver: an SSH key, and a pinned TLS client certificate
    p = upload(g, "by-key.pdf", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    (tmp_path / "by-cert.pdf").write_bytes(pdfsamples.minimal_pdf("by certificate"))
    r = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--cert", str(cert), "--key", str(key),
                        "-T", str(tmp_path / "by-cert.pdf"), f"{g.dav_url}/{CENTRE_A}/by-cert.pdf"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout == "201", (r.stdout, r.stderr)
    # another address is another matter
    r = dav_get(g, "piet", piet_secret, xff="192.0.2.50")
    assert r.status == 200, r

    # a known name failing again and again from one address scores once there; other known names once each
    mistype(g, "eva", 4, xff="192.0.2.61")
    assert failure_row(g, "source:192.0.2.61").count == 1
    mistype(g, "kim", 1, xff="192.0.2.61")
    mistype(g, "lou", 1, xff="192.0.2.61")
    assert failure_row(g, "source:192.0.2.61").count == 3

    # an exempt network (the Publilink/VERA gateways) is never scored nor banned as a source
    answers = [dav_get(g, f"nobody-x{i}", "some-guessed-passw0rd", xff=EXEMPT) for i in range(8)]
    assert [(a.status, retry_after(a)) for a in answers] == [(401, None)] * 8, answers
    assert failure_row(g, f"source:{EXEMPT}") is None
    assert failure_row(g, "account:nobody-x0").count == 1  # the names themselves are still counted
    assert dav_get(g, "piet", piet_secret, xff=EXEMPT).status == 200

    # the operator lifts the address's ban (the CLI reads the same configuration file as the server)
    config = tmp_path / "instpages.toml"
    config.write_text(f'data_dir = "{g.data_dir}"\n')
    listed = ok(run_cli("ban", "list", "--config", str(config)))
    assert re.search(r"^address\s+127\.0\.0\.1\s+12\s", listed, re.M), listed
    assert "192.0.2.61" not in listed  # counting, not banned
    assert re.search(r"^address\s+192\.0\.2\.61\s+3\s", ok(run_cli("ban", "list", "--all", "--config", str(config))),
                     re.M)
    assert "address 127.0.0.1: ban lifted" in ok(run_cli("ban", "lift", "127.0.0.1", "--config", str(config)))
    assert dav_get(g, "piet", piet_secret).status == 200
    assert "127.0.0.1" in g.audit(action="ban-lift")[0].detail
    r = run_cli("ban", "lift", "127.0.0.1", "--config", str(config))
    assert r.returncode == 1 and "no ban or failure count for 127.0.0.1" in r.stderr, r


# -- item 3: answered at once ------------------------------------------------------------------------------------
def _console_attempt(gw, name: str, password: str):
    """A console login (its CSRF token and cookie first), timed from the POST."""
    c = Client(gw)
    page = c.get("/console/login")
    t0 = time.perf_counter()
    r = c.post("/console/login", csrf=csrf_of(page.text), username=name, password=password, number="1",
               code="000000")
    return r.status, r.headers, time.perf_counter() - t0


def _account_page_attempt(gw, name: str, password: str):
    ctx = ssl._create_unverified_context()
    conn = http.client.HTTPSConnection("127.0.0.1", gw.dav_port, context=ctx, timeout=60)
    body = urllib.parse.urlencode({"username": name, "password": password, "number": "1", "code": "000000"})
    try:
        t0 = time.perf_counter()
        conn.request("POST", "/account/login", body=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, time.perf_counter() - t0
    finally:
        conn.close()


def _api_attempt(gw, name: str, password: str):
    t0 = time.perf_counter()
    a = call(gw.dav_port, "POST", "/session", {"username": name, "password": password, "number": 1,
                                               "code": "000000"})
    return a.status, a.headers, time.perf_counter() - t0


def _webdav_attempt(gw, name: str, password: str):
    a = dav_get(gw, name, password)
    return a.status, a.headers, a.elapsed


FRONT_ENDS = {"api": _api_attempt, "console": _console_attempt, "account page": _account_page_attempt,
              "webdav": _webdav_attempt}


def elsewhere(gw, name: str) -> None:
    """An account bound to another network: from 127.0.0.1 its logins fail before any hashing, and count. (The
    failures below cost no CPU, so that only waiting is measured, whatever the load of the machine.)"""
    gw.admin.add_account(name, "staff", password=PW.format(name), networks="10.9.0.0/16")
    gw.admin.grant(name, CENTRE_A)


def test_failed_web_logins_answer_at_once_and_hold_no_server_thread(make_gateway):
    """Two server threads and a 10 s delay after a failure: four failed logins at once (one per web front-end)
    must neither wait out the delay nor keep a harmless request waiting for a thread."""
    g = make_gateway(populated=False, env=dict(SHARED_ENV, INSTPAGES_WEBDAV_THREADS="2",
                                               INSTPAGES_AUTH_FAILURE_DELAY_BASE="10",
                                               INSTPAGES_AUTH_FAILURE_DELAY_MAX="10"))
    g.admin.add_institution(CENTRE_A, "OCMW Aalst-test", "active")
    jobs = [(fe, f"far-{fe[:3]}") for fe in FRONT_ENDS]
    for _, name in jobs:
        elsewhere(g, name)
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(FRONT_ENDS[fe], g, name, PW.format(name)) for fe, name in jobs]
        time.sleep(0.5)
        t0 = time.perf_counter()
        probe = call(g.dav_port, "GET", "/openapi.json")
        probe_took = time.perf_counter() - t0
        results = [f.result(timeout=120) for f in futures]
    for (fe, name), (status, headers, took) in zip(jobs, results):
        assert status == 401 and "retry-after" not in headers, (fe, name, status, headers)
        assert took < 3, f"{fe}: a failed login was answered after {took:.1f} s (the delay is 10 s)"
    assert probe.status == 200
    assert probe_took < 3, f"a harmless request waited {probe_took:.1f} s for a thread behind failed logins"
    for _, name in jobs:
        assert "outside the account's networks" in logins(g, name, "failed")[0].detail


@pytest.mark.parametrize("front_end", list(FRONT_ENDS))
def test_a_name_in_its_delay_is_refused_at_once_with_retry_after(make_gateway, front_end):
    g = make_gateway(populated=False, env=dict(SHARED_ENV, INSTPAGES_AUTH_FAILURE_DELAY_BASE="4",
                                               INSTPAGES_AUTH_FAILURE_DELAY_MAX="4"))
    g.admin.add_institution(CENTRE_A, "OCMW Aalst-test", "active")
    elsewhere(g, "ann")
    attempt = FRONT_ENDS[front_end]
    status, headers, took = attempt(g, "ann", PW.format("ann"))
    assert (status, headers.get("retry-after")) == (401, None) and took < 3, (status, headers, took)
    # at once again: the name is in its delay; nothing is looked at, the client is told when to come back
    status, headers, took = attempt(g, "ann", PW.format("ann"))
    expected = 401 if front_end == "webdav" else 429  # drive clients know 401; Retry-After says the rest
    assert status == expected and headers.get("retry-after") in ("3", "4") and took < 3, (status, headers, took)
    if front_end == "webdav":
        assert headers["www-authenticate"].startswith("Basic")
    assert "account:ann must wait" in logins(g, "ann", "failed")[0].detail
    # after Retry-After the name is looked at again
    time.sleep(int(headers["retry-after"]) + 0.2)
    status, headers, _ = attempt(g, "ann", PW.format("ann"))
    assert (status, headers.get("retry-after")) == (401, None), (status, headers)
    assert sum("outside the account's networks" in e.detail for e in logins(g, "ann", "failed")) == 2
