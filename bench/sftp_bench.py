#!/usr/bin/env python3
"""SFTP benchmark: the Institutional Pages gateway against OpenSSH's ``internal-sftp``.

One run starts both servers on free 127.0.0.1 ports, gives them the same documents, drives them with the
same client (Debian's OpenSSH ``sftp``, same cipher/KEX/MAC/host-key algorithm) and prints a table of
gateway/sshd ratios against the targets.  See bench/README.md.

    .venv/bin/python bench/sftp_bench.py            # full run (1 GiB, 10,000 docs, 2,000 x 200 KB, 100 sessions,
                                                    # 2,000 x 200 KB uploads)
    .venv/bin/python bench/sftp_bench.py --quick    # smoke run, < 60 s
    .venv/bin/python bench/sftp_bench.py --peer-only --quick   # the sshd side alone
    .venv/bin/python bench/sftp_bench.py --quick --floor       # + the stack floor, a bare asyncssh server

The gateway is a black box driven through its CLI (``instpages``); sshd is a throwaway ``/usr/sbin/sshd -D``
with its own host key and config file.  Everything lives in one temp dir that is removed at the end, also
on Ctrl-C, SIGTERM and errors; every server started here is stopped here.
"""
from __future__ import annotations

import argparse
import contextlib
import getpass
import io
import json
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (BenchError, enterprise_number, free_port, median, proc_ppids, raise_interrupt, seaweed,
                    sha256_file, tail,
                    vmrss_kib)

REPO = Path(__file__).resolve().parent.parent
SSHD = "/usr/sbin/sshd"
SFTP = shutil.which("sftp") or "/usr/bin/sftp"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
SSH_KEYSCAN = shutil.which("ssh-keyscan") or "/usr/bin/ssh-keyscan"

CIPHER = "aes128-gcm@openssh.com"
MAC = "hmac-sha2-256-etm@openssh.com"  # not used with an AEAD cipher, pinned anyway
KEX = "curve25519-sha256"
HOST = "127.0.0.1"

SCENARIOS = ("get", "put", "ls", "small", "sessions", "ingest")
MB = 1_000_000  # throughput is reported in MB/s (10^6 bytes per second)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------------
# Small helpers


def wait_for_ssh_banner(port: int, proc: subprocess.Popen, timeout: float, what: str, logfile: Path | None) -> None:
    """Wait (bounded) until the port accepts a TCP connection and says SSH-."""
    deadline = time.monotonic() + timeout
    last_err: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with code {proc.returncode} before listening{tail(logfile)}")
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                s.settimeout(5)
                banner = s.recv(256)
                if banner.startswith(b"SSH-"):
                    return
                last_err = BenchError(f"unexpected banner {banner[:60]!r}")
        except OSError as exc:
            last_err = exc
        time.sleep(0.1)
    raise BenchError(f"{what} did not listen on {HOST}:{port} within {timeout:.0f} s ({last_err}){tail(logfile)}")


def run(cmd: list[str], timeout: float, what: str, **kw) -> subprocess.CompletedProcess:
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what}: timed out after {timeout:.0f} s: {shlex.join(cmd)}") from exc
    if cp.returncode != 0:
        raise BenchError(
            f"{what}: exit {cp.returncode}: {shlex.join(cmd)}\n{cp.stdout[-2000:]}{cp.stderr[-2000:]}"
        )
    return cp


def stop_process(proc: subprocess.Popen | None, what: str, grace: float = 10.0) -> dict | None:
    """SIGTERM ``proc``, then SIGKILL after ``grace`` seconds.

    The servers run in the bench's own process group rather than in sessions of their own: on a busy
    machine pids wrap within minutes (pid_max is often 32768), and a server that leads its own group is
    one more group id that a stale ``kill -- -PGID`` elsewhere could hit. For the same reason a process
    that has already been reaped is never signalled.
    Returns how the stop went: seconds from SIGTERM to exit, whether SIGKILL was needed, the exit status.
    """
    if proc is None or proc.poll() is not None:
        return None
    t0 = time.perf_counter()
    killed = False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        proc.send_signal(sig)  # Popen.send_signal does nothing once the child is reaped
        killed = sig == signal.SIGKILL
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    info = {"seconds": round(time.perf_counter() - t0, 2), "sigkill": killed, "returncode": proc.poll()}
    if proc.poll() is None:
        log(f"warning: {what} (pid {proc.pid}) did not stop")
    elif killed:
        log(f"warning: {what} ignored SIGTERM for {grace:.0f} s and was killed")
    else:
        log(f"{what} stopped {info['seconds']:.2f} s after SIGTERM (exit {proc.returncode})")
    return info


# --------------------------------------------------------------------------------------------------------
# RSS of a process tree


def tree_pids(root: int) -> list[int]:
    ppids = proc_ppids()
    children: dict[int, list[int]] = {}
    for pid, ppid in ppids.items():
        children.setdefault(ppid, []).append(pid)
    result, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in ppids or pid == root:
            result.append(pid)
        todo.extend(children.get(pid, ()))
    return result


def tree_rss_kib(root: int) -> tuple[int, int]:
    pids = tree_pids(root)
    return sum(vmrss_kib(p) for p in pids), len(pids)


class RssSampler:
    """Samples VmRSS of ``pid`` and all its descendants in a thread; keeps the peak of the sum and the peak of
    each process (``peak_proc_kib``: the largest any one process reached, e.g. one gateway worker of
    ``serve --workers N``, whose target is per worker process).

    VmRSS is read every ``interval`` s; the set of descendants (a scan of /proc) is refreshed every
    ``tree_interval`` s, so the sampling itself stays cheap on a 2-core machine.
    """

    def __init__(self, pid: int, interval: float = 0.02, tree_interval: float = 0.2):
        self.pid = pid
        self.interval = interval
        self.tree_interval = tree_interval
        self.peak_kib = 0
        self.peak_procs = 0
        self.peak_proc_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        pids: list[int] = []
        next_scan = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_scan:
                pids = tree_pids(self.pid)
                next_scan = now + self.tree_interval
            each = [vmrss_kib(p) for p in pids]
            kib = sum(each)
            self.peak_proc_kib = max(self.peak_proc_kib, *each, 0)
            self.samples += 1
            if kib > self.peak_kib:
                self.peak_kib, self.peak_procs = kib, len(pids)
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def peak_mb(self) -> float:
        return self.peak_kib * 1024 / MB

    @property
    def peak_proc_mb(self) -> float:
        return self.peak_proc_kib * 1024 / MB


# --------------------------------------------------------------------------------------------------------
# Test documents: real PDFs made with pikepdf, patched in place for speed


@dataclass
class PdfTemplate:
    data: bytes  # a complete PDF whose image stream is all zeros and whose Title is a marker
    image_offset: int
    image_len: int
    title_offset: int
    title_len: int


TITLE_LEN = 24


