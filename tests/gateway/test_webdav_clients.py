"""Real WebDAV clients against the gateway over loopback TLS: the ``litmus`` compliance suite, ``rclone``'s webdav
backend, scripted ``cadaver`` sessions, curl and ``webdav4`` (Debian packages litmus, rclone, cadaver, curl,
openssl; webdav4 from the test extra).

- litmus must pass *all* of basic, copymove, props, locks and http (run without ``-k``, rc 0, 0 failed in every
  summary) on a scratch centre whose content rule accepts any type and whose documents are mutable, with an
  account that may write and remove there. When it does not, the assertion message lists every failing litmus
  test with the requests and responses of that test taken from litmus' ``debug.log``.
- On a normal centre (PDF only, immutable) the same suite must meet refusals, not crashes: no 5xx anywhere, every
  PUT of litmus' non-PDF bodies refused with 415 and its reason, nothing stored; a read-only account is refused
  with 403 and a reason.
- ``rclone copy`` out of a mailbox gives byte-identical files; ``cadaver`` lists, gets and is refused a put.
- The client matrix: curl, rclone, cadaver and webdav4 (PyPI) each put as POD MI with its pinned client
  certificate, list, get (SHA-256 compared) and remove as staff with a device password wherever the role allows,
  and meet an error wherever it does not. davfs2 is left out: it needs a kernel mount.
"""
from __future__ import annotations

import hashlib
import os
import pty
import re
import select
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import sqlalchemy as sa

from gateway.core.enterprise import with_check
from tests.conftest import CENTRE_A
from tests.davtools import sftp_put
from tests.pdfsamples import minimal_pdf, not_a_pdf_html

SCRATCH = with_check("03330001")   # any content type, mutable: where litmus must pass everything
NORMAL = with_check("03330002")    # the default rule: PDF only, immutable
LITMUS, LITMUS_PW = "wdc-litmus", "wdc-litmus-password-1"
READER, READER_PW = "wdc-reader", "wdc-reader-password-1"
WRITER, WRITER_PW = "wdc-writer", "wdc-writer-password-1"
STAFF, STAFF_PW = "staff-a", "staff-password-123"
SUITES = ("basic", "copymove", "props", "locks", "http")


@pytest.fixture(scope="module")
def clients_world(world):
    a = world.admin
    a.add_institution(SCRATCH, "Scratch", "active", content_types="*", mutable=True)
    a.add_institution(NORMAL, "OCMW Normaal", "active")
    a.add_account(LITMUS, "staff", password=LITMUS_PW)
    a.grant(LITMUS, SCRATCH, can_remove=True, can_write=True)
    a.grant(LITMUS, NORMAL, can_remove=True, can_write=True)
    a.add_account(READER, "staff", password=READER_PW)
    a.grant(READER, NORMAL)
    a.add_account(WRITER, "staff", password=WRITER_PW)
    a.grant(WRITER, CENTRE_A, can_write=True)
    return world


def folder_for(request) -> str:
    return "wdc-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:10]


def committed(world, centre: str) -> list[tuple[str, str]]:
    with world.repo.read() as c:
        return [tuple(r) for r in c.execute(sa.text(
            "select folder, name from documents where institution_id = :i and state = 'committed'"), {"i": centre})]


# -- litmus ------------------------------------------------------------------------------------------------------
_SUMMARY = re.compile(r"<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed")
_FAIL = re.compile(r"(\d+)\.\s+(\w+)\.*\s+FAIL \((.*)$")
_SUITE = re.compile(r"-> running `(\w+)':")


@dataclass
class LitmusRun:
    rc: int
    output: str
    debug_log: str
    summaries: dict[str, tuple[int, int, int]] = field(default_factory=dict)   # suite: (run, passed, failed)
    failures: list[tuple[str, int, str, str]] = field(default_factory=list)     # (suite, number, name, reason)

    def exchanges(self, suite: str, number: int, limit: int = 6) -> list[str]:
        """The requests litmus sent for one test and what came back, from debug.log."""
        out = []
        for block in self.debug_log.split("Sending request headers:\n")[1:]:
            if f"X-Litmus: {suite}: {number} (" not in block.split("\n\n", 1)[0]:
                continue
            lines = block.splitlines()
            req = lines[0]
            status = next((ln.split("< ", 1)[1] for ln in lines if ln.startswith("[status-line]")), "(no response)")
            body = ""
            if "Read block (" in block:
                body = block.split("Read block (", 1)[1].split("\n", 1)[1][:300].replace("\n", " ")
            out.append(f"      {req}  ->  {status}  {body}")
        return out[-limit:]

    def report(self) -> str:
        lines = [f"litmus rc={self.rc}; summaries={self.summaries}"]
        for suite, num, name, reason in self.failures:
            lines.append(f"  {suite} {num}. {name}: FAIL ({reason}")
            lines += self.exchanges(suite, num)
        return "\n".join(lines)


