"""The second factor must not be an oracle for the first (issue 9, item 4): over the REST API and over SFTP
keyboard-interactive, a login whose token code is wrong answers the same, in the same time, whether the password
was right or wrong (or the name unknown). Real logins, timed from the client: many attempts per case, the cases
interleaved in a new random order each round so that the load of the (shared, 2-core) machine falls on each alike.

The bound: the lower quartiles differ by less than 30% of the smallest, and by less than half of one password hash
verification on this machine right now (at least 50 ms). The old code verified the code only after a right
password, so the two differed by a whole verification.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import random
import ssl
import statistics
import time

import argon2
import asyncssh
import pytest

from tests.conftest import CENTRE_A, start_gateway
from tests.people import CODE_PROMPT, KbdClient

PW = "tim-an-passw0rd"
ROUNDS = 15


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    # no delay, no ban (start_gateway's defaults): every attempt is looked at
    g = start_gateway(tmp_path_factory.mktemp("timing") / "var",
                      env={"INSTPAGES_AUTH_SECOND_FACTOR": "required", "INSTPAGES_AUTH_TOKEN_CODES": "4"})
    g.admin.add_institution(CENTRE_A, "OCMW Aalst-test", "active")
    g.admin.add_account("tim-an", "staff", password=PW)
    g.admin.grant("tim-an", CENTRE_A)
    g.card = dict(g.admin.issue_token_card("tim-an"))
    yield g
    g.stop()
    g.services.close()


def one_hash_seconds() -> float:
    """What one argon2 verification (the gateway's parameters) costs on this machine now: the median of 3."""
    hasher = argon2.PasswordHasher()
    stored = hasher.hash("some password")
    took = []
    for _ in range(3):
        t0 = time.perf_counter()
        try:
            hasher.verify(stored, "another password")
        except argon2.exceptions.VerifyMismatchError:
            pass
        took.append(time.perf_counter() - t0)
    return statistics.median(took)


def assert_indistinguishable(times: dict[str, list[float]]) -> None:
    """Compared by the lower quartile of each case: the load of a shared machine only ever adds time, in bursts
    that a median of 15 can still catch on one case (CI once saw 333 ms against 412 ms for two cases that run the
    same code), while a leak of one verification shifts every attempt of a case, the fastest quarter too."""
    quartiles = {k: statistics.quantiles(v, n=4)[0] for k, v in times.items()}
    spread = max(quartiles.values()) - min(quartiles.values())
    bound = max(0.05, one_hash_seconds() / 2)
    shown = {k: f"{q * 1000:.0f} ms (median {statistics.median(times[k]) * 1000:.0f} ms)"
             for k, q in quartiles.items()}
    assert spread < 0.3 * min(quartiles.values()), f"the cases can be told apart by their time: {shown}"
    assert spread < bound, f"the cases differ by {spread * 1000:.0f} ms (bound {bound * 1000:.0f} ms): {shown}"


def shuffled(cases: dict) -> list:
    order = list(cases.items())
    random.shuffle(order)
    return order


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** 6:06d}"


# -- REST API ---------------------------------------------------------------------------------------------------
class Api:
    """One kept-alive HTTPS connection, so that only the login itself is timed."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context(),
                                                timeout=60)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes, dict, float]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        t0 = time.perf_counter()
        self.conn.request(method, "/api" + path, body=data, headers=headers)
        r = self.conn.getresponse()
        raw = r.read()
        took = time.perf_counter() - t0
        if r.getheader("connection", "").lower() == "close":
            self.conn.close()
        return r.status, raw, {k.lower(): v for k, v in r.getheaders() if k.lower() != "date"}, took


def test_api_login_with_a_wrong_code_takes_as_long_whether_the_password_was_right(gw):
    api = Api(gw.dav_port)
    number = json.loads(api.request("GET", "/session/challenge?username=tim-an")[1])["number"]
    bad_code = wrong(gw.card[number])
    cases = {
        "right password": {"username": "tim-an", "password": PW, "number": number, "code": bad_code},
        "wrong password": {"username": "tim-an", "password": PW + "x", "number": number, "code": bad_code},
        "wrong password, right code": {"username": "tim-an", "password": PW + "x", "number": number,
                                       "code": gw.card[number]},
        "unknown name": {"username": "tim-nobody", "password": PW, "number": number, "code": bad_code},
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    answers = set()
    for i in range(ROUNDS + 2):
        for k, body in shuffled(cases):
            status, raw, headers, took = api.request("POST", "/session", body)
            answers.add((status, raw, tuple(sorted(headers.items()))))
            if i >= 2:  # the first rounds warm up (connections, caches)
                times[k].append(took)
    assert len(answers) == 1, answers
    assert answers.pop()[:2] == (401, b'{"error":"authentication failed"}')
    assert_indistinguishable(times)
    # and the code still counts once: the challenge is open, the right answer logs in
    status, raw, _, _ = api.request("POST", "/session", {"username": "tim-an", "password": PW, "number": number,
                                                         "code": gw.card[number]})
    assert status == 201, raw


# -- SFTP keyboard-interactive ------------------------------------------------------------------------------------
class TimedKbdClient(KbdClient):
    """Notes when it sends the code: the time from there to the server's answer is the login's verification."""

    sent_code = 0.0

    def kbdint_challenge_received(self, name, instructions, lang, prompts):
        answers = super().kbdint_challenge_received(name, instructions, lang, prompts)
        if any(CODE_PROMPT.search(p) for p, _ in prompts):
            self.sent_code = time.perf_counter()
        return answers


async def timed_kbd_login(gw, user: str, password: str, card) -> tuple[list[str], str, float]:
    client = TimedKbdClient(password, card)
    try:
        async with asyncssh.connect("127.0.0.1", gw.port, username=user, known_hosts=None, agent_path=None,
                                    client_keys=None, preferred_auth="keyboard-interactive",
                                    client_factory=lambda: client, login_timeout=60):
            raise AssertionError("logged in with a wrong code")
    except asyncssh.PermissionDenied as exc:
        return client.prompts, str(exc), time.perf_counter() - client.sent_code


def test_sftp_wrong_code_takes_as_long_whether_the_password_was_right(gw):
    number = gw.services.mailbox.token_challenge("tim-an")
    bad_card = {n: wrong(c) for n, c in gw.card.items()}
    cases = {
        "right password": ("tim-an", PW, bad_card),
        "wrong password": ("tim-an", PW + "x", bad_card),
        "wrong password, right code": ("tim-an", PW + "x", gw.card),
        "unknown name": ("tim-nobody", PW, bad_card),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    shapes = {}

    async def rounds():
        for i in range(ROUNDS + 1):
            for k, (user, password, card) in shuffled(cases):
                prompts, refusal, took = await timed_kbd_login(gw, user, password, card)
                shapes.setdefault(k, set()).add((prompts[0], refusal.replace(user, "USER")))
                assert CODE_PROMPT.search(prompts[1]), prompts  # every case is asked a code
                if k.startswith(("right", "wrong")):
                    assert f"Code number {number} " in prompts[1], prompts
                if i >= 1:
                    times[k].append(took)

    asyncio.run(rounds())
    assert len({s for v in shapes.values() for s in v}) == 1, shapes
    assert_indistinguishable(times)