def make_pdf_template(width: int, height: int, out: Path | None = None) -> PdfTemplate | tuple[int, int, int]:
    """One page showing an uncompressed 8-bit gray ``width`` x ``height`` image.

    The image bytes and the Title are patched afterwards (same length, so the xref table stays valid),
    which makes thousands of distinct real PDFs cheap.  With ``out``, the PDF is written there and
    (image_offset, image_len, title_offset) is returned instead (for the big file).
    """
    import pikepdf
    from pikepdf import Dictionary, Name

    n = width * height
    pdf = pikepdf.new()
    img = pikepdf.Stream(pdf, bytes(n))
    img.Type = Name.XObject
    img.Subtype = Name.Image
    img.Width = width
    img.Height = height
    img.ColorSpace = Name.DeviceGray
    img.BitsPerComponent = 8
    pdf.add_blank_page(page_size=(595, 842))
    page = pdf.pages[0]
    page.Resources = Dictionary(XObject=Dictionary(Im0=img))
    page.Contents = pdf.make_stream(b"q 595 0 0 842 0 0 cm /Im0 Do Q")
    pdf.docinfo["/Title"] = "0" * TITLE_LEN
    save_kw = dict(
        compress_streams=False,
        stream_decode_level=pikepdf.StreamDecodeLevel.none,
        object_stream_mode=pikepdf.ObjectStreamMode.disable,
    )
    marker_img = b"stream\n" + bytes(min(64, n))
    marker_title = b"/Title (" + b"0" * TITLE_LEN + b")"
    if out is None:
        buf = io.BytesIO()
        pdf.save(buf, **save_kw)
        data = buf.getvalue()
        io_ = data.find(marker_img)
        it = data.find(marker_title)
        if io_ < 0 or it < 0:
            raise BenchError("PDF template: markers not found")
        return PdfTemplate(data, io_ + 7, n, it + 8, TITLE_LEN)
    pdf.save(out, **save_kw)
    del pdf, img
    size = out.stat().st_size
    with open(out, "rb") as f:
        head = f.read(65536)
        f.seek(max(0, size - 65536))
        tail_ = f.read()
    io_ = head.find(marker_img)
    it = head.find(marker_title)
    if it >= 0:
        title_off = it + 8
    else:
        it = tail_.find(marker_title)
        title_off = max(0, size - 65536) + it + 8
    if io_ < 0 or it < 0:
        raise BenchError("big PDF: markers not found")
    return io_ + 7, n, title_off


class RandomPool:
    """A pool of random bytes; slices at distinct offsets give distinct random-ish contents quickly."""

    def __init__(self, size: int, seed: int):
        data = random.Random(seed).randbytes(size)
        self.size = size
        self.doubled = data + data

    def chunk(self, offset: int, n: int) -> bytes:
        if n > self.size:
            raise ValueError("chunk larger than pool")
        o = offset % self.size
        return self.doubled[o : o + n]


def title_for(kind: str, i: int) -> bytes:
    t = f"{kind}-{i:06d}".encode()
    if len(t) > TITLE_LEN:
        raise ValueError(t)
    return t.ljust(TITLE_LEN, b"_")


def write_docs(dirpath: Path, names: list[str], kind: str, width: int, height: int, pool: RandomPool,
               stride: int) -> int:
    tpl = make_pdf_template(width, height)
    assert isinstance(tpl, PdfTemplate)
    dirpath.mkdir(parents=True, exist_ok=True)
    buf = bytearray(tpl.data)
    for i, name in enumerate(names):
        buf[tpl.image_offset : tpl.image_offset + tpl.image_len] = pool.chunk(i * stride, tpl.image_len)
        buf[tpl.title_offset : tpl.title_offset + tpl.title_len] = title_for(kind, i)
        with open(dirpath / name, "wb") as f:
            f.write(buf)
    return len(buf) * len(names)


def write_big_pdf(path: Path, approx_bytes: int, pool: RandomPool) -> int:
    width = 4096
    height = max(1, -(-approx_bytes // width))
    img_off, img_len, title_off = make_pdf_template(width, height, out=path)
    step = 16 << 20
    with open(path, "r+b") as f:
        f.seek(title_off)
        f.write(title_for("big", 0))
        f.seek(img_off)
        done, k = 0, 0
        while done < img_len:
            n = min(step, img_len - done)
            f.write(pool.chunk(k * 1_048_573, n))
            done += n
            k += 1
    return path.stat().st_size


@dataclass
class DataSet:
    root: Path
    big: Path | None = None
    big_size: int = 0
    big_sha: str = ""
    ls_names: list[str] = field(default_factory=list)
    small_names: list[str] = field(default_factory=list)
    small_doc_size: int = 0
    sess_names: list[str] = field(default_factory=list)
    ingest_names: list[str] = field(default_factory=list)

    @property
    def ls_dir(self) -> Path:
        return self.root / "ls"

    @property
    def small_dir(self) -> Path:
        return self.root / "small"

    @property
    def sess_dir(self) -> Path:
        return self.root / "sess"

    @property
    def ingest_dir(self) -> Path:
        return self.root / "ingest"


def generate_data(root: Path, args, scenarios: set[str]) -> DataSet:
    ds = DataSet(root)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if scenarios & {"get", "put"}:
        pool = RandomPool(64 << 20, seed=1)
        ds.big = root / "big.pdf"
        ds.big_size = write_big_pdf(ds.big, int(args.size_gib * (1 << 30)), pool)
        ds.big_sha = sha256_file(ds.big)
        del pool
    pool = RandomPool(8 << 20, seed=2)
    if "ls" in scenarios:
        ds.ls_names = [f"doc-{i:05d}.pdf" for i in range(args.ls_docs)]
        write_docs(ds.ls_dir, ds.ls_names, "ls", 64, 32, pool, stride=337)
    if "small" in scenarios:
        ds.small_names = [f"doc-{i:05d}.pdf" for i in range(args.small_files)]
        write_docs(ds.small_dir, ds.small_names, "sm", 512, 400, pool, stride=3331)
        ds.small_doc_size = (ds.small_dir / ds.small_names[0]).stat().st_size
    if "sessions" in scenarios:
        ds.sess_names = [f"s-{i:04d}.pdf" for i in range(args.sessions)]
        write_docs(ds.sess_dir, ds.sess_names, "se", 512, 400, pool, stride=7919)
    if "ingest" in scenarios:
        ds.ingest_names = [f"in-{i:05d}.pdf" for i in range(args.ingest_docs)]
        write_docs(ds.ingest_dir, ds.ingest_names, "in", 512, 400, pool, stride=4099)
    log(f"test data generated in {time.perf_counter() - t0:.1f} s under {root}")
    return ds


# --------------------------------------------------------------------------------------------------------
# The client: OpenSSH sftp, identical options for both servers


def client_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SSH_AUTH_SOCK", None)
    env.pop("SSH_AGENT_PID", None)
    return env


@dataclass
class Login:
    user: str
    key: Path


@dataclass
class Target:
    """How the client reaches one server, and where the bench's tree lives on it."""

    name: str
    port: int
    base: str  # remote prefix of /<centre> ("" for the gateway and the floor, the served directory for sshd)
    reader: Login
    writer: Login
    hostkey_alg: str
    pid: int = 0
    served: Path | None = None  # the plain directory behind it (sshd, floor: the same one); None: the gateway

    def path(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/")] + list(parts)) if self.base else "/" + "/".join(parts)

    def local(self, *parts: str) -> Path:
        """Where ``path(*parts)`` is on this machine's disk (plain servers only)."""
        assert self.served is not None, self.name
        return self.served.joinpath(*parts)


def sftp_cmd(t: Target, login: Login, batch: Path) -> list[str]:
    return [
        SFTP,
        "-F", "/dev/null",
        "-c", CIPHER,
        "-o", f"MACs={MAC}",
        "-o", f"KexAlgorithms={KEX}",
        "-o", f"HostKeyAlgorithms={t.hostkey_alg}",
        "-o", "Compression=no",
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "PreferredAuthentications=publickey",
        "-o", "ControlMaster=no",
        "-o", "ControlPath=none",
        "-o", "ConnectTimeout=30",
        "-o", "LogLevel=ERROR",
        "-i", str(login.key),
        "-P", str(t.port),
        "-b", str(batch),
        f"{login.user}@{HOST}",
    ]


def q(path: str | Path) -> str:
    s = str(path)
    if '"' in s or "\n" in s:
        raise BenchError(f"path not usable in an sftp batch: {s!r}")
    return f'"{s}"'


class Client:
    def __init__(self, work: Path):
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self._n = 0
        self.env = client_env()

    def batch_file(self, lines: list[str]) -> Path:
        self._n += 1
        p = self.work / f"batch-{self._n:05d}.txt"
        p.write_text("\n".join(lines) + "\n")
        return p

    def session(self, t: Target, login: Login, lines: list[str], timeout: float, what: str,
                stdout_path: Path | None = None) -> float:
        """One sftp -b session; returns its wall time (perf_counter) including login."""
        batch = self.batch_file(lines)
        cmd = sftp_cmd(t, login, batch)
        out_path = stdout_path or (self.work / "last-stdout.txt")
        err_path = self.work / "last-stderr.txt"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.env)
            try:
                rc = proc.wait(timeout=timeout)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            elapsed = time.perf_counter() - t0
        batch.unlink()
        if rc != 0:
            raise BenchError(f"{t.name}: {what}: sftp exit {rc}{tail(err_path, 15)}{tail(out_path, 10)}")
        return elapsed


# --------------------------------------------------------------------------------------------------------
# Servers


def make_keypair(path: Path, kind: str = "ed25519", bits: int = 0, comment: str = "bench") -> Path:
    cmd = [SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)]
    if bits:
        cmd[4:4] = ["-b", str(bits)]
    run(cmd, 60, "ssh-keygen")
    return path


def keyscan(port: int) -> dict[str, str]:
    """{key type: public key line} offered by the server on ``port``."""
    cp = subprocess.run([SSH_KEYSCAN, "-T", "10", "-p", str(port), HOST], capture_output=True, text=True,
                        timeout=60, stdin=subprocess.DEVNULL)
    out = {}
    for line in cp.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            out[parts[1]] = line
    return out


HOSTKEY_PREFERENCE = [
    # (key type from keyscan, HostKeyAlgorithms value, ssh-keygen -t)
    ("ssh-ed25519", "ssh-ed25519", "ed25519"),
    ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256", "ecdsa"),
    ("ssh-rsa", "rsa-sha2-256", "rsa"),
]


class SshdServer:
    """A throwaway OpenSSH sshd serving ``root`` with internal-sftp, pubkey auth only."""

    def __init__(self, work: Path, authorized: list[Path], hostkey_kind: str, hostkey_bits: int):
        self.work = work
        self.root = work / "root"  # the served directory
        self.authorized = authorized
        self.hostkey_kind = hostkey_kind
        self.hostkey_bits = hostkey_bits
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.created_run_sshd = False
        self.log = work / "sshd.log"

    def start(self) -> None:
        if not os.path.exists(SSHD):
            raise BenchError(f"{SSHD} not found: run scripts/install-bench-deps.sh")
        self.work.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(exist_ok=True)
        hostkey = make_keypair(self.work / "host_key", self.hostkey_kind, self.hostkey_bits, "bench-sshd-host")
        authkeys = self.work / "authorized_keys"
        authkeys.write_text("".join(Path(str(k) + ".pub").read_text() for k in self.authorized))
        authkeys.chmod(0o600)
        if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", mode=0o755)
            self.created_run_sshd = True
        self.port = free_port()
        cfg = self.work / "sshd_config"
        cfg.write_text(
            "\n".join(
                [
                    f"ListenAddress {HOST}:{self.port}",
                    f"HostKey {hostkey}",
                    "PidFile none",
                    f"AuthorizedKeysFile {authkeys}",
                    "AuthorizedKeysCommand none",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "HostbasedAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "UseDNS no",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "PermitTTY no",
                    "X11Forwarding no",
                    "AllowTcpForwarding no",
                    "AllowAgentForwarding no",
                    "PermitUserEnvironment no",
                    "MaxStartups 1000",
                    "MaxSessions 10",
                    "LoginGraceTime 120",
                    "LogLevel ERROR",
                    "Subsystem sftp internal-sftp",
                    "ForceCommand internal-sftp",
                    "",
                ]
            )
        )
        run([SSHD, "-t", "-f", str(cfg)], 30, "sshd -t (config check)")
        logf = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=logf, stderr=logf,
                                         stdin=subprocess.DEVNULL, start_new_session=False)
        finally:
            logf.close()
        wait_for_ssh_banner(self.port, self.proc, 20, "sshd", self.log)
        log(f"sshd pid {self.proc.pid} on {HOST}:{self.port}, serving {self.root}")

    def stop(self) -> None:
        stop_process(self.proc, "sshd")
        self.proc = None
        if self.created_run_sshd:
            with contextlib.suppress(OSError):
                os.rmdir("/run/sshd")

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0