def run_litmus(url: str, user: str, password: str, cwd: Path, *, keep_going: bool = False,
               tests: str = " ".join(SUITES), timeout: float = 90) -> LitmusRun:
    """litmus from its own working directory (it writes debug.log and child.log there)."""
    cwd.mkdir(parents=True, exist_ok=True)
    cmd = ["litmus", *(["-k"] if keep_going else []), url, user, password]
    env = dict(os.environ, TESTS=tests, HOME=str(cwd))
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=timeout, start_new_session=True)
    out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    log = cwd / "debug.log"
    run = LitmusRun(p.returncode, out, log.read_bytes().decode("utf-8", "replace") if log.exists() else "")
    suite = ""
    for line in out.splitlines():
        if m := _SUITE.search(line):
            suite = m.group(1)
        if m := _SUMMARY.search(line):
            run.summaries[m.group(1)] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
        # litmus prints each test's name twice on a line ("3. put_get....  3. put_get.... FAIL (...)")
        if "FAIL (" in line:
            m = _FAIL.search(line)
            if m:
                run.failures.append((suite, int(m.group(1)), m.group(2), m.group(3)))
    return run


def statuses(debug_log: str) -> list[tuple[str, int, str]]:
    """(request line, status, body excerpt) of every exchange in a litmus debug.log."""
    out = []
    for block in debug_log.split("Sending request headers:\n")[1:]:
        lines = block.splitlines()
        st = next((ln for ln in lines if ln.startswith("[status-line]")), None)
        if st is None:
            continue
        body = ""
        if "Read block (" in block:
            body = block.split("Read block (", 1)[1].split("\n", 1)[1][:1500]
        out.append((lines[0], int(st.split()[3]), body))
    return out


def test_litmus_passes_everything_on_a_scratch_centre(clients_world, tmp_path):
    url = f"{clients_world.dav_url}/{SCRATCH}/"
    run = run_litmus(url, LITMUS, LITMUS_PW, tmp_path / "strict")
    ok = run.rc == 0 and set(run.summaries) == set(SUITES) and all(f == 0 for _, _, f in run.summaries.values())
    if not ok:
        # without -k litmus stops at the first failing suite: run once more with -k to list every failure
        full = run_litmus(url, LITMUS, LITMUS_PW, tmp_path / "keep-going", keep_going=True)
        pytest.fail(f"litmus did not pass (strict run: rc={run.rc}, summaries={run.summaries}).\n"
                    f"Every failure (second run with -k):\n{full.report()}", pytrace=False)
    for suite in SUITES:
        assert run.summaries[suite][0] > 0 and run.summaries[suite][2] == 0, (suite, run.summaries)


