"""``instpages serve --workers N`` (issue 11, part 1): the real command as a subprocess, driven with OpenSSH sftp,
curl and Python's ssl client on 127.0.0.1.

Which worker served a connection is read from /proc: the server side of the TCP connection is a socket inode, held
open by exactly one worker process.
"""
from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.services import build
from tests.conftest import CENTRE_A, PYTHON, ROOT, SFTP_OPTS, STAFF_PASSWORD, free_port, keygen, ssh_env
from tests.machinecert import make_cert
from tests.pdfsamples import minimal_pdf

RUNNING = "Institutional Pages is running"


# -- a spawned gateway ----------------------------------------------------------------------------------------
@dataclass
class Served:
    proc: subprocess.Popen
    data_dir: Path
    log: Path
    sftp_port: int
    https_port: int
    keys: dict

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> list[int]:
        """The supervisor's children (its worker processes)."""
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as fh:
                return sorted(int(p) for p in fh.read().split())
        except FileNotFoundError:
            return []

    def serving(self) -> list[int]:
        """Worker pids that have said they serve (supervisor log), still running."""
        said = {int(p) for p in re.findall(r"worker \d+ \(pid (\d+)\) serving", self.text())}
        return sorted(p for p in self.workers() if p in said)

    def wait_serving(self, n: int, timeout: float = 60, exclude: set[int] = frozenset()) -> list[int]:
        deadline = time.monotonic() + timeout
        while True:
            pids = [p for p in self.serving() if p not in exclude]
            if len(pids) >= n:
                return pids
            assert self.proc.poll() is None, f"the supervisor exited with {self.proc.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, f"{n} serving workers not reached:\n{self.text()[-3000:]}"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


def prepare(data_dir: Path, keydir: Path, **env) -> tuple[dict, dict]:
    """A data folder with centre A, the uploader ``podmi`` (SSH key) and ``staff-a`` (password, grant on A)."""
    env = {"INSTPAGES_DATA_DIR": str(data_dir), "INSTPAGES_AUTH_SECOND_FACTOR": "off",
           "INSTPAGES_AUTH_FAILURE_DELAY_BASE": "0", "INSTPAGES_AUTH_SOURCE_BAN_SCORE": "100000",
           "INSTPAGES_SFTP_PORT": str(free_port()), "INSTPAGES_WEBDAV_PORT": str(free_port()), **env}
    services = build(load_config(None, env=env))
    try:
        admin = services.administration(actor="test")
        admin.add_institution(CENTRE_A, "OCMW Workers", "active")
        key = keygen(keydir / "podmi")
        admin.add_account("podmi", "uploader", None, [key.with_suffix(".pub").read_text()], None)
        admin.add_account("staff-a", "staff", None, [], STAFF_PASSWORD)
        admin.grant("staff-a", CENTRE_A)
    finally:
        services.close()
    return env, {"podmi": key}


def serve(tmp: Path, workers: int = 2, **env) -> Served:
    data_dir = tmp / "var"
    full_env, keys = prepare(data_dir, tmp, **env)
    log = tmp / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([PYTHON, "-m", "gateway", "serve", "--workers", str(workers)], stdout=fh,
                                stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(ROOT), **full_env),
                                cwd=str(ROOT), start_new_session=True)
    s = Served(proc, data_dir, log, int(full_env["INSTPAGES_SFTP_PORT"]), int(full_env["INSTPAGES_WEBDAV_PORT"]),
               keys)
    deadline = time.monotonic() + 90
    while RUNNING not in s.text():
        if proc.poll() is not None or time.monotonic() > deadline:
            s.stop()
            raise AssertionError(f"serve --workers {workers} did not start:\n{s.text()[-3000:]}")
        time.sleep(0.1)
    return s


# -- which process holds a connection -------------------------------------------------------------------------
def _hex(addr: tuple[str, int]) -> str:
    return f"{socket.inet_aton(addr[0])[::-1].hex().upper()}:{addr[1]:04X}"


