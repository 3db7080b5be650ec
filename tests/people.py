"""Shared helpers of the login tests for people (two factors): the gateway with the eID trust anchors, token-card
logins with OpenSSH ``sftp`` (SSH_ASKPASS) and the asyncssh client, curl against WebDAV, and the login record."""
from __future__ import annotations

import asyncio
import datetime as dt
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from tests.conftest import CENTRE_A, SFTP_OPTS, Gateway, populate, ssh_env, start_gateway
from tests.pki import national_register_number


TOKEN_CODES = 4  # the minimum: every code is an argon2 hash, made when the card is issued

PEOPLE_ENV = {
    "INSTPAGES_AUTH_SECOND_FACTOR": "required",
    "INSTPAGES_AUTH_TOKEN_CODES": str(TOKEN_CODES),
    # this module tests the factors, not the slow-down: no delay, no ban (tests/gateway/test_login_limits.py)
    "INSTPAGES_AUTH_FAILURE_DELAY_BASE": "0",
    "INSTPAGES_AUTH_BAN_AFTER": "100000",
}
GENERIC_SSH_REFUSAL = "Permission denied"

JAN_NRN = national_register_number(dt.date(1985, 7, 30), 33)      # 85073003328
OTHER_JAN_NRN = national_register_number(dt.date(1990, 1, 2), 117)  # another Jan Peeters
JAN_PW = "jan-peeters-passw0rd"
OTHER_JAN_PW = "other-jan-passw0rd"


# -- helpers ------------------------------------------------------------
ASKPASS = r"""#!/bin/sh
# ssh calls this once per prompt, the prompt in $1: the password, or the code with the number asked
printf '%s\n' "$1" >> "$ASKPASS_LOG"
case "$1" in
  *"Code number "*)
    n=$(printf '%s' "$1" | sed -n 's/.*Code number \([0-9][0-9]*\) of your token.*/\1/p')
    awk -v n="$n" '$1 == n { print $2; found = 1 } END { exit !found }' "$ASKPASS_CARD" ;;
  *Password*) printf '%s\n' "$ASKPASS_PASSWORD" ;;
  *) exit 1 ;;
esac
"""
CODE_PROMPT = re.compile(r"Code number (\d+) of your token")


def run(coro):
    return asyncio.run(coro)


def write_card(path: Path, card) -> Path:
    path.write_text("".join(f"{n} {code}\n" for n, code in dict(card).items()))
    return path


def wrong_card(card) -> dict[int, str]:
    return {n: f"{(int(code) + 1) % 10 ** 6:06d}" for n, code in dict(card).items()}


@dataclass
class SftpRun:
    rc: int
    stdout: str
    stderr: str
    prompts: list[str]

    @property
    def numbers(self) -> list[int]:
        return [int(m.group(1)) for p in self.prompts if (m := CODE_PROMPT.search(p))]


def openssh_token_sftp(gw, user: str, password: str, card, workdir: Path, commands: str = "ls -1 /\n") -> SftpRun:
    """OpenSSH ``sftp -b`` with keyboard-interactive only, answered by an SSH_ASKPASS script that prints the
    password, or the card's code for the number in the prompt. One attempt per connection."""
    workdir.mkdir(parents=True, exist_ok=True)
    askpass = workdir / "askpass.sh"
    if not askpass.exists():
        askpass.write_text(ASKPASS)
        askpass.chmod(0o700)
    log = workdir / f"prompts-{time.monotonic_ns()}.log"
    log.touch()
    env = ssh_env()
    env.update(SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", ASKPASS_LOG=str(log),
               ASKPASS_PASSWORD=password, ASKPASS_CARD=str(write_card(workdir / f"card-{log.stem}", card)))
    cmd = ["sftp", *SFTP_OPTS, "-o", "PreferredAuthentications=keyboard-interactive", "-o", "PubkeyAuthentication=no",
           "-o", "NumberOfPasswordPrompts=1", "-o", "BatchMode=no",  # BatchMode=no BEFORE -b, which sets it to yes
           "-P", str(gw.port), "-b", "-", f"{user}@127.0.0.1"]
    p = subprocess.run(cmd, input=commands, capture_output=True, text=True, env=env, timeout=90,
                       start_new_session=True)
    return SftpRun(p.returncode, p.stdout, p.stderr, [ln for ln in log.read_text().splitlines() if ln.strip()])