def test_litmus_on_a_normal_centre_meets_refusals_not_crashes(clients_world, tmp_path):
    world = clients_world
    url = f"{world.dav_url}/{NORMAL}/"
    run = run_litmus(url, LITMUS, LITMUS_PW, tmp_path / "writer", keep_going=True)
    exchanges = statuses(run.debug_log)
    assert exchanges, run.output[-2000:]

    crashes = [(req, st, " ".join(re.findall(r"Source exception: ([^<\n]*)", body)) or body[:200])
               for req, st, body in exchanges if st >= 500]
    assert not crashes, "server errors instead of refusals:\n" + "\n".join(map(str, crashes)) + \
                        "\n" + run.report()

    puts = [(req, st, body) for req, st, body in exchanges if req.startswith("PUT ")]
    assert puts, "litmus sent no PUT"
    assert not [p for p in puts if 200 <= p[1] < 300], "a non-PDF body was stored in a PDF-only centre"
    refused = [p for p in puts if p[1] == 415]
    assert refused, puts
    reasons = [body.strip("[").split("\n")[1].strip() if "\n" in body else "" for _, _, body in refused]
    assert all(reasons), f"415 without a reason: {refused}"
    assert any("not a PDF" in r for r in reasons), reasons
    # the refusals reached litmus as failures of the tests that needed a stored body, with the 415
    basic = [f for f in run.failures if f[0] == "basic"]
    assert any(f[2] == "put_get" and "415" in f[3] for f in basic), run.report()
    assert committed(world, NORMAL) == [], "documents were committed by litmus in a PDF-only centre"

    # an account without the write grant (in a folder of its own, away from what the first run left behind):
    # refused with 403 and a reason before anything is created
    mk = subprocess.run(["curl", "-sS", "--cacert", str(world.config.tls_cert_path), "-u", f"{LITMUS}:{LITMUS_PW}",
                         "-X", "MKCOL", "-o", "/dev/null", "-w", "%{http_code}", url + "read-only/"],
                        capture_output=True, text=True, timeout=30)
    assert mk.stdout == "201", (mk.stdout, mk.stderr)
    ro = run_litmus(url + "read-only/", READER, READER_PW, tmp_path / "reader", tests="basic")
    assert ro.rc != 0, ro.output
    ro_ex = statuses(ro.debug_log)
    assert not [e for e in ro_ex if e[1] >= 500], ro_ex
    mkcol = [e for e in ro_ex if e[0].startswith("MKCOL ")]
    assert mkcol and all(st == 403 and "may not" in body for _, st, body in mkcol), mkcol
    assert committed(world, NORMAL) == []