FLOOR_SCRIPT = REPO / "bench" / "floor" / "sftp_floor.py"


class ServerProcess:
    """What the floor and the gateway share: a server started as a child process (``proc``) that logs to ``log``;
    ``what`` names it in messages, ``grace`` is how long it gets to stop after SIGTERM."""

    what = "server"
    grace = 10.0
    proc: subprocess.Popen | None
    log: Path
    stop_info: dict | None

    def stop(self) -> None:
        info = stop_process(self.proc, self.what, grace=self.grace)
        if info is not None:
            self.stop_info = info
        self.proc = None

    def death_report(self) -> str | None:
        """None while the server runs; else how it ended, with the end of its log."""
        if self.proc is None or self.proc.poll() is None:
            return None
        rc = self.proc.returncode
        how = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
        return f"{self.what} (pid {self.proc.pid}) is gone: {how}{tail(self.log, 15)}"

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0


class FloorServer(ServerProcess):
    """The stack floor (``--floor``): bench/floor/sftp_floor.py, a bare asyncssh SFTP server chrooted to the
    directory sshd serves, with the same authorized keys, a host key of the same type and the gateway's number
    of worker processes."""

    what = "sftp_floor"

    def __init__(self, work: Path, root: Path, authorized: list[Path], hostkey_kind: str, hostkey_bits: int,
                 workers: int, sshcompat: bool):
        self.work = work
        self.root = root
        self.authorized = authorized
        self.hostkey_kind = hostkey_kind
        self.hostkey_bits = hostkey_bits
        self.workers = workers
        self.sshcompat = sshcompat
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log = work / "floor.log"
        self.cmd: list[str] = []
        self.stop_info: dict | None = None

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        hostkey = self.work / "host_key"
        if not hostkey.exists():
            make_keypair(hostkey, self.hostkey_kind, self.hostkey_bits, "bench-floor-host")
        authkeys = self.work / "authorized_keys"
        authkeys.write_text("".join(Path(str(k) + ".pub").read_text() for k in self.authorized))
        authkeys.chmod(0o600)
        self.port = free_port()
        self.cmd = [sys.executable, str(FLOOR_SCRIPT), "--port", str(self.port), "--host", HOST,
                    "--root", str(self.root), "--authorized-keys", str(authkeys), "--host-key", str(hostkey),
                    "--workers", str(self.workers)] + (["--sshcompat"] if self.sshcompat else [])
        start = self.log.stat().st_size if self.log.exists() else 0
        logf = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=client_env(), stdout=logf, stderr=logf,
                                         stdin=subprocess.DEVNULL, start_new_session=False)
        finally:
            logf.close()
        wait_for_ssh_banner(self.port, self.proc, 30, "sftp_floor", self.log)
        # the banner comes from the first worker that listens; wait for all of them (SO_REUSEPORT spreads
        # connections over the sockets that exist when they arrive)
        deadline = time.monotonic() + 30
        while b" listening on " not in self.log.read_bytes()[start:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"sftp_floor: not all {self.workers} workers listened{tail(self.log)}")
            time.sleep(0.1)
        log(f"floor pid {self.proc.pid} on {HOST}:{self.port}, {self.workers} worker(s)"
            f"{' with sshcompat' if self.sshcompat else ''}, serving {self.root}")



