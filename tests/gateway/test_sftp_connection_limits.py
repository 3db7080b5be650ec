"""One SSH connection gets ``sftp.max_auth_tries`` refused attempts and ``sftp.login_timeout`` seconds to log in
(OpenSSH's MaxAuthTries and LoginGraceTime); then it is dropped, and the drop is on the record.

Real clients: an asyncssh client that keeps guessing passwords on one connection, OpenSSH's sftp offering more
keys than it is allowed, an asyncssh client that connects and never answers its password prompt, and a TCP
client that never even says hello.
"""
from __future__ import annotations

import asyncio
import socket
import subprocess
import time

import asyncssh
import pytest

from tests.conftest import SFTP_OPTS, STAFF_PASSWORD, keygen, ssh_env

DEFAULT_TRIES = 6   # OpenSSH's MaxAuthTries
TRIES = 3
GRACE = 2


@pytest.fixture(params=[None, TRIES], ids=["default", "configured"])
def gw(request, make_gateway):
    """A gateway with the default number of attempts, or TRIES (``gw.tries``)."""
    env = {"INSTPAGES_SFTP_MAX_AUTH_TRIES": str(request.param)} if request.param else {}
    gw = make_gateway(env=env)
    gw.tries = request.param or DEFAULT_TRIES
    return gw


@pytest.fixture
def impatient(make_gateway):
    """A gateway giving a connection GRACE seconds to log in."""
    return make_gateway(env={"INSTPAGES_SFTP_LOGIN_TIMEOUT": str(GRACE)})


def drops(gw, timeout: float = 5.0) -> list:
    """The 'disconnected' login events (written just after the drop)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in gw.audit(action="login", limit=200) if e.outcome == "disconnected"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


class Guesser(asyncssh.SSHClient):
    """Answers every password prompt with another guess, the right one at ``right`` (0 = never), until 50."""

    def __init__(self, right: int = 0):
        self.right = right
        self.asked = 0

    def password_auth_requested(self):
        self.asked += 1
        if self.asked > 50:
            return None
        return STAFF_PASSWORD if self.asked == self.right else f"guess-{self.asked}"


async def guess(gw, right: int = 0):
    client = Guesser(right)
    try:
        async with asyncssh.connect("127.0.0.1", gw.port, username="staff-a", known_hosts=None, agent_path=None,
                                    client_keys=None, preferred_auth="password", client_factory=lambda: client) \
                as conn, conn.start_sftp_client() as sftp:
            return client.asked, set(await sftp.listdir("/"))
    except asyncssh.Error as exc:
        return client.asked, exc


def test_a_client_that_keeps_guessing_is_dropped_after_max_auth_tries(gw):
    tries = gw.tries
    asked, result = asyncio.run(guess(gw))
    assert asked == tries, f"the connection answered {asked} password prompts (limit {tries})"
    assert isinstance(result, asyncssh.DisconnectError) and "Too many authentication failures" in result.reason
    failed = [e for e in gw.audit(action="login", limit=200) if e.outcome == "failed" and e.actor == "staff-a"]
    assert len(failed) == tries                     # each guess on the record by the core ...
    drop = drops(gw)                                # ... and the drop with its reason
    assert [(e.actor, e.protocol, e.source) for e in drop] == [("staff-a", "sftp", "127.0.0.1")]
    assert f"too many authentication attempts on one connection ({tries}, at most {tries})" in drop[0].detail
    assert "methods tried: password" in drop[0].detail

    # the last allowed try still logs in
    asked, result = asyncio.run(guess(gw, right=tries))
    assert asked == tries and isinstance(result, set), result


def test_openssh_offering_too_many_keys_is_told_so(gw, tmp_path):
    keys = [keygen(tmp_path / f"k{i}") for i in range(gw.tries + 2)]
    cmd = ["sftp", *SFTP_OPTS, "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey"]
    for k in keys:
        cmd += ["-i", str(k)]
    p = subprocess.run([*cmd, "-P", str(gw.port), "-b", "-", "podmi@127.0.0.1"], input="ls /\n",
                       capture_output=True, text=True, env=ssh_env(), timeout=60)
    assert p.returncode == 255 and "Too many authentication failures" in p.stderr, p.stderr
    drop = drops(gw)
    assert len(drop) == 1 and drop[0].actor == "podmi" and "methods tried: publickey" in drop[0].detail, drop


class NeverAnswers(asyncssh.SSHClient):
    """Connects, completes the key exchange, and never answers its password prompt."""

    def password_auth_requested(self):
        return asyncio.get_running_loop().create_future()  # never resolved


def test_a_connection_that_never_logs_in_is_dropped_after_the_grace_time(impatient):
    gw = impatient

    async def idle():
        started = time.monotonic()
        try:
            async with asyncssh.connect("127.0.0.1", gw.port, username="staff-a", known_hosts=None, agent_path=None,
                                        client_keys=None, preferred_auth="password", client_factory=NeverAnswers,
                                        login_timeout=GRACE * 10):
                return None, time.monotonic() - started
        except asyncssh.Error as exc:
            return exc, time.monotonic() - started

    exc, waited = asyncio.run(idle())
    assert isinstance(exc, asyncssh.DisconnectError) and "grace time" in exc.reason, exc
    assert GRACE - 0.5 <= waited <= GRACE + 8, waited
    drop = drops(gw)
    assert len(drop) == 1 and drop[0].actor == "staff-a" and f"no login within {GRACE} s" in drop[0].detail, drop


def test_a_tcp_client_that_never_says_hello_is_dropped_too(impatient):
    gw = impatient

    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=GRACE * 5) as s:
        received = b""
        while True:  # the server's version line, then its disconnect message, then the end of the stream
            chunk = s.recv(4096)
            if not chunk:
                break
            received += chunk
    waited = time.monotonic() - started
    assert received.startswith(b"SSH-2.0-") and b"grace time" in received, received
    assert GRACE - 0.5 <= waited <= GRACE + 8, waited
    drop = drops(gw)
    assert len(drop) == 1 and drop[0].actor == "" and "methods tried: none" in drop[0].detail, drop