# -- rclone ------------------------------------------------------------------------------------------------------
def test_rclone_copies_a_mailbox_out_byte_identical(clients_world, request, tmp_path):
    world = clients_world
    folder = folder_for(request)
    files = {"maandstaat-01.pdf": minimal_pdf("maandstaat 1"), "lijst aanvaard.pdf": minimal_pdf("lijst", pages=5),
             "afrekening/jaarlijkse afrekening 2025.pdf": minimal_pdf("afrekening " * 300, pages=20)}
    sftp_put(world, "podmi", CENTRE_A, folder, files, tmp_path)

    home = tmp_path / "home"
    home.mkdir()
    pw = subprocess.run(["rclone", "obscure", STAFF_PW], capture_output=True, text=True, check=True).stdout.strip()
    env = dict(os.environ, HOME=str(home), RCLONE_CONFIG=str(home / "rclone.conf"),
               RCLONE_CONFIG_X_TYPE="webdav", RCLONE_CONFIG_X_URL=world.dav_url, RCLONE_CONFIG_X_VENDOR="other",
               RCLONE_CONFIG_X_USER=STAFF, RCLONE_CONFIG_X_PASS=pw)
    dest = tmp_path / "out"
    p = subprocess.run(["rclone", "copy", "--no-check-certificate", "--retries", "1", f"X:{CENTRE_A}/{folder}",
                        str(dest)], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    got = {str(f.relative_to(dest)): f.read_bytes() for f in dest.rglob("*") if f.is_file()}
    assert set(got) == set(files)
    for name, data in files.items():
        assert got[name] == data, f"{name} differs"
    # rclone's own listing agrees on sizes
    ls = subprocess.run(["rclone", "lsl", "--no-check-certificate", f"X:{CENTRE_A}/{folder}"], env=env,
                        capture_output=True, text=True, timeout=60)
    assert ls.returncode == 0, ls.stderr
    sizes = {line.split(None, 3)[3]: int(line.split()[0]) for line in ls.stdout.splitlines() if line.strip()}
    assert sizes == {n: len(d) for n, d in files.items()}


# -- cadaver -----------------------------------------------------------------------------------------------------
class Pty:
    """Drive an interactive program on a pseudo-terminal (cadaver asks about the certificate on a tty only)."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.buf = b""
        self.transcript = b""

    def expect(self, pattern: bytes, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while pattern not in self.buf:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.master], [], [], max(0.0, left))
            if not r:
                raise AssertionError(f"cadaver: no {pattern!r} within {timeout}s; transcript:\n"
                                     f"{self.transcript.decode('utf-8', 'replace')}")
            try:
                data = os.read(self.master, 4096)
            except OSError:
                data = b""
            if not data:
                raise AssertionError(f"cadaver ended while waiting for {pattern!r}; transcript:\n"
                                     f"{self.transcript.decode('utf-8', 'replace')}")
            self.buf += data
            self.transcript += data
        i = self.buf.index(pattern) + len(pattern)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def close(self) -> int:
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)
        finally:
            os.close(self.master)


def test_cadaver_scripted_session(clients_world, request, tmp_path):
    world = clients_world
    folder = folder_for(request)
    doc = minimal_pdf("voor cadaver", pages=2)
    sftp_put(world, "podmi", CENTRE_A, folder, {"brief.pdf": doc, "tweede.pdf": minimal_pdf("2")}, tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text(f"machine 127.0.0.1\nlogin {WRITER}\npassword {WRITER_PW}\n")
    (home / ".netrc").chmod(0o600)
    (home / "fake.pdf").write_bytes(not_a_pdf_html())

    s = Pty(["cadaver", f"{world.dav_url}/{CENTRE_A}/{folder}/"], home,
            {"HOME": str(home), "PATH": os.environ["PATH"], "TERM": "dumb", "LANG": "C.UTF-8"})
    try:
        s.expect(b"(y/n)")          # the self-signed certificate: accept it
        s.send("y")
        s.expect(b"dav:")
        s.send("ls")
        listing = s.expect(b"dav:").decode("utf-8", "replace")
        s.send("get brief.pdf got.pdf")
        got = s.expect(b"dav:").decode("utf-8", "replace")
        s.send("put fake.pdf fake.pdf")
        put = s.expect(b"dav:").decode("utf-8", "replace")
        s.send("quit")
        rc = s.close()
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
    assert "succeeded" in listing and "brief.pdf" in listing and "tweede.pdf" in listing, listing
    assert "succeeded" in got, got
    assert (home / "got.pdf").read_bytes() == doc
    assert "failed" in put and "415" in put, put
    assert rc == 0
    assert sorted(n for f, n in committed(world, CENTRE_A) if f == folder) == ["brief.pdf", "tweede.pdf"]


# -- the client matrix -------------------------------------------------------------------------------------------
# Every WebDAV client POD MI and the centres script with, against one ordinary centre (PDF only, immutable): the
# uploader (its pinned client certificate) puts and lists what it sent but may not read it back; staff with a
# device password list and get (bytes compared by SHA-256), and remove only with the remove grant; every refused
# operation is an error in the client.
MX = with_check("03330003")
MX_UPLOADER, MX_READER, MX_REMOVER = "wdc-mx-podmi", "wdc-mx-reader", "wdc-mx-remover"
MATRIX_CLIENTS = ("curl", "rclone", "cadaver", "webdav4")


@dataclass
class Who:
    """How a client logs in: Basic (a device password) or a client certificate (PEM pair, and PKCS#12)."""
    user: str = ""
    password: str = ""
    cert: tuple[Path, Path] | None = None
    p12: Path | None = None


@pytest.fixture(scope="module")
def mx(world, tmp_path_factory):
    from tests.machinecert import add_machine, as_pkcs12

    tmp = tmp_path_factory.mktemp("matrix")
    a = world.admin
    a.add_institution(MX, "OCMW Klanten", "active")
    cert = add_machine(world, tmp, MX_UPLOADER)
    who = {"uploader": Who(cert=cert, p12=as_pkcs12(*cert))}
    for name, remove in ((MX_READER, False), (MX_REMOVER, True)):
        a.add_account(name, "staff", password=f"{name}-password-1")
        a.grant(name, MX, can_remove=remove)
        who[name] = Who(name, a.create_device_password(name, "client matrix")[1])
    return who


class CurlClient:
    def __init__(self, world, who: Who, tmp: Path):
        self.base, self.tmp = world.dav_url, tmp
        self.args = ["curl", "-sS", "-f", "--max-time", "30", "--cacert", str(world.config.tls_cert_path)]
        self.args += ["--cert", str(who.cert[0]), "--key", str(who.cert[1])] if who.cert else \
            ["-u", f"{who.user}:{who.password}"]

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.args + list(args), capture_output=True, timeout=60)

    def put(self, remote: str, local: Path) -> bool:
        return self._run("-T", str(local), self.base + quote(remote)).returncode == 0

    def get(self, remote: str, local: Path) -> bool:
        return self._run("-o", str(local), self.base + quote(remote)).returncode == 0

    def rm(self, remote: str) -> bool:
        return self._run("-X", "DELETE", self.base + quote(remote)).returncode == 0

    def ls(self, remote: str) -> list[str]:
        p = self._run("-X", "PROPFIND", "-H", "Depth: 1", self.base + quote(remote))
        assert p.returncode == 0, p.stderr
        hrefs = [unquote(h) for h in re.findall(rb"<D:href>([^<]*)</D:href>", p.stdout)]
        return [h.rstrip("/").rsplit("/", 1)[-1] for h in hrefs if h.rstrip("/") != ("/dav" + remote).rstrip("/")]


class RcloneClient:
    def __init__(self, world, who: Who, tmp: Path):
        home = tmp / "rclone-home"
        home.mkdir(exist_ok=True)
        self.env = dict(os.environ, HOME=str(home), RCLONE_CONFIG=str(home / "rclone.conf"),
                        RCLONE_CONFIG_X_TYPE="webdav", RCLONE_CONFIG_X_URL=world.dav_url, RCLONE_CONFIG_X_VENDOR="other")
        self.flags = ["--ca-cert", str(world.config.tls_cert_path), "--retries", "1", "--low-level-retries", "1"]
        if who.cert:
            self.flags += ["--client-cert", str(who.cert[0]), "--client-key", str(who.cert[1])]
        else:
            obscured = subprocess.run(["rclone", "obscure", who.password], capture_output=True, text=True,
                                      check=True).stdout.strip()
            self.env.update(RCLONE_CONFIG_X_USER=who.user, RCLONE_CONFIG_X_PASS=obscured)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["rclone", *args, *self.flags], env=self.env, capture_output=True, text=True,
                              timeout=60)

    def put(self, remote: str, local: Path) -> bool:
        return self._run("copyto", str(local), "X:" + remote).returncode == 0

    def get(self, remote: str, local: Path) -> bool:
        return self._run("copyto", "X:" + remote, str(local)).returncode == 0 and local.exists()

    def rm(self, remote: str) -> bool:
        return self._run("deletefile", "X:" + remote).returncode == 0

    def ls(self, remote: str) -> list[str]:
        p = self._run("lsf", "X:" + remote)
        assert p.returncode == 0, p.stderr
        return [ln.rstrip("/") for ln in p.stdout.splitlines() if ln.strip()]