def owner(server_port: int, client: tuple[str, int], pids: list[int]) -> int | None:
    """The pid (among ``pids``) holding the server side of the TCP connection from ``client``."""
    local, remote = _hex(("127.0.0.1", server_port)), _hex(client)
    inode = next((f[9] for f in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
                  if f[1] == local and f[2] == remote), None)
    if not inode or inode == "0":
        return None
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def https_get(s: Served, path: str, *, auth: bool = True, cert=None, method: str = "GET") -> tuple[int, int | None]:
    """One request on a new TLS connection: (status, pid of the worker that answered)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    conn = http.client.HTTPSConnection("127.0.0.1", s.https_port, context=ctx, timeout=20)
    try:
        headers = {"Depth": "0"}
        if auth:
            import base64

            headers["Authorization"] = "Basic " + base64.b64encode(f"staff-a:{STAFF_PASSWORD}".encode()).decode()
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        r.read()
        return r.status, owner(s.https_port, conn.sock.getsockname(), s.workers())
    finally:
        conn.close()


def curl(s: Served, *args: str) -> tuple[int, bytes]:
    p = subprocess.run(["curl", "-sk", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}", *args],
                       capture_output=True, timeout=60)
    body, _, code = p.stdout.rpartition(b"\n")
    return int(code or 0), body


def sftp(s: Served, commands: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sftp", *SFTP_OPTS, "-o", "BatchMode=yes", "-i", str(s.keys["podmi"]), "-P",
                           str(s.sftp_port), "-b", "-", "podmi@127.0.0.1"], input=commands, capture_output=True,
                          text=True, env=ssh_env(), timeout=120, start_new_session=True)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    # pinned certificates are re-read on SIGHUP only here (not every few seconds), so that the SIGHUP test
    # measures SIGHUP
    s = serve(tmp_path_factory.mktemp("workers"), 2, INSTPAGES_WEBDAV_TRUST_REFRESH_SECONDS="3600")
    s.wait_serving(2)
    yield s
    s.stop()


# -- tests ----------------------------------------------------------------------------------------------------
def test_server_workers_key_defaults_to_the_cores_and_is_overridable():
    assert load_config(None, env={}).server.workers == (os.cpu_count() or 1)
    assert load_config(None, env={"INSTPAGES_SERVER_WORKERS": "3"}).server.workers == 3
    with pytest.raises(Exception, match="server.workers"):
        load_config(None, env={"INSTPAGES_SERVER_WORKERS": "0"})


def test_two_workers_serve_sftp_and_https_on_the_same_ports(two, tmp_path):
    assert len(two.workers()) == 2 and two.proc.pid not in two.workers()
    # OpenSSH sftp: an upload and a listing, a few times (each run is a new connection)
    for i in range(4):
        (tmp_path / f"w{i}.pdf").write_bytes(minimal_pdf(f"through a worker {i}"))
        r = sftp(two, f"put {tmp_path / f'w{i}.pdf'} /{CENTRE_A}/workers/w{i}.pdf\n")
        assert r.returncode == 0, r.stderr
    # curl: the staff member sees all four, whichever worker answers
    code, body = curl(two, "-u", f"staff-a:{STAFF_PASSWORD}", "-X", "PROPFIND", "-H", "Depth: 1",
                      f"https://127.0.0.1:{two.https_port}/dav/{CENTRE_A}/workers/")
    assert code == 207 and all(f"w{i}.pdf".encode() in body for i in range(4)), body[:500]
    # both workers answer HTTPS connections
    seen = set()
    for _ in range(60):
        status, pid = https_get(two, f"/dav/{CENTRE_A}/workers/w0.pdf")
        assert status == 200
        seen.add(pid)
        if seen >= set(two.workers()):
            break
    assert seen >= set(two.workers()), f"connections went to {seen}, workers are {two.workers()}"


def test_the_workers_take_new_connections_in_turns(two):
    """Drive users connecting one after the other are served by the workers in turn (the load board), not by
    whichever woke first: under load that one kept taking them (173 of 200 connections on one worker of two)."""
    workers = two.wait_serving(2)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    conns, held = [], []
    try:
        for _ in range(30):
            conn = http.client.HTTPSConnection("127.0.0.1", two.https_port, context=ctx, timeout=30)
            conns.append(conn)  # kept open: each worker holds its own
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            r.read()
            assert r.status == 200
            held.append(owner(two.https_port, conn.sock.getsockname(), workers))
        assert None not in held and {held.count(p) for p in workers} <= set(range(13, 18)), held
        turns = sum(a != b for a, b in zip(held, held[1:]))
        assert turns >= 25, f"{turns} of 29 connections went to the other worker than the one before: {held}"
    finally:
        for c in conns:
            c.close()


def test_a_killed_worker_is_replaced_and_the_other_serves_meanwhile(two, tmp_path):
    before = two.wait_serving(2)
    victim, survivor = before
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    # during the gap (the dead worker's slot stays empty for its restart delay, 0.5 s): every connection is
    # answered, by the survivor
    answered = []
    while time.monotonic() - t0 < 0.4:
        status, pid = https_get(two, "/healthz", auth=False)
        assert status == 200
        answered.append(pid)
    assert answered and set(answered) == {survivor}, answered
    assert curl(two, "-u", f"staff-a:{STAFF_PASSWORD}", f"https://127.0.0.1:{two.https_port}/dav/{CENTRE_A}/")[0] \
        == 200
    (tmp_path / "gap.pdf").write_bytes(minimal_pdf("delivered while a worker was down"))
    r = sftp(two, f"put {tmp_path / 'gap.pdf'} /{CENTRE_A}/gap.pdf\nls /{CENTRE_A}\n")
    assert r.returncode == 0 and "gap.pdf" in r.stdout, r.stderr
    # the supervisor starts a new worker in the dead one's place
    now = two.wait_serving(2, timeout=60)
    assert victim not in now and survivor in now and not alive(victim)
    assert re.search(rf"worker \d \(pid {victim}\) ended \(signal SIGKILL\)", two.text())
    seen = set()
    for _ in range(60):
        status, pid = https_get(two, "/healthz", auth=False)
        assert status == 200
        seen.add(pid)
        if seen >= set(now):
            break
    assert seen >= set(now), f"the new worker never answered: {seen} vs {now}"


def test_sighup_makes_every_worker_trust_a_newly_pinned_certificate(two, tmp_path):
    cert = make_cert(tmp_path, "podmi-hup")
    env = {"INSTPAGES_DATA_DIR": str(two.data_dir)}
    services = build(load_config(None, env=env), initialize=False)
    try:
        services.administration(actor="test").add_account("podmi-hup", "uploader",
                                                                   client_certs=[cert[0].read_text()])
    finally:
        services.close()
    url = f"https://127.0.0.1:{two.https_port}/dav/{CENTRE_A}/"
    # not trusted yet: the workers read pinned certificates only on SIGHUP here
    code, _ = curl(two, "--cert", str(cert[0]), "--key", str(cert[1]), "-X", "PROPFIND", "-H", "Depth: 0", url)
    assert code in (0, 401), code
    os.kill(two.proc.pid, signal.SIGHUP)
    t0 = time.monotonic()
    workers = set(two.wait_serving(2))
    seen: set[int] = set()
    while not seen >= workers:
        assert time.monotonic() - t0 < 30, f"the certificate logged in through {seen} only, workers {workers}"
        try:
            status, pid = https_get(two, f"/dav/{CENTRE_A}/", auth=False, cert=cert, method="PROPFIND")
        except (ssl.SSLError, ConnectionError):
            status, pid = 0, None
        if status == 207:
            seen.add(pid)
        elif time.monotonic() - t0 > 2.0:  # the stated bound: every worker re-reads within 2 s of SIGHUP
            raise AssertionError(f"{status} from worker {pid} {time.monotonic() - t0:.1f} s after SIGHUP")
        else:
            time.sleep(0.05)
    assert two.text().count("trust material reloaded (SIGHUP)") >= 2
    assert two.proc.poll() is None and set(two.workers()) == workers  # SIGHUP stopped nothing


def test_sigterm_stops_the_supervisor_and_every_worker(tmp_path):
    s = serve(tmp_path, 2)
    try:
        pids = s.wait_serving(2)
        held = subprocess.Popen(["sftp", *SFTP_OPTS, "-o", "BatchMode=yes", "-i", str(s.keys["podmi"]), "-P",
                                 str(s.sftp_port), "-b", "-", "podmi@127.0.0.1"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ssh_env(),
                                start_new_session=True)  # an open session does not keep the gateway up
        time.sleep(1.0)
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(60) == 0, s.text()[-2000:]
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in pids if alive(p)], "workers left running after SIGTERM"
        for port in (s.sftp_port, s.https_port):
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert all(f"(pid {p}) stopped (exit 0)" in s.text() for p in pids), s.text()[-2000:]
        held.kill()
        held.wait(10)
    finally:
        s.stop()


def test_workers_1_is_one_process_as_before(tmp_path):
    s = serve(tmp_path, 1)
    try:
        assert s.workers() == [] and "supervisor" not in s.text()
        assert curl(s, f"https://127.0.0.1:{s.https_port}/healthz")[0] == 200
        r = sftp(s, f"ls /{CENTRE_A}\n")
        assert r.returncode == 0, r.stderr
    finally:
        s.stop()


# -- /readyz with the database away ---------------------------------------------------------------------------
class Relay:
    """A TCP relay to the database that the test cuts (listener closed, live connections reset) and restores:
    the database unreachable, as a network failure makes it, while the server itself keeps running."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.port = target, free_port()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.open()

    def open(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=10)
            upstream.settimeout(None)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def test_readyz_fails_on_every_worker_while_the_database_is_unreachable(tmp_path, pg_url):
    from sqlalchemy.engine import make_url

    u = make_url(pg_url)
    relay = Relay((u.host, u.port or 5432))
    try:
        url = u.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        s = serve(tmp_path, 2, INSTPAGES_STORAGE_DATABASE_URL=url)
        try:
            workers = set(s.wait_serving(2))
            # 2 x (16 + 64 + 4) possible connections against PostgreSQL's default 100: the operator is told
            assert re.search(r"2 workers may open 168 database connections .* allows \d+ \(max_connections\)",
                             s.text()), s.text()[-2000:]

            def probe_all(expected: int) -> None:
                seen: set[int] = set()
                deadline = time.monotonic() + 30
                while not seen >= workers:
                    assert time.monotonic() < deadline, f"/readyz {expected} only from {seen} of {workers}"
                    status, pid = https_get(s, "/readyz", auth=False)
                    if status == expected:
                        seen.add(pid)
                    else:
                        time.sleep(0.2)  # a verdict is reused for a second

            probe_all(200)
            relay.cut()
            probe_all(503)
            code, body = curl(s, f"https://127.0.0.1:{s.https_port}/readyz")
            assert code == 503 and body == b"not ready\n"  # nothing about the database in the answer
            assert curl(s, f"https://127.0.0.1:{s.https_port}/healthz")[0] == 200  # the processes are up
            relay.open()
            probe_all(200)
            assert set(s.workers()) == workers  # no worker died of it
        finally:
            s.stop()
    finally:
        relay.cut()