def gateway_base_cmd(args) -> list[str]:
    if args.gateway_cmd:
        return shlex.split(args.gateway_cmd)
    exe = REPO / ".venv" / "bin" / "instpages"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "gateway"]


class GatewayServer(ServerProcess):
    """The gateway, through its CLI: init, institution, two accounts, serve."""

    what, grace = "instpages serve", 15.0

    def __init__(self, work: Path, args, centre: str, up_key: Path, arch_key: Path, max_size: int):
        self.work = work
        self.args = args
        self.data_dir = work / "data"
        self.centre = centre
        self.up_key = up_key
        self.arch_key = arch_key
        self.max_size = max_size
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log = work / "serve.log"
        self.base = gateway_base_cmd(args)
        self.env = client_env()
        self.env.update(getattr(args, "blob_env", {}))  # --blobs s3: the SeaweedFS main() started
        self.starts = 0
        self.stop_info: dict | None = None

    def cli(self, *argv: str, timeout: float = 120) -> str:
        cp = run(self.base + list(argv) + ["--data-dir", str(self.data_dir)], timeout,
                 f"instpages {' '.join(argv[:2])}", cwd=REPO, env=self.env)
        return cp.stdout

    def setup(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.cli("init")
        self.cli("institution", "add", self.centre, "--name", "Bench centre", "--status", "active")
        self.cli("account", "add", "bench-up", "--role", "uploader", "--ssh-key", str(self.up_key) + ".pub")
        self.cli("account", "add", "bench-arch", "--role", "archiver", "--institution", self.centre,
                 "--ssh-key", str(self.arch_key) + ".pub")

    def start(self) -> None:
        self.port = free_port()
        env = dict(self.env)
        env.update(
            INSTPAGES_SFTP_PORT=str(self.port),
            INSTPAGES_SFTP_HOST=HOST,
            INSTPAGES_DOCUMENTS_MAX_SIZE=str(self.max_size),
        )
        # the other front-end must not take a fixed port that another gateway on this machine may hold
        if self.args.webdav == "off":
            env["INSTPAGES_WEBDAV_ENABLED"] = "false"
        else:
            env["INSTPAGES_WEBDAV_HOST"] = HOST
            env["INSTPAGES_WEBDAV_PORT"] = str(free_port())
        self.starts += 1
        logf = open(self.log, "ab")
        try:
            workers = ["--workers", str(self.args.workers)] if self.args.workers else []
            self.proc = subprocess.Popen(self.base + ["serve", *workers, "--data-dir", str(self.data_dir)], cwd=REPO,
                                         env=env, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                                         start_new_session=False)
        finally:
            logf.close()
        wait_for_ssh_banner(self.port, self.proc, 60, "instpages serve", self.log)
        log(f"gateway pid {self.proc.pid} on {HOST}:{self.port}, data dir {self.data_dir}")



# --------------------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class Row:
    key: str
    label: str
    unit: str
    better: str  # "higher" | "lower" | "info"
    target: str = ""
    target_ratio: float | None = None  # ratio target (gateway/sshd)
    target_abs: float | None = None  # absolute target on the gateway figure (RSS)
    sshd: list[float] = field(default_factory=list)
    gateway: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)  # --floor: the bare asyncssh server
    note: str = ""
    error: str = ""

    def med(self, side: str) -> float | None:
        xs = getattr(self, side)
        return median(xs) if xs else None

    def ratio_of(self, side: str) -> float | None:
        """``side``'s figure over sshd's (gateway/sshd, floor/sshd)."""
        if self.target_abs is not None:
            return None  # an absolute target: a ratio to sshd's process tree would mean nothing
        s, g = self.med("sshd"), self.med(side)
        if s is None or g is None or s == 0:
            return None
        return g / s

    def verdict_of(self, side: str) -> str:
        """Whether ``side`` meets the target; for the floor: whether the target is in reach of the stack."""
        if self.error:
            return "FAIL"
        g = self.med(side)
        if g is None:
            return "-"
        if self.target_abs is not None:
            ok = g >= self.target_abs if self.better == "higher" else g <= self.target_abs
            return "PASS" if ok else "MISS"
        r = self.ratio_of(side)
        if r is None or self.target_ratio is None:
            return "-"
        ok = r >= self.target_ratio if self.better == "higher" else r <= self.target_ratio
        return "PASS" if ok else "MISS"

    @property
    def ratio(self) -> float | None:
        return self.ratio_of("gateway")

    @property
    def verdict(self) -> str:
        return self.verdict_of("gateway")


def fmt_num(x: float | None, unit: str) -> str:
    if x is None:
        return "-"
    if unit == "MB/s" or unit == "MB":
        return f"{x:,.1f} {unit}"
    if unit == "s":
        return f"{x:,.3f} s" if x < 10 else f"{x:,.2f} s"
    if unit == "docs/s":
        return f"{x:,.0f} {unit}"
    return f"{x:,.2f} {unit}"


def print_table(rows: list[Row], out=sys.stdout, floor: bool = False) -> None:
    """The results; with ``floor`` (--floor) also the floor's figure, floor/sshd and whether the floor meets the
    target (``floor result``: MISS = out of reach for the stack itself)."""
    head = ["scenario", "sshd", "gateway", "ratio", "target", "result"]
    if floor:
        head = ["scenario", "sshd", "gateway", "floor", "ratio", "floor/sshd", "target", "result", "floor result"]
    body = []
    for r in rows:
        cells = {
            "scenario": r.label,
            "sshd": fmt_num(r.med("sshd"), r.unit),
            "gateway": fmt_num(r.med("gateway"), r.unit),
            "floor": fmt_num(r.med("floor"), r.unit),
            "ratio": fmt_ratio(r.ratio_of("gateway")),
            "floor/sshd": fmt_ratio(r.ratio_of("floor")),
            "target": r.target or "-",
            "result": r.verdict if r.better != "info" or r.error else "info",
            "floor result": r.verdict_of("floor") if r.better != "info" or r.error else "info",
        }
        body.append([cells[h] for h in head])
    left = {head.index("scenario"), head.index("target")}
    widths = [max(len(head[i]), *(len(b[i]) for b in body)) if body else len(head[i]) for i in range(len(head))]
    line = "  ".join(h.ljust(widths[i]) if i in left else h.rjust(widths[i]) for i, h in enumerate(head))
    print(line, file=out)
    print("-" * len(line), file=out)
    for b in body:
        print("  ".join(c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(b)), file=out)
    notes = [f"  {r.label}: {r.note}" for r in rows if r.note]
    notes += [f"  {r.label}: FAILED: {r.error.splitlines()[0]}" for r in rows if r.error]
    if notes:
        print("notes:", file=out)
        print("\n".join(notes), file=out)


def fmt_ratio(x: float | None) -> str:
    return f"{x:.2f}x" if x is not None else "-"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit in ("B", "KiB") else f"{n:.2g} {unit}" if n < 10 else f"{n:.0f} {unit}"
        n /= 1024
    return str(n)