class CadaverClient:
    """One scripted cadaver session per operation, on a pseudo-terminal (it asks about the server certificate
    there); Basic credentials from ~/.netrc, a client certificate (PKCS#12) set before the connection opens."""

    def __init__(self, world, who: Who, tmp: Path):
        self.base = world.dav_url
        self.p12 = who.p12
        self.home = tmp / f"cadaver-home-{who.user or 'cert'}"
        self.home.mkdir(exist_ok=True)
        if not who.cert:
            (self.home / ".netrc").write_text(f"machine 127.0.0.1\nlogin {who.user}\npassword {who.password}\n")
            (self.home / ".netrc").chmod(0o600)

    def _session(self, directory: str, command: str) -> str:
        s = Pty(["cadaver"], self.home,
                {"HOME": str(self.home), "PATH": os.environ["PATH"], "TERM": "dumb", "LANG": "C.UTF-8"})
        try:
            s.expect(b"dav:")
            if self.p12:
                s.send(f"set client-cert {self.p12}")
                s.expect(b"dav:")
            s.send(f"open {self.base + quote(directory)}")
            s.expect(b"(y/n)")  # the self-signed server certificate
            s.send("y")
            s.expect(b"dav:")
            s.send(command)
            out = s.expect(b"dav:").decode("utf-8", "replace")
            s.send("quit")
            s.close()
        finally:
            if s.proc.poll() is None:
                s.proc.kill()
        return out

    @staticmethod
    def _split(remote: str) -> tuple[str, str]:
        d, _, name = remote.rpartition("/")
        return d + "/", name

    def put(self, remote: str, local: Path) -> bool:
        d, name = self._split(remote)
        return "succeeded" in self._session(d, f'put "{local}" "{name}"')

    def get(self, remote: str, local: Path) -> bool:
        d, name = self._split(remote)
        return "succeeded" in self._session(d, f'get "{name}" "{local}"') and local.exists()

    def rm(self, remote: str) -> bool:
        d, name = self._split(remote)
        return "succeeded" in self._session(d, f'rm "{name}"')

    def ls(self, remote: str) -> list[str]:
        out = self._session(remote, "ls")
        if "collection is empty" in out:
            return []
        assert "succeeded" in out, out
        return [ln.split()[0] for ln in out.splitlines()[1:] if ln.startswith(" ") and ln.split()]