class KbdClient(asyncssh.SSHClient):
    """asyncssh client answering keyboard-interactive: the password, then the card's code for the number asked."""

    def __init__(self, password: str, card):
        self.password = password
        self.card = dict(card or {})
        self.prompts: list[str] = []
        self._tried = False

    def kbdint_auth_requested(self):
        if self._tried:
            return None  # one attempt; "" again would make asyncssh retry until the connection is lost
        self._tried = True
        return ""

    def kbdint_challenge_received(self, name, instructions, lang, prompts):
        answers = []
        for prompt, _echo in prompts:
            self.prompts.append(prompt)
            m = CODE_PROMPT.search(prompt)
            answers.append(self.card.get(int(m.group(1)), "000000") if m else self.password)
        return answers

    @property
    def numbers(self) -> list[int]:
        return [int(m.group(1)) for p in self.prompts if (m := CODE_PROMPT.search(p))]


async def kbd_login(gw, user: str, password: str, card) -> tuple[KbdClient, list[str] | Exception]:
    """Log in with asyncssh keyboard-interactive; returns the client (prompts seen) and the root listing, or
    the exception that refused the login."""
    client = KbdClient(password, card)
    try:
        async with asyncssh.connect("127.0.0.1", gw.port, username=user, known_hosts=None, agent_path=None,
                                    client_keys=None, preferred_auth="keyboard-interactive",
                                    client_factory=lambda: client, login_timeout=60) as conn:
            async with conn.start_sftp_client() as sftp:
                return client, sorted(n for n in await sftp.listdir("/") if n not in (".", ".."))
    except (asyncssh.PermissionDenied, asyncssh.DisconnectError, asyncssh.SFTPError, OSError) as exc:
        return client, exc


@dataclass
class Curl:
    rc: int
    code: int
    body: str
    stderr: str

    @property
    def failed(self) -> bool:
        """The request failed below HTTP (TLS handshake or first read): no status at all."""
        return self.rc != 0 and self.code == 0


def curl(gw, path: str = "/", *, user: str | None = None, secret: str | None = None, cert=None,
         headers: tuple[str, ...] = (), method: str | None = None) -> Curl:
    """curl against the gateway's WebDAV URL, checking the server certificate against its own self-signed one."""
    cmd = ["curl", "-sS", "--max-time", "30", "--cacert", str(gw.config.tls_cert_path), "-o", "-",
           "-w", "\n%{http_code}"]
    if cert is not None:
        cmd += ["--cert", str(cert.cert), "--key", str(cert.key)]
    if user is not None:
        cmd += ["-u", f"{user}:{secret}"]
    for h in headers:
        cmd += ["-H", h]
    if method:
        cmd += ["-X", method]
    cmd.append(gw.dav_url + path)
    p = subprocess.run(cmd, capture_output=True, timeout=60)
    body, _, code = p.stdout.rpartition(b"\n")
    return Curl(p.returncode, int(code) if code.strip().isdigit() else 0, body.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))


def logins(gw, actor: str, outcome: str | None = None, limit: int = 400) -> list:
    return [e for e in gw.audit(action="login", limit=limit)
            if e.actor == actor and (outcome is None or e.outcome == outcome)]


def wait_logins(gw, actor: str, outcome: str, count: int = 1, timeout: float = 5.0) -> list:
    """Some failures (keys offered, none accepted) are recorded when the connection is gone."""
    deadline = time.monotonic() + timeout
    while True:
        found = logins(gw, actor, outcome)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def account_id(gw, name: str) -> int:
    with gw.repo.read() as c:
        return gw.repo.account_by_name(c, name).id


def challenge_row(gw, name: str):
    with gw.repo.read() as c:
        return gw.repo.token_challenge(c, account_id(gw, name))


def add_person(gw, name: str, password: str, *centres: str, **kw) -> None:
    gw.admin.add_account(name, "staff", password=password, **kw)
    for centre in centres:
        gw.admin.grant(name, centre)


def start_people_gateway(d: Path, pki) -> Gateway:
    """A gateway in ``d`` with the second factor required, the eID trust anchors of ``pki`` and its CRL, the
    centres and accounts of ``populate``, and Jan Peeters (centre A) with his national register number."""
    env = dict(PEOPLE_ENV, INSTPAGES_WEBDAV_CLIENT_CA_FILE=str(pki.ca_bundle),
               INSTPAGES_WEBDAV_CLIENT_CRL_FILES=str(pki.crl))
    g = start_gateway(d / "var", env=env)
    populate(g, d)
    add_person(g, "jan.peeters", JAN_PW, CENTRE_A, nrn=JAN_NRN)
    return g