class Bench:
    def __init__(self, args, tmp: Path, stack: contextlib.ExitStack):
        self.args = args
        self.tmp = tmp
        self.stack = stack
        self.scenarios = set(args.only) if args.only else set(SCENARIOS)
        self.centre = enterprise_number(2123456)  # 0212345668
        self.client = Client(tmp / "client")
        self.dl = tmp / "downloads"  # replaced by a tmpfs dir in setup() when there is room
        self.targets: list[tuple[Target, object]] = []  # (target, server)
        self.rows: dict[str, Row] = {}
        self.extra: dict[str, object] = {}
        self.gw: GatewayServer | None = None
        self.floor: FloorServer | None = None
        self.gw_run_sampler: RssSampler | None = None
        self.big_remote: dict[str, str] = {}
        self.failed = False

    # ---- setup --------------------------------------------------------------------------------------------

    def setup(self) -> None:
        a = self.args
        keys = self.tmp / "keys"
        keys.mkdir()
        up_key = make_keypair(keys / "uploader", comment="bench-up")
        arch_key = make_keypair(keys / "archiver", comment="bench-arch")
        self.ds = generate_data(self.tmp / "docs", a, self.scenarios)
        self.make_rows()
        self.dl = self.download_dir()
        log(f"client downloads go to {self.dl}")
        max_size = max(2 << 30, 2 * (self.ds.big_size or 0))

        hostkey_alg, hostkey_kind, hostkey_bits = "ssh-ed25519", "ed25519", 0
        if not a.peer_only:
            self.gw = GatewayServer(self.tmp / "gateway", a, self.centre, up_key, arch_key, max_size)
            self.stack.callback(self.gw.stop)
            log(f"gateway CLI: {shlex.join(self.gw.base)}")
            self.gw.setup()
            self.gw.start()
            offered = keyscan(self.gw.port)
            for ktype, alg, kind in HOSTKEY_PREFERENCE:
                if ktype in offered:
                    hostkey_alg, hostkey_kind = alg, kind
                    if kind == "rsa":
                        kf = self.tmp / "gw-hostkey.pub"
                        kf.write_text(offered[ktype].split(None, 1)[1] + "\n")
                        cp = run([SSH_KEYGEN, "-l", "-f", str(kf)], 30, "ssh-keygen -l")
                        hostkey_bits = int(cp.stdout.split()[0])
                    break
            else:
                log(f"warning: could not read the gateway's host key types ({sorted(offered)}); using ssh-ed25519")
            self.extra["gateway_host_key_types"] = sorted(offered)
        self.extra["host_key_algorithm"] = hostkey_alg

        sshd = SshdServer(self.tmp / "sshd", [up_key, arch_key], hostkey_kind, hostkey_bits)
        self.stack.callback(sshd.stop)
        sshd.start()
        me = getpass.getuser()
        self.sshd = sshd
        t_sshd = Target("sshd", sshd.port, str(sshd.root), Login(me, arch_key), Login(me, arch_key), hostkey_alg,
                        sshd.pid, served=sshd.root)
        self.targets.append((t_sshd, sshd))
        if self.gw is not None:
            t_gw = Target("gateway", self.gw.port, "", Login("bench-arch", arch_key), Login("bench-up", up_key),
                          hostkey_alg, self.gw.pid)
            self.targets.append((t_gw, self.gw))
            self.gw_run_sampler = RssSampler(self.gw.pid, interval=0.1, tree_interval=1.0)
            self.stack.enter_context(self.gw_run_sampler)
        if a.floor:
            # the directory sshd serves, chrooted: the floor's / is sshd's root, so its paths have no prefix
            self.floor = FloorServer(self.tmp / "floor", sshd.root, [up_key, arch_key], hostkey_kind, hostkey_bits,
                                     a.workers or os.cpu_count() or 1, a.floor_sshcompat)
            self.stack.callback(self.floor.stop)
            self.floor.start()
            self.extra["floor_cmd"] = self.floor.cmd
            t_floor = Target("floor", self.floor.port, "", Login(me, arch_key), Login(me, arch_key), hostkey_alg,
                             self.floor.pid, served=sshd.root)
            self.targets.append((t_floor, self.floor))
        # a first login on each: checks the options and warms both servers up
        for t, _ in self.targets:
            self.client.session(t, t.reader, ["ls /"] if t.name == "gateway" else [f"ls {q(t.path())}"], 60,
                                "first login")
        if self.gw is not None or self.floor is not None:
            time.sleep(1)
        label = "server RSS summed over its processes, idle after one login" if self.floor else \
            "gateway RSS, idle after one login"
        if self.gw is not None:
            kib, nproc = tree_rss_kib(self.gw.pid)
            r = self._info_row("rss_idle", label, "MB")
            r.gateway.append(kib * 1024 / MB)
            r.note = f"{nproc} process(es), {len(os.listdir(f'/proc/{self.gw.pid}/task'))} threads"
            if self.floor is not None:
                r.note = "gateway: " + r.note
            log(f"gateway idle RSS {kib * 1024 / MB:.1f} MB ({r.note})")
        if self.floor is not None:
            kib, nproc = tree_rss_kib(self.floor.pid)
            r = self._info_row("rss_idle", label, "MB")
            r.floor.append(kib * 1024 / MB)
            r.note += f"{'; ' if r.note else ''}floor: {nproc} process(es)"
            log(f"floor idle RSS {kib * 1024 / MB:.1f} MB ({nproc} process(es))")
        self.seed_sshd()

    def download_dir(self) -> Path:
        """Where the client writes what it downloads: tmpfs if it has room, so that the client's local disk
        writes are not part of what is measured (the servers' storage stays where --tmp-dir is)."""
        a = self.args
        need = 2 * (self.ds.big_size or 0) + 2 * self.ds.small_doc_size * max(a.small_files, a.sessions) + (64 << 20)
        cand = a.download_dir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
        if cand:
            try:
                st = os.statvfs(cand)
                if st.f_bavail * st.f_frsize >= need or a.download_dir:
                    d = Path(tempfile.mkdtemp(prefix="instpages-bench-dl-", dir=cand))
                    self.stack.callback(shutil.rmtree, d, True)
                    return d
            except OSError as exc:
                log(f"warning: cannot use {cand} for downloads ({exc})")
        d = self.tmp / "downloads"
        d.mkdir(exist_ok=True)
        return d

    # ---- seeding ------------------------------------------------------------------------------------------

    def _info_row(self, key: str, label: str, unit: str) -> Row:
        row = self.rows.setdefault(key, Row(key, label, unit, "info", target="(informational)"))
        return row

    def seed_sshd(self) -> None:
        """sshd side: plain copies (hard links where possible) into the served directory."""
        ds = self.ds
        t0 = time.perf_counter()
        croot = self.sshd.root / self.centre
        croot.mkdir(parents=True, exist_ok=True)
        (croot / "bench-put").mkdir(exist_ok=True)
        if ds.big is not None:
            (croot / "bench-big").mkdir(exist_ok=True)
            link_or_copy(ds.big, croot / "bench-big" / "big.pdf")
        for folder, src, names in self.folders():
            (croot / folder).mkdir(exist_ok=True)
            for n in names:
                link_or_copy(src / n, croot / folder / n)
        log(f"sshd side seeded by local copies in {time.perf_counter() - t0:.1f} s")
        self.big_remote["sshd"] = self.targets[0][0].path(self.centre, "bench-big", "big.pdf")
        for t, _ in self.targets:
            if t.name == "floor":  # the same file, through the floor's chroot
                self.big_remote["floor"] = t.path(self.centre, "bench-big", "big.pdf")

    def folders(self) -> list[tuple[str, Path, list[str]]]:
        ds = self.ds
        out = []
        if "ls" in self.scenarios:
            out.append(("bench-ls", ds.ls_dir, ds.ls_names))
        if "small" in self.scenarios:
            out.append(("bench-small", ds.small_dir, ds.small_names))
        if "sessions" in self.scenarios:
            out.append(("bench-sess", ds.sess_dir, ds.sess_names))
        return out

    def seed_gateway(self, folder: str) -> None:
        """Uploads one folder's documents through SFTP with the uploader account, in one timed session."""
        gw = self.gateway_target()
        if gw is None:
            return
        _, src, names = next(f for f in self.folders() if f[0] == folder)
        lines = [f"-mkdir {q(gw.path(self.centre, folder))}"]
        lines += [f"put {q(src / n)} {q(gw.path(self.centre, folder, n))}" for n in names]
        total = sum((src / n).stat().st_size for n in names)
        log(f"gateway: seeding {len(names)} docs into /{self.centre}/{folder} (one sftp session)")
        el = self.client.session(gw, gw.writer, lines, timeout=120 + 0.5 * len(names) + total / 2e6,
                                 what=f"seed upload of {folder}")
        row = self._info_row(f"seed_{folder}", f"seed: {len(names):,} puts into {folder}, 1 session", "s")
        row.gateway.append(el)
        row.note = (f"gateway took {el:.2f} s for {len(names):,} uploads = {len(names) / el:,.0f} docs/s, "
                    f"{total / MB / el:,.1f} MB/s (sshd side seeded by local copies)")
        log(f"  {row.note}")
        self.check_listing(gw, folder, len(names))

    def check_listing(self, t: Target, folder: str, expected: int) -> None:
        """The reader must see every seeded document (polls briefly in case commits are asynchronous)."""
        out = self.tmp / "listing.txt"
        deadline = time.monotonic() + 60
        seen = -1
        while time.monotonic() < deadline:
            self.client.session(t, t.reader, [f"ls -1 {q(t.path(self.centre, folder))}"], 300,
                                f"listing {folder}", stdout_path=out)
            seen = sum(1 for line in out.read_text(errors="replace").splitlines()
                       if line.strip().endswith(".pdf"))
            if seen >= expected:
                return
            time.sleep(1)
        raise BenchError(f"{t.name}: reader sees {seen} of {expected} documents in {folder}")

    def gateway_target(self) -> Target | None:
        for t, _ in self.targets:
            if t.name == "gateway":
                return t
        return None

    # ---- scenarios ----------------------------------------------------------------------------------------

    def interleaved(self, reps: int, fn) -> None:
        """Runs fn(target, rep) for each rep, alternating servers (sshd, gateway[, floor], sshd, ...)."""
        for rep in range(1, reps + 1):
            for t, _ in self.targets:
                os.sync()  # flush earlier writes so background writeback does not land in this timing
                fn(t, rep)

    def scen_put(self) -> None:
        ds = self.ds
        row = self.rows["put"]
        timeout = 300 + ds.big_size / 5e6

        def one(t: Target, rep: int) -> None:
            # sshd and the floor write into the same directory: each its own name
            name = f"put-{rep}.pdf" if t.name != "floor" else f"floor-put-{rep}.pdf"
            remote = t.path(self.centre, "bench-put", name)
            el = self.client.session(t, t.writer, [f"put {q(ds.big)} {q(remote)}"], timeout, f"PUT rep {rep}")
            getattr(row, t.name).append(ds.big_size / MB / el)
            log(f"  put  {t.name:8s} rep {rep}: {el:.2f} s, {ds.big_size / MB / el:,.1f} MB/s")
            if t.served is not None:
                stored = t.local(self.centre, "bench-put", name)
                size = stored.stat().st_size
                stored.unlink()
                if size != ds.big_size:
                    raise BenchError(f"{t.name}: stored PUT has size {size}")
            elif "gateway" not in self.big_remote:
                self.big_remote["gateway"] = remote  # GET reads back what PUT stored

        self.interleaved(self.args.big_repeats, one)

    def scen_get(self) -> None:
        ds = self.ds
        row = self.rows["get"]
        timeout = 300 + ds.big_size / 5e6
        gw = self.gateway_target()
        if gw is not None and "gateway" not in self.big_remote:
            remote = gw.path(self.centre, "bench-big", "big.pdf")
            el = self.client.session(gw, gw.writer, [f"-mkdir {q(gw.path(self.centre, 'bench-big'))}",
                                                     f"put {q(ds.big)} {q(remote)}"], timeout, "seed big")
            r = self._info_row("seed_big", f"seed: PUT of the {human_bytes(ds.big_size)} file for GET", "s")
            r.gateway.append(el)
            self.big_remote["gateway"] = remote
        self.dl.mkdir(exist_ok=True)
        local = self.dl / "big.pdf"
        verified: set[str] = set()

        def one(t: Target, rep: int) -> None:
            el = self.client.session(t, t.reader, [f"get {q(self.big_remote[t.name])} {q(local)}"], timeout,
                                     f"GET rep {rep}")
            size = local.stat().st_size
            if size != ds.big_size:
                raise BenchError(f"{t.name}: GET gave {size} bytes, expected {ds.big_size}")
            if t.name not in verified:  # content check once per server, outside the timing
                if sha256_file(local) != ds.big_sha:
                    raise BenchError(f"{t.name}: GET returned different bytes than were stored")
                verified.add(t.name)
            local.unlink()
            getattr(row, t.name).append(ds.big_size / MB / el)
            log(f"  get  {t.name:8s} rep {rep}: {el:.2f} s, {ds.big_size / MB / el:,.1f} MB/s")

        self.interleaved(self.args.big_repeats, one)

    def scen_ls(self) -> None:
        self.seed_gateway("bench-ls")
        row = self.rows["ls"]
        out = self.dl / "ls-out.txt"
        n = len(self.ds.ls_names)

        def one(t: Target, rep: int) -> None:
            el = self.client.session(t, t.reader, [f"ls -l {q(t.path(self.centre, 'bench-ls'))}"], 600,
                                     f"ls -l rep {rep}", stdout_path=out)
            lines = [ln for ln in out.read_text(errors="replace").splitlines() if ln.rstrip().endswith(".pdf")]
            if len(lines) != n:
                raise BenchError(f"{t.name}: ls -l listed {len(lines)} documents, expected {n}")
            if rep == 1:
                self.extra.setdefault("ls_l_sample_line", {})[t.name] = lines[0]
            getattr(row, t.name).append(el)
            log(f"  ls   {t.name:8s} rep {rep}: {el:.3f} s")

        self.interleaved(self.args.repeats, one)

    def scen_small(self) -> None:
        self.seed_gateway("bench-small")
        row = self.rows["small"]
        names = self.ds.small_names
        dest = self.dl / "small"

        def one(t: Target, rep: int) -> None:
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            lines = [f"lcd {q(dest)}"] + [f"get {q(t.path(self.centre, 'bench-small', n))}" for n in names]
            el = self.client.session(t, t.reader, lines, 120 + 0.5 * len(names), f"{len(names)} gets rep {rep}")
            got = list(dest.iterdir())
            bad = [p.name for p in got if p.stat().st_size != self.ds.small_doc_size]
            if len(got) != len(names) or bad:
                raise BenchError(f"{t.name}: downloaded {len(got)} files ({len(bad)} of wrong size), "
                                 f"expected {len(names)}")
            shutil.rmtree(dest, ignore_errors=True)
            getattr(row, t.name).append(el)
            log(f"  small {t.name:7s} rep {rep}: {el:.3f} s ({len(names) / el:,.0f} files/s)")

        self.interleaved(self.args.repeats, one)

    def scen_sessions(self) -> None:
        self.seed_gateway("bench-sess")
        row = self.rows["sessions"]
        rss = self.rows["rss"]
        names = self.ds.sess_names
        n = len(names)
        dest = self.dl / "sess"

        def one(t: Target, rep: int) -> None:
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            folder = t.path(self.centre, "bench-sess")
            batches = [self.client.batch_file([f"ls {q(folder)}",
                                               f"get {q(folder + '/' + names[i])} {q(dest / names[i])}"])
                       for i in range(n)]
            procs: list[subprocess.Popen] = []
            errs: list[Path] = []
            deadline_s = 120 + 2.0 * n
            with RssSampler(t.pid) as sampler:
                try:
                    t0 = time.perf_counter()
                    for i in range(n):
                        ef = self.client.work / f"sess-{i:04d}.err"
                        errs.append(ef)
                        with open(ef, "wb") as e:
                            procs.append(subprocess.Popen(sftp_cmd(t, t.reader, batches[i]), stdout=subprocess.DEVNULL,
                                                          stderr=e, stdin=subprocess.DEVNULL, env=self.client.env))
                    end = time.monotonic() + deadline_s
                    for p in procs:
                        p.wait(timeout=max(0.1, end - time.monotonic()))
                    el = time.perf_counter() - t0
                except subprocess.TimeoutExpired as exc:
                    raise BenchError(f"{t.name}: {n} sessions did not finish within {deadline_s:.0f} s") from exc
                finally:
                    for p in procs:
                        if p.poll() is None:
                            p.kill()
                    for p in procs:
                        with contextlib.suppress(Exception):
                            p.wait(timeout=10)
            failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode != 0]
            if failed:
                i, rc = failed[0]
                raise BenchError(f"{t.name}: {len(failed)} of {n} sessions failed (first: #{i} exit {rc})"
                                 f"{tail(errs[i], 10)}")
            got = len(list(dest.iterdir()))
            if got != n:
                raise BenchError(f"{t.name}: {got} of {n} session downloads arrived")
            for b in batches:
                b.unlink()
            for e in errs:
                e.unlink()
            shutil.rmtree(dest, ignore_errors=True)
            getattr(row, t.name).append(el)
            getattr(rss, t.name).append(sampler.peak_proc_mb)
            getattr(rss_tree, t.name).append(sampler.peak_mb)
            log(f"  sessions {t.name:7s} rep {rep}: {el:.3f} s, server peak RSS {sampler.peak_proc_mb:.1f} MB "
                f"per process, {sampler.peak_mb:.1f} MB summed over {sampler.peak_procs} processes "
                f"({sampler.samples} samples)")

        rss_tree = self._info_row("rss_tree", f"5. peak server RSS summed over its processes, {n} sessions", "MB")
        self.interleaved(self.args.repeats, one)
        # the RSS target is on the worst repetition, not the median
        for r in (rss, rss_tree):
            r.gateway = [max(r.gateway)] if r.gateway else []
            r.sshd = [max(r.sshd)] if r.sshd else []
            r.floor = [max(r.floor)] if r.floor else []

    def scen_ingest(self) -> None:
        """POD MI's month end: thousands of small PDFs put into one mailbox in one session, on the gateway each
        one checked, encrypted under its own key and committed with its record event before sftp's close is
        answered. A new folder per repetition (documents cannot be overwritten); sshd stores plain files."""
        row = self.rows["ingest"]
        src, names = self.ds.ingest_dir, self.ds.ingest_names
        total = sum((src / n).stat().st_size for n in names)

        def one(t: Target, rep: int) -> None:
            folder = f"bench-ingest-{rep}" if t.name != "floor" else f"bench-ingest-floor-{rep}"  # sshd's tree
            lines = [f"-mkdir {q(t.path(self.centre, folder))}"]
            lines += [f"put {q(src / n)} {q(t.path(self.centre, folder, n))}" for n in names]
            el = self.client.session(t, t.writer, lines, timeout=120 + 0.5 * len(names) + total / 2e6,
                                     what=f"ingest rep {rep}")
            if t.served is not None:
                stored = t.local(self.centre, folder)
                got = sum(1 for p in stored.iterdir() if p.stat().st_size > 0)
                shutil.rmtree(stored, ignore_errors=True)
                if got != len(names):
                    raise BenchError(f"{t.name}: {got} of {len(names)} uploads stored")
            else:
                self.check_listing(t, folder, len(names))  # outside the timing
            getattr(row, t.name).append(len(names) / el)
            log(f"  ingest {t.name:7s} rep {rep}: {el:.2f} s, {len(names) / el:,.0f} docs/s, "
                f"{total / MB / el:,.1f} MB/s")

        self.interleaved(self.args.repeats, one)

    # ---- driver -------------------------------------------------------------------------------------------

    def make_rows(self) -> None:
        a, ds = self.args, self.ds
        size = human_bytes(ds.big_size) if ds.big_size else f"{a.size_gib:g} GiB"
        self.rows["get"] = Row("get", f"1. GET {size} file", "MB/s", "higher", ">= 0.85x", 0.85)
        self.rows["put"] = Row("put", f"2. PUT {size} file", "MB/s", "higher", ">= 1.00x", 1.0)
        self.rows["ls"] = Row("ls", f"3. ls -l of {a.ls_docs:,} documents", "s", "lower", "<= 1.00x", 1.0)
        self.rows["small"] = Row("small", f"4. {a.small_files:,} x 200 KB gets, 1 session", "s", "lower",
                                 "<= 1.00x", 1.0)
        self.rows["sessions"] = Row("sessions", f"5. {a.sessions} concurrent sessions (wall)", "s", "lower",
                                    "<= 0.50x", 0.5)
        self.rows["rss"] = Row("rss", f"5. peak RSS of one server process, {a.sessions} sessions", "MB", "lower",
                               "gateway <= 120 MB per worker", target_abs=120.0)
        self.rows["ingest"] = Row("ingest", f"6. {a.ingest_docs:,} x 200 KB puts, 1 session", "docs/s", "higher",
                                  "gateway >= 300 docs/s", target_abs=300.0)

    def run(self) -> None:
        self.setup()
        order = [s for s in ("put", "get", "ls", "small", "sessions", "ingest") if s in self.scenarios]
        for s in order:
            log(f"scenario {s}")
            try:
                self.ensure_gateway()
                self.ensure_floor()
                getattr(self, f"scen_{s}")()
            except BenchError as exc:
                msg = str(exc).strip()
                for server in (self.gw, self.floor):
                    death = server.death_report() if server is not None else None
                    if death:
                        msg += "\n" + death
                log(f"scenario {s} FAILED: {msg}")
                self.rows[s].error = msg
                self.failed = True
        if self.gw_run_sampler is not None:
            self.gw_run_sampler.__exit__(None, None, None)

    def ensure_gateway(self) -> None:
        """If the gateway died in an earlier scenario, say so and start it again on its data dir."""
        if self.gw is None:
            return
        death = self.gw.death_report()
        if death is None:
            return
        log(f"warning: {death}")
        self.extra.setdefault("gateway_deaths", []).append(death)
        self.gw.proc = None
        self.gw.start()
        t = self.gateway_target()
        t.port, t.pid = self.gw.port, self.gw.pid
        if self.gw_run_sampler is not None:
            self.gw_run_sampler.pid = self.gw.pid
        log(f"gateway restarted (pid {self.gw.pid}, port {self.gw.port})")

    def ensure_floor(self) -> None:
        """If the floor died in an earlier scenario, say so and start it again."""
        death = self.floor.death_report() if self.floor is not None else None
        if death is None:
            return
        log(f"warning: {death}")
        self.extra.setdefault("floor_deaths", []).append(death)
        self.floor.proc = None
        self.floor.start()
        for t, _ in self.targets:
            if t.name == "floor":
                t.port, t.pid = self.floor.port, self.floor.pid
        log(f"floor restarted (pid {self.floor.pid}, port {self.floor.port})")

    def result_rows(self) -> list[Row]:
        shown = [r for k, r in self.rows.items()
                 if (k in self.scenarios or (k == "rss" and "sessions" in self.scenarios))]
        shown.sort(key=lambda r: SCENARIOS.index(r.key) if r.key in SCENARIOS else len(SCENARIOS))
        infos = [r for r in self.rows.values() if r.better == "info" and (r.sshd or r.gateway or r.floor)]
        if self.gw_run_sampler is not None and self.gw_run_sampler.samples:
            r = Row("rss_run", "gateway peak RSS, whole run", "MB", "info", "(informational)")
            r.gateway = [self.gw_run_sampler.peak_mb]
            infos.append(r)
        return shown + infos


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def rows_to_json(rows: list[Row], bench: Bench, args, started: float) -> dict:
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "host": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                 "kernel": platform.release()},
        "client": {"sftp": SFTP, "cipher": CIPHER, "mac": MAC, "kex": KEX,
                   "host_key_algorithm": bench.extra.get("host_key_algorithm")},
        "sshd_version": subprocess.run([SSHD, "-V"], capture_output=True, text=True).stderr.strip()
        if os.path.exists(SSHD) else None,
        "gateway_cmd": None if args.peer_only else gateway_base_cmd(args),
        "params": {"size_gib": args.size_gib, "big_file_bytes": bench.ds.big_size if hasattr(bench, "ds") else None,
                   "ls_docs": args.ls_docs, "small_files": args.small_files, "sessions": args.sessions,
                   "ingest_docs": args.ingest_docs,
                   "repeats": args.repeats, "big_repeats": args.big_repeats, "quick": args.quick,
                   "only": sorted(bench.scenarios), "peer_only": args.peer_only, "webdav": args.webdav,
                   "blobs": args.blobs, **({"floor": True, "floor_sshcompat": args.floor_sshcompat}
                                           if args.floor else {})},
        "extra": dict(bench.extra, gateway_stop=bench.gw.stop_info if bench.gw is not None else None,
                      **({"floor_stop": bench.floor.stop_info if bench.floor is not None else None}
                         if args.floor else {})),
        "results": [
            {"scenario": r.key, "label": r.label, "unit": r.unit, "better": r.better, "target": r.target,
             "sshd": r.sshd, "gateway": r.gateway, "sshd_median": r.med("sshd"), "gateway_median": r.med("gateway"),
             "ratio": r.ratio, "result": r.verdict if r.better != "info" or r.error else "info",
             "note": r.note, "error": r.error,
             **({"floor": r.floor, "floor_median": r.med("floor"), "floor_ratio": r.ratio_of("floor"),
                 "floor_result": r.verdict_of("floor") if r.better != "info" or r.error else "info"}
                if args.floor else {})}
            for r in rows
        ],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="SFTP benchmark: the gateway against OpenSSH internal-sftp.")
    p.add_argument("--size-gib", type=float, default=None, help="size of the GET/PUT file (default 1)")
    p.add_argument("--small-files", type=int, default=None, help="number of 200 KB downloads (default 2000)")
    p.add_argument("--ls-docs", type=int, default=None, help="documents in the ls -l folder (default 10000)")
    p.add_argument("--sessions", type=int, default=None, help="concurrent sessions (default 100)")
    p.add_argument("--ingest-docs", type=int, default=None, help="200 KB documents uploaded in one session "
                                                                 "(default 2000)")
    p.add_argument("--repeats", type=int, default=None, help="repetitions of the short scenarios, median taken "
                                                             "(default 3)")
    p.add_argument("--big-repeats", type=int, default=None, help="repetitions of GET/PUT (default 3, --quick 1)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in well under a minute")
    p.add_argument("--workers", type=int, help="gateway worker processes (serve --workers N; default: the "
                                               "gateway's own default, the number of cores)")
    p.add_argument("--only", action="append", metavar="SCENARIO",
                   help=f"run only these scenarios ({', '.join(SCENARIOS)}); repeat or comma-separate")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    p.add_argument("--peer-only", action="store_true", help="run the sshd side only (tests the harness)")
    p.add_argument("--floor", action="store_true",
                   help="also run the stack floor: a bare asyncssh SFTP server (bench/floor/sftp_floor.py) on "
                        "sshd's directory, with the gateway's number of workers; adds floor and floor/sshd columns")
    p.add_argument("--floor-sshcompat", action="store_true",
                   help="the floor with the gateway's asyncssh adjustments (gateway/sftp/sshcompat.py); implies "
                        "--floor")
    p.add_argument("--gateway-cmd", help="how to call the gateway CLI (default .venv/bin/instpages, else "
                                         "python -m gateway)")
    p.add_argument("--blobs", choices=["local", "s3"], default="local",
                   help="the gateway's blob store: the local folder, or S3 on a SeaweedFS started here")
    p.add_argument("--webdav", choices=["on", "off"], default="on",
                   help="the gateway's WebDAV front-end: on (a free 127.0.0.1 port, as deployed) or off")
    p.add_argument("--tmp-dir", help="parent of the temp dir holding the data and both servers' files "
                                     "(default: the system temp dir)")
    p.add_argument("--download-dir", help="parent of the client's download dir (default: /dev/shm when it "
                                          "has room, else inside the temp dir)")
    p.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    p.add_argument("--keep-tmp", action="store_true", help="do not delete the temp dir (debugging)")
    a = p.parse_args(argv)
    a.floor = a.floor or a.floor_sshcompat
    quick = dict(size_gib=1 / 64, small_files=50, ls_docs=300, sessions=10, repeats=3, big_repeats=1,
                 ingest_docs=50)
    full = dict(size_gib=1.0, small_files=2000, ls_docs=10000, sessions=100, repeats=3, big_repeats=3,
                ingest_docs=2000)
    for k, v in (quick if a.quick else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.only:
        only = [s.strip() for item in a.only for s in item.split(",") if s.strip()]
        bad = [s for s in only if s not in SCENARIOS]
        if bad:
            p.error(f"unknown scenario(s) {bad}; choose from {', '.join(SCENARIOS)}")
        a.only = only
    if a.size_gib <= 0 or a.small_files < 1 or a.ls_docs < 1 or a.sessions < 1 or a.repeats < 1 \
            or a.big_repeats < 1 or a.ingest_docs < 1:
        p.error("sizes, counts and repeats must be positive")
    if a.sessions > 9999 or a.ls_docs > 99999 or a.small_files > 99999 or a.ingest_docs > 99999:
        p.error("counts too large")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_interrupt)
    for tool in (SFTP, SSH_KEYGEN):
        if not os.path.exists(tool):
            print(f"{tool} missing: run scripts/install-bench-deps.sh", file=sys.stderr)
            return 2
    if not os.path.exists(SSHD):
        print(f"{SSHD} missing: run scripts/install-bench-deps.sh", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="instpages-bench-", dir=args.tmp_dir))
    rc = 0
    bench = None
    try:
        with contextlib.ExitStack() as stack:
            if args.blobs == "s3":
                s3 = stack.enter_context(seaweed(tmp))
                log(f"SeaweedFS S3 at {s3.endpoint} (pid {s3.proc.pid})")
                args.blob_env = s3.env(prefix="bench/")
            bench = Bench(args, tmp, stack)
            bench.run()
            rc = 1 if bench.failed else 0
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        rc = 130
    except BenchError as exc:
        log(f"FAILED: {exc}")
        rc = 1
    finally:
        # the servers were stopped by the ExitStack above; now the files
        if args.keep_tmp:
            log(f"temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    rows = bench.result_rows() if bench is not None and bench.rows else []
    if any(r.sshd or r.gateway or r.floor or r.error for r in rows):
        print()
        if args.peer_only:
            print("(--peer-only: sshd side only)")
        print_table(rows, floor=args.floor)
        if args.json:
            Path(args.json).write_text(json.dumps(rows_to_json(rows, bench, args, started), indent=2) + "\n")
            log(f"results written to {args.json}")
        if rc == 0 and args.strict and any(r.verdict == "MISS" for r in rows if r.better != "info"):
            rc = 3
    return rc


if __name__ == "__main__":
    sys.exit(main())