class Webdav4Client:
    def __init__(self, world, who: Who, tmp: Path):
        from webdav4.client import Client

        tls = ssl.create_default_context(cafile=str(world.config.tls_cert_path))
        if who.cert:
            tls.load_cert_chain(*map(str, who.cert))
        self.client = Client(world.dav_url, auth=None if who.cert else (who.user, who.password), verify=tls,
                             retry=False, timeout=30)

    def _ok(self, fn, *args) -> bool:
        from webdav4.client import ClientError
        from httpx import HTTPError

        try:
            fn(*args)
            return True
        except (ClientError, HTTPError) as exc:
            self.last_error = exc
            return False

    def put(self, remote: str, local: Path) -> bool:
        return self._ok(self.client.upload_file, str(local), remote)

    def get(self, remote: str, local: Path) -> bool:
        return self._ok(self.client.download_file, remote, str(local))

    def rm(self, remote: str) -> bool:
        return self._ok(self.client.remove, remote)

    def ls(self, remote: str) -> list[str]:
        return [e.rstrip("/").rsplit("/", 1)[-1] for e in self.client.ls(remote, detail=False)]


CLIENT_CLASSES = {"curl": CurlClient, "rclone": RcloneClient, "cadaver": CadaverClient, "webdav4": Webdav4Client}


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("client", MATRIX_CLIENTS)
def test_client_matrix(world, mx, client, tmp_path):
    folder = f"/{MX}/mx-{client}"
    make = CLIENT_CLASSES[client]
    up, reader, remover = (make(world, mx[w], tmp_path) for w in ("uploader", MX_READER, MX_REMOVER))
    mkcol = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
                            str(world.config.tls_cert_path), "--cert", str(mx["uploader"].cert[0]), "--key",
                            str(mx["uploader"].cert[1]), "-X", "MKCOL", world.dav_url + quote(folder + "/")],
                           capture_output=True, text=True, timeout=30)
    assert mkcol.stdout == "201", mkcol
    doc, other = tmp_path / "brief.pdf", tmp_path / "lezer.pdf"
    doc.write_bytes(minimal_pdf(f"delivered with {client}", pages=3))
    other.write_bytes(minimal_pdf("not to be stored"))
    problems = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    check(up.put(f"{folder}/brief.pdf", doc), "uploader: put failed")
    check("brief.pdf" in up.ls(folder + "/"), "uploader: its upload not listed")
    check(not up.get(f"{folder}/brief.pdf", tmp_path / "by-uploader.pdf"), "uploader: get was not refused")
    check("brief.pdf" in reader.ls(folder + "/"), "reader: not listed")
    got = tmp_path / "got.pdf"
    check(reader.get(f"{folder}/brief.pdf", got) and sha(got) == sha(doc), "reader: get failed or other bytes")
    check(not reader.put(f"{folder}/lezer.pdf", other), "reader: put was not refused")
    check(not reader.rm(f"{folder}/brief.pdf"), "reader: remove was not refused")
    check(remover.rm(f"{folder}/brief.pdf"), "remover: remove failed")
    check("brief.pdf" not in reader.ls(folder + "/"), "reader: still listed after the removal")
    assert not problems, f"{client}: " + "; ".join(problems)
    with world.repo.read() as c:
        rows = c.execute(sa.text("select name, state from documents where institution_id = :i and folder = :f "
                                 "and state in ('committed', 'archived')"), {"i": MX, "f": f"mx-{client}"}).all()
    assert sorted(map(tuple, rows)) == [("brief.pdf", "archived")]
