#!/usr/bin/env python3
"""WebDAV benchmark: the Institutional Pages gateway's WebDAV front-end against nginx, both over TLS.

One run starts both servers on free 127.0.0.1 ports, gives them the same documents and the same Basic
credentials, drives both with the same clients (Debian's curl and wrk) and prints a table of
gateway/nginx ratios against the targets.  See bench/README.md ("WebDAV benchmark").

    .venv/bin/python bench/dav_bench.py            # full run: 10,000-doc PROPFIND, 1 GiB GET, wrk 200 x 200 KB
    .venv/bin/python bench/dav_bench.py --quick    # smoke run with small sizes, < 60 s
    .venv/bin/python bench/dav_bench.py --only propfind,wrk --json /tmp/dav.json

The gateway is a black box run through its CLI (``python -m gateway``); its documents are delivered before
it starts by a seeding helper here that calls the core in-process as an uploader (every document goes
through the real upload path: encryption, content check, commit).  nginx is a throwaway
``nginx -c <temp>/nginx.conf -p <temp> -g 'daemon off; pid ...;'`` with Debian's dav_ext module, serving a
plain folder holding the same files.  Everything lives in one temp dir that is removed at the end, also on
Ctrl-C, SIGTERM and errors; every server started here is stopped here.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import platform
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from common import (BenchError, CpuMeter, connections_per_pid, enterprise_number, free_port, median, proc_ppids,
                    raise_interrupt, seaweed, sha256_file, tail, vmrss_kib)

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
NGINX = "/usr/sbin/nginx"
DAV_EXT_MODULE_CANDIDATES = (
    "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so",
    "/usr/share/nginx/modules/ngx_http_dav_ext_module.so",
)
CURL = shutil.which("curl") or "/usr/bin/curl"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

SCENARIOS = ("propfind", "get", "wrk")  # the three with targets
ALL_SCENARIOS = SCENARIOS + ("expiry",)  # + the gateway right after its login cache expired (info; not in --quick)
RUN_ORDER = ("wrk", "propfind", "get", "expiry")  # wrk first: the gateway's login cache is fresh then
LOGIN_CACHE_S = 60.0  # the gateway's default webdav.auth_cache_seconds (the bench does not change it)
MB = 1_000_000  # throughput in MB/s (10^6 bytes per second)
USER = "bench-reader"
UPLOADER = "bench-up"
CENTRE_FIRST8 = 2123456  # -> 0212345668
# What a typical client asks for (rclone, davfs2 and Finder ask for about this set); --propfind-body allprop
# sends an empty body instead (= allprop, which also asks the gateway for every dead property).
PROPFIND_PROPS = ("resourcetype", "getcontentlength", "getlastmodified", "getetag", "getcontenttype",
                  "displayname")
# --floor: the gateway's HTTPS transport (cheroot + TLS, its workers) serving nginx's files, without the gateway's
# work (bench/floor/https_floor.py); floor-wsgi answers GET only, so it has no PROPFIND figure
FLOOR_SCRIPT = REPO / "bench" / "floor" / "https_floor.py"
FLOOR_SCENARIOS = {"floor-wsgidav": ("propfind", "get", "wrk"), "floor-wsgi": ("get", "wrk")}


def log(msg: str) -> None:
    print(f"[dav-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------------
# Small helpers


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float, what: str, logfile: Path | None) -> None:
    """Wait (bounded) until ``port`` accepts a TCP connection."""
    deadline = time.monotonic() + timeout
    last_err: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with code {proc.returncode} before listening{tail(logfile)}")
        try:
            with socket.create_connection((HOST, port), timeout=2):
                return
        except OSError as exc:
            last_err = exc
        time.sleep(0.1)
    raise BenchError(f"{what} did not listen on {HOST}:{port} within {timeout:.0f} s ({last_err}){tail(logfile)}")


def run(cmd: list[str], timeout: float, what: str, *, input: str | None = None, **kw) -> subprocess.CompletedProcess:
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input,
                            stdin=None if input is not None else subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what}: timed out after {timeout:.0f} s: {shlex.join(cmd)}") from exc
    if cp.returncode != 0:
        raise BenchError(f"{what}: exit {cp.returncode}: {shlex.join(cmd)}\n{cp.stdout[-2000:]}{cp.stderr[-2000:]}")
    return cp


def stop_process_group(proc: subprocess.Popen | None, what: str, grace: float = 10.0) -> None:
    """SIGTERM the process group we created for ``proc`` (start_new_session=True), then SIGKILL."""
    if proc is None:
        return
    pgid = proc.pid  # session/group leader: pgid == pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # leader gone; make sure stragglers of the group are gone too
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    if proc.poll() is None:
        log(f"warning: {what} (pid {proc.pid}) did not stop")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def listen_overflows() -> int:
    """The host's TcpExt ListenOverflows counter (connections dropped because an accept queue was full; a
    dropped handshake costs the client a SYN retransmit of 1 s or more). Host-wide, so only a hint."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for head, vals in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            d = dict(zip(head.split()[1:], vals.split()[1:]))
            return int(d.get("ListenOverflows", 0))
    return 0


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit in ("B", "KiB") or n >= 10 else f"{n:.2g} {unit}"
        n /= 1024
    return str(n)


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
        if pid in ppids:
            result.append(pid)
        todo.extend(children.get(pid, ()))
    return result


class RssSampler:
    """Samples VmRSS of ``pid`` and its descendants in a thread (every ``interval`` s) and keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05, tree_interval: float = 0.5):
        self.pid = pid
        self.interval = interval
        self.tree_interval = tree_interval
        self.peak_kib = 0
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
            kib = sum(vmrss_kib(p) for p in pids)
            self.samples += 1
            self.peak_kib = max(self.peak_kib, kib)
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        if self.pid:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @property
    def peak_mb(self) -> float:
        return self.peak_kib * 1024 / MB


# --------------------------------------------------------------------------------------------------------
# Test documents: real PDFs, written once into the folder that nginx serves; the gateway gets the same files


@dataclass
class PdfTemplate:
    data: bytes  # a complete PDF whose image stream is zeros and whose Title is a marker
    image_offset: int
    image_len: int
    title_offset: int


TITLE_LEN = 24


def _pdf_with_gray_image(width: int, height: int):
    import pikepdf
    from pikepdf import Dictionary, Name

    pdf = pikepdf.new()
    img = pikepdf.Stream(pdf, bytes(width * height))
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
    save_kw = dict(compress_streams=False, stream_decode_level=pikepdf.StreamDecodeLevel.none,
                   object_stream_mode=pikepdf.ObjectStreamMode.disable, deterministic_id=True)
    return pdf, save_kw


def make_template(width: int, height: int) -> PdfTemplate:
    """One page showing an uncompressed 8-bit gray image; image bytes and Title are patched in place later
    (same lengths, so the xref table stays valid): thousands of distinct real PDFs in about a second."""
    pdf, save_kw = _pdf_with_gray_image(width, height)
    buf = io.BytesIO()
    pdf.save(buf, **save_kw)
    data = buf.getvalue()
    io_ = data.find(b"stream\n" + bytes(min(64, width * height)))
    it = data.find(b"/Title (" + b"0" * TITLE_LEN + b")")
    if io_ < 0 or it < 0:
        raise BenchError("PDF template: markers not found")
    return PdfTemplate(data, io_ + 7, width * height, it + 8)


def title_for(kind: str, i: int) -> bytes:
    t = f"{kind}-{i:07d}".encode()
    if len(t) > TITLE_LEN:
        raise ValueError(t)
    return t.ljust(TITLE_LEN, b"_")


class RandomPool:
    """Random bytes; slices at distinct offsets give distinct contents quickly."""

    def __init__(self, size: int, seed: int):
        data = random.Random(seed).randbytes(size)
        self.size = size
        self.doubled = data + data

    def chunk(self, offset: int, n: int) -> bytes:
        if n > self.size:
            raise ValueError("chunk larger than pool")
        o = offset % self.size
        return self.doubled[o:o + n]


def write_patched_docs(folder: Path, names: list[str], kind: str, width: int, height: int, pool: RandomPool,
                       stride: int) -> int:
    tpl = make_template(width, height)
    folder.mkdir(parents=True, exist_ok=True)
    buf = bytearray(tpl.data)
    for i, name in enumerate(names):
        buf[tpl.image_offset:tpl.image_offset + tpl.image_len] = pool.chunk(i * stride, tpl.image_len)
        buf[tpl.title_offset:tpl.title_offset + TITLE_LEN] = title_for(kind, i)
        with open(folder / name, "wb") as f:
            f.write(buf)
    return len(buf)


def write_minimal_docs(folder: Path, names: list[str]) -> int:
    """Small text PDFs from tests/pdfsamples.minimal_pdf (distinct text -> distinct bytes)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.pdfsamples import minimal_pdf

    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i, name in enumerate(names):
        data = minimal_pdf(f"Bench PROPFIND document {i:06d}")
        (folder / name).write_bytes(data)
        total += len(data)
    return total


def write_big_pdf(path: Path, approx_bytes: int) -> int:
    """A PDF with one page and one huge uncompressed image: pikepdf writes it with a zero image (sparse
    enough to be quick), then the image is overwritten in place with random bytes in 16 MiB steps."""
    width = 4096
    height = max(1, -(-approx_bytes // width))
    pdf, save_kw = _pdf_with_gray_image(width, height)
    pdf.save(path, **save_kw)
    del pdf
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(65536)
        f.seek(max(0, size - 65536))
        end = f.read()
    img_off = head.find(b"stream\n" + bytes(64))
    it = head.find(b"/Title (" + b"0" * TITLE_LEN + b")")
    title_off = it + 8 if it >= 0 else max(0, size - 65536) + end.find(b"/Title (") + 8
    if img_off < 0 or title_off < 8:
        raise BenchError("big PDF: markers not found")
    pool = RandomPool(64 << 20, seed=11)
    step = 16 << 20
    n = width * height
    with open(path, "r+b") as f:
        f.seek(title_off)
        f.write(title_for("big", 0))
        f.seek(img_off + 7)
        done = k = 0
        while done < n:
            m = min(step, n - done)
            f.write(pool.chunk(k * 1_048_573, m))
            done += m
            k += 1
    return path.stat().st_size


@dataclass
class DataSet:
    root: Path  # nginx's document root; /dav/<centre>/... maps onto root/<centre>/...
    centre: str
    propfind_names: list[str] = field(default_factory=list)
    small_names: list[str] = field(default_factory=list)
    small_size: int = 0
    big_name: str = ""
    big_size: int = 0
    big_sha: str = ""

    def folder(self, kind: str) -> Path:
        return self.root / self.centre / kind

    def uploads(self) -> list[tuple[str, str]]:
        """(gateway path, local file) of every document, biggest first."""
        out = []
        if self.big_name:
            out.append((f"/{self.centre}/big/{self.big_name}", str(self.folder("big") / self.big_name)))
        out += [(f"/{self.centre}/small/{n}", str(self.folder("small") / n)) for n in self.small_names]
        out += [(f"/{self.centre}/propfind/{n}", str(self.folder("propfind") / n)) for n in self.propfind_names]
        return out


def generate_data(root: Path, centre: str, args, scenarios: set[str]) -> DataSet:
    ds = DataSet(root, centre)
    t0 = time.perf_counter()
    if "propfind" in scenarios:
        ds.propfind_names = [f"doc-{i:05d}.pdf" for i in range(args.propfind_docs)]
        write_minimal_docs(ds.folder("propfind"), ds.propfind_names)
    if scenarios & {"wrk", "expiry"}:
        ds.small_names = [f"f-{i:05d}.pdf" for i in range(args.small_files)]
        # 512 x 400 gray image -> 204,800 image bytes + about 1 KB of PDF: ~200 KB per document
        ds.small_size = write_patched_docs(ds.folder("small"), ds.small_names, "sm", 512, 400,
                                           RandomPool(8 << 20, seed=2), stride=3331)
    if "get" in scenarios:
        ds.folder("big").mkdir(parents=True, exist_ok=True)
        ds.big_name = "big.pdf"
        ds.big_size = write_big_pdf(ds.folder("big") / ds.big_name, int(args.size_gib * (1 << 30)))
        ds.big_sha = sha256_file(ds.folder("big") / ds.big_name)
    log(f"test data generated in {time.perf_counter() - t0:.1f} s under {root}")
    return ds


# --------------------------------------------------------------------------------------------------------
# Seeding the gateway in-process, through the core, as its uploader (before the server starts)


def _seed_worker(data_dir: str, env: dict[str, str], uploader: str, items: list[tuple[str, str]]) -> tuple[int, float]:
    """Runs in a spawned process: builds the core services and uploads ``items`` as ``uploader``.

    Every document takes the real upload path (encrypted blob, content check, commit, audit).  Only
    ``os.fsync`` is skipped -- this is a throwaway data dir and the caller runs one ``sync`` afterwards.
    """
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from unittest import mock

    from gateway.config import load_config
    from gateway.core.session import MailboxSession
    from gateway.services import build

    cfg = load_config(None, env=env, overrides={"data_dir": data_dir})
    services = build(cfg, initialize=False)
    t0 = time.perf_counter()
    try:
        mailbox = services.mailbox
        with mailbox.repo.read() as c:
            acc = mailbox.repo.account_by_name(c, uploader)
        if acc is None:
            raise RuntimeError(f"uploader account {uploader!r} missing")
        session = MailboxSession(mailbox, mailbox.load_principal(acc.id, "bench-seed"), "bench-seed", "local")
        with mock.patch("os.fsync", lambda fd: None):
            for i, (vpath, local) in enumerate(items, 1):
                if i % 2000 == 0:
                    log(f"  seed worker {os.getpid()}: {i} of {len(items)} documents")
                upload = session.open_upload(vpath)
                try:
                    with open(local, "rb") as f:
                        while chunk := f.read(8 << 20):
                            upload.append(chunk)
                except BaseException:
                    upload.abort("seeding failed")
                    raise
                upload.commit()
    finally:
        services.close()
    return len(items), time.perf_counter() - t0


def seed_gateway(data_dir: Path, env: dict[str, str], items: list[tuple[str, str]], workers: int) -> float:
    import multiprocessing

    t0 = time.perf_counter()
    if not items:
        return 0.0
    workers = max(1, min(workers, len(items)))
    # dealt round-robin (the big document first, so it overlaps with the small ones)
    shares: list[list[tuple[str, str]]] = [[] for _ in range(workers)]
    for i, item in enumerate(items):
        shares[i % workers].append(item)
    ctx = multiprocessing.get_context("spawn")  # no forked SQLite connections or threads
    done = 0
    # Pool's __exit__ terminates the workers: on Ctrl-C/SIGTERM or an error they stop at once
    with ctx.Pool(processes=workers) as pool:
        pending = [pool.apply_async(_seed_worker, (str(data_dir), env, UPLOADER, share)) for share in shares if share]
        for res in pending:
            try:
                n, _ = res.get(timeout=3600)
            except multiprocessing.TimeoutError as exc:
                raise BenchError("seeding the gateway took more than an hour") from exc
            except Exception as exc:  # noqa: BLE001 - whatever the core raised in the worker
                raise BenchError(f"seeding the gateway failed: {exc!r}") from exc
            done += n
    os.sync()
    el = time.perf_counter() - t0
    log(f"seed: {done} documents delivered to the gateway through the core in {el:.1f} s "
        f"({workers} processes, {el / max(1, done) * 1000:.1f} ms per document wall)")
    return el


# --------------------------------------------------------------------------------------------------------
# Servers


@dataclass
class Target:
    name: str  # "nginx" | "gateway"
    port: int
    pid: int
    auth_header: str  # "Basic ..."

    @property
    def attr(self) -> str:
        """Its figures' attribute on a Row: nginx, gateway, floor_wsgidav, floor_wsgi."""
        return self.name.replace("-", "_")

    def url(self, path: str) -> str:
        return f"https://{HOST}:{self.port}{path}"


def find_dav_ext_module() -> str | None:
    for p in DAV_EXT_MODULE_CANDIDATES:
        if os.path.exists(p):
            return p
    return None


class NginxServer:
    """A throwaway nginx: own prefix, config, self-signed P-256 certificate and htpasswd; PROPFIND via dav_ext."""

    def __init__(self, work: Path, root: Path, user: str, password: str):
        self.work = work
        self.root = root
        self.user = user
        self.password = password
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log = work / "nginx.log"
        self.conf = work / "nginx.conf"
        self.cert, self.key = work / "cert.pem", work / "key.pem"  # also the floors' (--floor)

    def start(self) -> None:
        module = find_dav_ext_module()
        if not os.path.exists(NGINX) or module is None:
            raise BenchError("nginx or its dav_ext module is missing: run scripts/install-bench-deps.sh")
        w = self.work
        for d in ("logs", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (w / d).mkdir(parents=True, exist_ok=True)
        cert, key = self.cert, self.key
        # the same key type as the gateway's self-signed certificate (ECDSA P-256)
        run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], 60, "openssl req (nginx certificate)")
        hashed = run([OPENSSL, "passwd", "-apr1", "-stdin"], 30, "openssl passwd -apr1",
                     input=self.password + "\n").stdout.strip()
        htpasswd = w / "htpasswd"
        htpasswd.write_text(f"{self.user}:{hashed}\n")
        self.port = free_port()
        user_line = ""
        if os.geteuid() == 0:  # else the workers run as nobody and cannot read the 0700 temp dir
            import grp
            import pwd

            pw = pwd.getpwuid(os.geteuid())
            user_line = f"user {pw.pw_name} {grp.getgrgid(pw.pw_gid).gr_name};"
        self.conf.write_text(f"""# generated by bench/dav_bench.py
load_module {module};
{user_line}
worker_processes 2;
error_log {w}/logs/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    server_tokens off;
    types {{ application/pdf pdf; }}
    default_type application/octet-stream;
    client_body_temp_path {w}/tmp/body;
    proxy_temp_path {w}/tmp/proxy;
    fastcgi_temp_path {w}/tmp/fastcgi;
    uwsgi_temp_path {w}/tmp/uwsgi;
    scgi_temp_path {w}/tmp/scgi;
    server {{
        listen {HOST}:{self.port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE+AESGCM;
        ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256;
        ssl_prefer_server_ciphers on;
        location /dav/ {{
            alias {self.root}/;
            auth_basic "Institutional Pages bench";
            auth_basic_user_file {htpasswd};
            dav_ext_methods PROPFIND OPTIONS;
            autoindex off;
        }}
    }}
}}
""")
        pid_file = w / "nginx.pid"
        base = [NGINX, "-c", str(self.conf), "-p", str(w) + "/", "-g", f"daemon off; pid {pid_file};"]
        run(base + ["-t", "-q"], 30, "nginx -t (config check)")
        logf = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(base, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        finally:
            logf.close()
        wait_for_port(self.port, self.proc, 20, "nginx", self.log)
        log(f"nginx pid {self.proc.pid} on https://{HOST}:{self.port}/dav/ serving {self.root}")

    def stop(self) -> None:
        stop_process_group(self.proc, "nginx")
        self.proc = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0


def gateway_base_cmd(args) -> list[str]:
    if args.gateway_cmd:
        return shlex.split(args.gateway_cmd)
    py = REPO / ".venv" / "bin" / "python"
    return [str(py) if py.exists() else sys.executable, "-m", "gateway"]


def client_env() -> dict[str, str]:
    """The environment for the gateway's CLI and server: ours, minus any INSTPAGES_* of the caller."""
    return {k: v for k, v in os.environ.items() if not k.startswith("INSTPAGES_")}


class GatewayServer:
    """The gateway, through its CLI: init, one active centre, a staff reader with a grant, an uploader, serve."""

    def __init__(self, work: Path, args, centre: str, password: str, max_size: int):
        self.work = work
        self.args = args
        self.data_dir = work / "data"
        self.centre = centre
        self.password = password
        self.max_size = max_size
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.sftp_port = 0
        self.log = work / "serve.log"
        self.base = gateway_base_cmd(args)

    def cli(self, *argv: str, input: str | None = None, timeout: float = 180) -> str:
        return run(self.base + list(argv) + ["--data-dir", str(self.data_dir)], timeout,
                   f"gateway {' '.join(argv[:2])}", input=input, cwd=REPO, env=dict(client_env(), **self.env())).stdout

    def setup(self) -> None:
        """init; then the centre and both accounts (in parallel: each CLI call spends seconds importing).
        The reader's grant comes in :meth:`grant`, while the documents are delivered."""
        self.work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        self.cli("init")
        with ThreadPoolExecutor(3) as ex:
            futs = [
                ex.submit(self.cli, "institution", "add", self.centre, "--name", "Bench centre", "--status", "active"),
                ex.submit(self.cli, "account", "add", USER, "--role", "staff", "--password-stdin",
                          input=self.password + "\n"),
                ex.submit(self.cli, "account", "add", UPLOADER, "--role", "uploader"),
            ]
            for f in futs:
                f.result()
        log(f"gateway set up through its CLI in {time.perf_counter() - t0:.1f} s (data dir {self.data_dir})")

    def grant(self) -> None:
        self.cli("grant", "add", USER, self.centre)

    def env(self) -> dict[str, str]:
        """Settings for both the seeding helper and the server (the same maximum size for both)."""
        return {"INSTPAGES_DOCUMENTS_MAX_SIZE": str(self.max_size), **self.db_env(),
                **getattr(self.args, "blob_env", {})}  # --blobs s3: the SeaweedFS main() started

    def db_env(self) -> dict[str, str]:
        """--database-url: the gateway's metadata in that (empty) database instead of SQLite in its data dir."""
        return {"INSTPAGES_STORAGE_DATABASE_URL": self.args.database_url} if self.args.database_url else {}

    @staticmethod
    def auth_env() -> dict[str, str]:
        """A password alone must log in over Basic, as on nginx. Gateways that require a second factor for
        people accounts have ``auth.second_factor``, whose "off" is meant for test set-ups like this one;
        older ones do not know the key (and refuse unknown keys), so it is only set where it exists."""
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        try:
            import dataclasses

            from gateway import config as gconfig

            auth_cls = getattr(gconfig, "AuthConfig", None)
            if auth_cls is not None and "second_factor" in {f.name for f in dataclasses.fields(auth_cls)}:
                return {"INSTPAGES_AUTH_SECOND_FACTOR": "off"}
        except Exception as exc:  # noqa: BLE001 - the server will say what is wrong
            log(f"note: could not inspect the gateway's configuration keys: {exc!r}")
        return {}

    def start(self) -> None:
        self.port = free_port()
        self.sftp_port = free_port()
        env = client_env()
        env.update(self.env())
        env.update(self.auth_env())
        env.update(INSTPAGES_WEBDAV_HOST=HOST, INSTPAGES_WEBDAV_PORT=str(self.port),
                   INSTPAGES_SFTP_HOST=HOST, INSTPAGES_SFTP_PORT=str(self.sftp_port))
        logf = open(self.log, "ab")
        try:
            workers = ["--workers", str(self.args.workers)] if self.args.workers else []
            self.proc = subprocess.Popen(self.base + ["serve", *workers, "--data-dir", str(self.data_dir)], cwd=REPO,
                                         env=env,
                                         stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            logf.close()
        wait_for_port(self.port, self.proc, 90, "gateway serve", self.log)
        log(f"gateway pid {self.proc.pid} on https://{HOST}:{self.port}/dav/"
            + (f" ({', '.join(f'{k}={v}' for k, v in self.auth_env().items())})" if self.auth_env() else ""))

    def stop(self) -> None:
        stop_process_group(self.proc, "gateway serve", grace=20)
        self.proc = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0


class FloorServer:
    """--floor: bench/floor/https_floor.py of one kind (``floor-wsgidav``, ``floor-wsgi``) serving nginx's document
    root under /dav/ (nginx's URL paths), with nginx's certificate, the gateway's number of worker processes and
    its default threads and TLS settings; anonymous (wrk's Authorization header is ignored)."""

    def __init__(self, name: str, work: Path, root: Path, cert: Path, key: Path, workers: int):
        self.name = name
        self.kind = name.removeprefix("floor-")
        self.work, self.root, self.cert, self.key, self.workers = work, root, cert, key, workers
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log = work / f"{name}.log"

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        py = REPO / ".venv" / "bin" / "python"  # the interpreter the gateway gets (gateway_base_cmd)
        cmd = [str(py) if py.exists() else sys.executable, str(FLOOR_SCRIPT), "--kind", self.kind, "--host", HOST,
               "--port", str(self.port), "--root", str(self.root), "--cert", str(self.cert), "--key", str(self.key),
               "--workers", str(self.workers)]
        logf = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=client_env(), stdout=logf, stderr=logf,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            logf.close()
        wait_for_port(self.port, self.proc, 60, self.name, self.log)
        # with several workers the port listens before they serve: wait for the parent's "ready" line
        deadline = time.monotonic() + 60
        while "ready:" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with code {self.proc.returncode}{tail(self.log)}")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: its workers did not serve within 60 s{tail(self.log)}")
            time.sleep(0.1)
        log(f"{self.name} pid {self.proc.pid} on https://{HOST}:{self.port}/dav/ ({self.workers} worker processes)")

    def stop(self) -> None:
        stop_process_group(self.proc, self.name)
        self.proc = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0


# --------------------------------------------------------------------------------------------------------
# Clients: curl (single transfers, PROPFIND) and wrk (concurrent load), the same for both servers


def curl_base(t: Target, max_time: float) -> list[str]:
    return [CURL, "-sS", "-k", "--http1.1", "--max-time", f"{max_time:.0f}", "-H", f"Authorization: {t.auth_header}"]


W_FMT = "%{http_code} %{time_total} %{size_download} %{num_connects}\\n"


def parse_w(out: str, expect: int) -> list[tuple[int, float, int, int]]:
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            rows.append((int(parts[0]), float(parts[1]), int(parts[2]), int(parts[3])))
    if len(rows) != expect:
        raise BenchError(f"curl reported {len(rows)} transfers, expected {expect}: {out[-500:]!r}")
    return rows


def tls_info(t: Target) -> str:
    """Protocol and cipher that curl negotiates with this server (from curl -v)."""
    cp = subprocess.run(curl_base(t, 30) + ["-v", "-o", "/dev/null", "-X", "OPTIONS", t.url("/dav/")],
                        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    m = re.search(r"SSL connection using (\S+) / (\S+)", cp.stderr)
    return f"{m.group(1)} {m.group(2)}" if m else "unknown"


def propfind_body(kind: str) -> bytes:
    if kind == "allprop":
        return b""
    props = "".join(f"<D:{p}/>" for p in PROPFIND_PROPS)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop>{props}</D:prop>'
            f"</D:propfind>\n").encode()


def count_responses(xml_path: Path) -> tuple[int, int]:
    """(number of D:response elements, how many of them carry a getcontentlength) of a multistatus."""
    n = with_len = 0
    for _event, el in ET.iterparse(str(xml_path)):
        if el.tag == "{DAV:}response":
            n += 1
            if el.find(".//{DAV:}getcontentlength") is not None and \
                    (el.find(".//{DAV:}getcontentlength").text or "").strip():
                with_len += 1
            el.clear()
    return n, with_len


WRK_LUA = """-- generated by bench/dav_bench.py: rotate over the documents, thread by thread
local prefix = "{prefix}"
local n = {n}
local threads = {{}}
local counter = 0

-- wrk's own resolve() tests every address by opening and closing a TCP connection (wrk.lua): the server
-- counts it as a client that left before its TLS handshake. The address is known to answer: only look it up.
function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup(host, service)
end

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = (tid or 0) * {offset}
end

function request()
  counter = counter + 1
  return wrk.format("GET", prefix .. string.format("f-%05d.pdf", counter % n))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {{\\"duration_us\\": %d, \\"requests\\": %d, \\"bytes\\": %d, \\"err_connect\\": %d, " ..
    "\\"err_read\\": %d, \\"err_write\\": %d, \\"err_status\\": %d, \\"err_timeout\\": %d, " ..
    "\\"lat_mean_us\\": %.1f, \\"lat_max_us\\": %d, \\"p50_us\\": %d, \\"p90_us\\": %d, \\"p99_us\\": %d, " ..
    "\\"p999_us\\": %d}}\\n",
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
"""


def run_wrk(t: Target, script: Path, connections: int, threads: int, seconds: float, timeout_s: int,
            out_path: Path) -> dict:
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", f"--timeout={timeout_s}s",
           "-s", str(script), "-H", f"Authorization: {t.auth_header}", t.url("/dav/")]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + timeout_s + 60,
                        stdin=subprocess.DEVNULL)
    out_path.write_text(cp.stdout + cp.stderr)
    if cp.returncode != 0:
        raise BenchError(f"{t.name}: wrk exit {cp.returncode}: {(cp.stdout + cp.stderr)[-1500:]}")
    m = re.search(r"^BENCHJSON (\{.*\})$", cp.stdout, re.M)
    if not m:
        raise BenchError(f"{t.name}: no summary from wrk: {cp.stdout[-1500:]}")
    res = json.loads(m.group(1))
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6) if res["duration_us"] else 0.0
    res["errors"] = sum(res[k] for k in ("err_connect", "err_read", "err_write", "err_timeout"))
    return res


# --------------------------------------------------------------------------------------------------------
# py-spy: where the gateway spends its time


FRAME_RE = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frame_key(frame: str) -> str:
    m = FRAME_RE.match(frame.strip())
    if not m:
        return frame.strip()
    f = m.group("file")
    for marker in ("site-packages/", "lib/python3"):
        if marker in f:
            f = f.split(marker, 1)[1]
    return f"{m.group('func')} ({f})"


# Leaf frames of threads that wait for work (py-spy's idle detection does not catch all of them: a thread
# blocked in a lock or a select is sometimes sampled as active). Counted apart, left out of the percentages.
WAIT_FRAMES = {
    "Condition.wait (threading.py)", "Event.wait (threading.py)", "Queue.get (queue.py)",
    "Queue.get (sqlalchemy/util/queue.py)", "socket.accept (socket.py)", "EpollSelector.select (selectors.py)",
    "_ThreadsafeSelector.select (cheroot/connections.py)", "Thread.join (threading.py)",
    "Thread._wait_for_tstate_lock (threading.py)", "Semaphore.acquire (threading.py)",
}


def summarize_raw_profile(path: Path, top: int = 15) -> dict:
    """py-spy's raw (collapsed stacks) output: top functions by self samples and by total samples."""
    self_c: Counter[str] = Counter()
    total_c: Counter[str] = Counter()
    wait_c: Counter[str] = Counter()
    samples = waiting = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        keys = [_frame_key(f) for f in frames]
        waits = [i for i in range(max(0, len(keys) - 3), len(keys)) if keys[i] in WAIT_FRAMES]
        if waits:
            waiting += n
            first = waits[0]
            # who waits: the caller of the outermost wait frame, but above the pool/queue machinery
            j = first - 1
            while j > 0 and keys[j].startswith(("Queue.get", "QueuePool", "_ConnectionRecord", "Pool.",
                                                "_ConnectionFairy", "Condition.", "Event.")):
                j -= 1
            wait_c[f"{keys[first]} <- {keys[j]}" if j >= 0 else keys[first]] += n
            continue
        samples += n
        self_c[keys[-1]] += n
        for k in set(keys):
            total_c[k] += n
    def pct(c: Counter[str]) -> list[tuple[str, int, float]]:
        return [(k, v, 100.0 * v / samples if samples else 0.0) for k, v in c.most_common(top)]
    return {"samples": samples, "waiting": waiting, "self": pct(self_c), "total": pct(total_c),
            "wait_sites": wait_c.most_common(6)}


def format_profile(summary: dict) -> str:
    lines = [f"    {summary['samples']} samples of working threads ({summary['waiting']} more were waiting for "
             f"work or a lock: left out); top by self time:"]
    for k, v, p in summary["self"]:
        lines.append(f"      {p:5.1f}%  {k}")
    lines.append("    top by total (inclusive) time:")
    for k, v, p in summary["total"]:
        lines.append(f"      {p:5.1f}%  {k}")
    if summary.get("wait_sites"):
        lines.append("    where threads waited (samples):")
        for k, v in summary["wait_sites"]:
            lines.append(f"      {v:6d}  {k}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# Results


@dataclass
class Row:
    key: str
    scenario: str  # which scenario produced it (profiling reruns that one)
    label: str
    unit: str
    better: str  # "higher" | "lower" | "info"
    target: str = ""
    target_ratio: float | None = None  # gateway/nginx
    target_abs: float | None = None  # on the gateway figure alone (p99 latency)
    nginx: list[float] = field(default_factory=list)
    gateway: list[float] = field(default_factory=list)
    floor_wsgidav: list[float] = field(default_factory=list)  # --floor
    floor_wsgi: list[float] = field(default_factory=list)
    note: str = ""
    error: str = ""

    def med(self, side: str) -> float | None:
        xs = getattr(self, side)
        return median(xs) if xs else None

    def ratio_of(self, side: str) -> float | None:
        """``side``'s figure / nginx's."""
        n, x = self.med("nginx"), self.med(side)
        if n is None or x is None or n == 0:
            return None
        return x / n

    @property
    def ratio(self) -> float | None:
        return self.ratio_of("gateway")

    def floor_meets(self, side: str) -> str:
        """Whether a floor's figure itself meets the row's target ("ok"/"miss"; "" for info rows)."""
        x = self.med(side)
        if self.error or self.better == "info" or x is None:
            return ""
        if self.target_abs is not None:
            return "ok" if x <= self.target_abs else "miss"
        r = self.ratio_of(side)
        if r is None or self.target_ratio is None:
            return ""
        return "ok" if (r >= self.target_ratio if self.better == "higher" else r <= self.target_ratio) else "miss"

    @property
    def verdict(self) -> str:
        if self.error:
            return "FAIL"
        if self.better == "info":
            return "info"
        g = self.med("gateway")
        if g is None:
            return "-"
        if self.target_abs is not None:
            return "PASS" if g <= self.target_abs else "MISS"
        r = self.ratio
        if r is None or self.target_ratio is None:
            return "-"
        ok = r >= self.target_ratio if self.better == "higher" else r <= self.target_ratio
        return "PASS" if ok else "MISS"


def fmt_num(x: float | None, unit: str) -> str:
    if x is None:
        return "-"
    if unit in ("MB/s", "MB"):
        return f"{x:,.1f} {unit}"
    if unit == "ms":
        return f"{x:,.1f} ms" if x < 1000 else f"{x:,.0f} ms"
    if unit == "req/s":
        return f"{x:,.1f} req/s" if x < 10 else f"{x:,.0f} req/s"
    return f"{x:,.2f} {unit}"


def print_table(rows: list[Row], out=sys.stdout, floors: list[str] | tuple[str, ...] = ()) -> None:
    """``floors``: --floor's servers, each as two more columns: its figure, and its ratio to nginx with whether
    that ratio (the p99 row: the figure) would meet the row's target."""
    head = ["scenario", "nginx", "gateway", "ratio", "target", "result"]
    for name in floors:
        head += [name, name.removeprefix("floor-") + "/nginx"]
    body = []
    for r in rows:
        ratio = r.ratio
        cells = [r.label, fmt_num(r.med("nginx"), r.unit), fmt_num(r.med("gateway"), r.unit),
                 f"{ratio:.2f}x" if ratio is not None else "-", r.target or "-", r.verdict]
        for name in floors:
            side = name.replace("-", "_")
            fr = r.ratio_of(side)
            cells += [fmt_num(r.med(side), r.unit),
                      " ".join(filter(None, [f"{fr:.2f}x" if fr is not None else "-", r.floor_meets(side)]))]
        body.append(cells)
    widths = [max(len(head[i]), *(len(b[i]) for b in body)) if body else len(head[i]) for i in range(len(head))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(widths[i]) if i in (0, 4, 5) else c.rjust(widths[i])
                         for i, c in enumerate(cells)).rstrip()

    print(fmt(head), file=out)
    print("-" * len(fmt(head)), file=out)
    for b in body:
        print(fmt(b), file=out)
    notes = [f"  {r.label}: {r.note}" for r in rows if r.note]
    notes += [f"  {r.label}: FAILED: {r.error}" for r in rows if r.error]
    if notes:
        print("notes:", file=out)
        print("\n".join(notes), file=out)


# --------------------------------------------------------------------------------------------------------
# The benchmark


class Bench:
    def __init__(self, args, tmp: Path, stack: contextlib.ExitStack):
        self.args = args
        self.tmp = tmp
        self.stack = stack
        if args.only:
            self.scenarios = set(args.only)
        else:
            self.scenarios = set(SCENARIOS) if args.quick or not args.expiry else set(ALL_SCENARIOS)
        self.centre = enterprise_number(CENTRE_FIRST8)
        self.password = "bench-" + secrets.token_urlsafe(18)
        self.auth = "Basic " + base64.b64encode(f"{USER}:{self.password}".encode()).decode()
        self.rows: dict[str, Row] = {}
        self.extra: dict = {"loadavg": {}}
        self.profiles: dict[str, dict] = {}
        self.failed = False
        self.targets: dict[str, Target] = {}
        # bounds on when the gateway last verified our password (its login cache entry dates from then)
        self.login_lo: float | None = None
        self.login_hi: float | None = None
        # when the bench last sent the gateway a request: any request after an expiry logs in afresh
        self.gw_last_request: float | None = None
        self.gateway: GatewayServer | None = None
        self.nginx: NginxServer | None = None
        self.floors: dict[str, FloorServer] = {}  # --floor
        self.work = tmp / "client"
        self.work.mkdir(parents=True)

    # ---- set-up ---------------------------------------------------------------------------------------

    def setup(self) -> None:
        a = self.args
        max_size = max(2 << 30, int(a.size_gib * (1 << 30)) * 2)
        self.gateway = GatewayServer(self.tmp / "gateway", a, self.centre, self.password, max_size)
        # the gateway's CLI set-up (seconds of imports per call) runs while the documents are generated
        with ThreadPoolExecutor(1) as ex:
            fut = ex.submit(self.gateway.setup)
            self.ds = generate_data(self.tmp / "www", self.centre, a, self.scenarios)
            fut.result()
        self.make_rows()
        with ThreadPoolExecutor(1) as ex:
            fut = ex.submit(self.gateway.grant)
            self.extra["seed_s"] = seed_gateway(self.gateway.data_dir, self.gateway.env(), self.ds.uploads(),
                                                a.seed_workers)
            fut.result()
        self.nginx = NginxServer(self.tmp / "nginx", self.ds.root, USER, self.password)
        self.stack.callback(self.nginx.stop)
        self.nginx.start()
        self.stack.callback(self.gateway.stop)
        self.gateway.start()
        self.targets = {
            "nginx": Target("nginx", self.nginx.port, self.nginx.pid, self.auth),
            "gateway": Target("gateway", self.gateway.port, self.gateway.pid, self.auth),
        }
        if a.floor:
            self.start_floors()
        for t in self.targets.values():
            if t.name in FLOOR_SCENARIOS:
                self.check_floor(t)
            else:
                self.check_auth(t)
        self.extra["tls"] = {name: tls_info(t) for name, t in self.targets.items()}
        log(f"TLS as curl negotiates it: {self.extra['tls']}")

    @property
    def floor_names(self) -> list[str]:
        return list(self.floors)

    def start_floors(self) -> None:
        """--floor: both floors (those whose scenarios run), with the gateway's number of worker processes."""
        workers = self.args.workers or os.cpu_count() or 1
        for name, scenarios in FLOOR_SCENARIOS.items():
            if not self.scenarios & set(scenarios):
                continue
            floor = FloorServer(name, self.tmp / "floors", self.ds.root, self.nginx.cert, self.nginx.key, workers)
            self.stack.callback(floor.stop)
            floor.start()
            self.floors[name] = floor
            self.targets[name] = Target(name, floor.port, floor.pid, self.auth)
        script = str(FLOOR_SCRIPT.relative_to(REPO))
        self.extra["floors"] = {name: {"workers": workers, "port": f.port, "script": script,
                                       "scenarios": list(FLOOR_SCENARIOS[name])} for name, f in self.floors.items()}

    def check_floor(self, t: Target) -> None:
        """A floor is anonymous: floor-wsgidav must answer PROPFIND with 207, floor-wsgi (GET only) with 405."""
        expect = "207" if t.name == "floor-wsgidav" else "405"
        cp = subprocess.run(curl_base(t, 60) + ["-o", "/dev/null", "-w", "%{http_code}", "-X", "PROPFIND",
                                                "-H", "Depth: 0", t.url(f"/dav/{self.centre}/")],
                            capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
        if cp.stdout.strip() != expect:
            raise BenchError(f"{t.name}: PROPFIND answered {cp.stdout.strip()!r}, expected {expect} {cp.stderr[-300:]}")

    def check_auth(self, t: Target) -> None:
        """Both sides must refuse a request without credentials and accept ours."""
        url = t.url(f"/dav/{self.centre}/")
        cp = subprocess.run([CURL, "-sS", "-k", "--http1.1", "--max-time", "30", "-o", "/dev/null", "-w",
                             "%{http_code}", "-X", "PROPFIND", "-H", "Depth: 0", url],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if cp.stdout.strip() != "401":
            raise BenchError(f"{t.name}: PROPFIND without credentials answered {cp.stdout.strip()!r}, expected 401")
        t0 = time.monotonic()
        cp = subprocess.run(curl_base(t, 60) + ["-o", "/dev/null", "-w", "%{http_code}", "-X", "PROPFIND",
                                                "-H", "Depth: 0", url],
                            capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
        if t.name == "gateway":  # the first request with our credentials: a full login
            self.login_lo, self.login_hi = t0, time.monotonic()
            self.gw_last_request = self.login_hi
        if cp.stdout.strip() != "207":
            raise BenchError(f"{t.name}: PROPFIND with credentials answered {cp.stdout.strip()!r}, expected 207"
                             f" {cp.stderr[-300:]}")

    def make_rows(self) -> None:
        a, ds = self.args, self.ds
        size = human_bytes(ds.big_size) if ds.big_size else f"{a.size_gib:g} GiB"
        self.rows["propfind"] = Row("propfind", "propfind",
                                    f"1. PROPFIND Depth 1, {a.propfind_docs:,} docs ({a.propfind_body})",
                                    "ms", "lower", "<= 3.00x", 3.0)
        self.rows["get"] = Row("get", "get", f"2. GET {size} document (curl)", "MB/s", "higher", ">= 0.80x", 0.8)
        self.rows["wrk_rps"] = Row("wrk_rps", "wrk", f"3. {a.connections} clients x 200 KB GETs (wrk)", "req/s",
                                   "higher", ">= 0.50x", 0.5)
        self.rows["wrk_p99"] = Row("wrk_p99", "wrk", f"3. p99 latency, {a.connections} clients", "ms", "lower",
                                   "gateway <= 250 ms", target_abs=250.0)
        self.rows["wrk_fresh"] = Row("wrk_fresh", "wrk", "   fresh connection + GET during 3. (probe)", "ms",
                                     "info", "(info)")
        self.rows["exp_rps"] = Row("exp_rps", "expiry", f"4. {a.connections} clients, login cache just expired",
                                   "req/s", "info", "(info)")
        self.rows["exp_p99"] = Row("exp_p99", "expiry", "4. p99 latency, login cache just expired", "ms", "info",
                                   "(info)")
        self.rows["exp_fresh"] = Row("exp_fresh", "expiry", "4. worst fresh-connection GET (probe)", "ms", "info",
                                     "(info)")
        for s in ALL_SCENARIOS:
            self.rows[f"rss_{s}"] = Row(f"rss_{s}", s, f"   peak RSS during {s}", "MB", "info", "(info)")

    # ---- scenarios ------------------------------------------------------------------------------------

    def sides(self, scenario: str) -> list[Target]:
        """nginx and the gateway, then (--floor) the floors that take part in ``scenario``."""
        return [self.targets["nginx"], self.targets["gateway"]] + [
            t for name, t in self.targets.items() if scenario in FLOOR_SCENARIOS.get(name, ())]

    def sampled(self, t: Target, scenario: str):
        """RSS sampler of the server under test, feeding the scenario's RSS row at the end."""
        bench = self

        class _Ctx(RssSampler):
            def __exit__(self, *exc):
                super().__exit__(*exc)
                row = bench.rows[f"rss_{scenario}"]
                side = getattr(row, t.attr)
                side[:] = [max(side + [self.peak_mb])]

        return _Ctx(t.pid)

    def scen_propfind(self) -> None:
        row = self.rows["propfind"]
        a = self.args
        body_file = self.work / "propfind.xml"
        body_file.write_bytes(propfind_body(a.propfind_body))
        n_docs = len(self.ds.propfind_names)
        path = f"/dav/{self.centre}/propfind/"
        reps = a.propfind_repeats
        first: dict[str, float] = {}
        sizes: dict[str, int] = {}
        for t in self.sides("propfind"):
            outs = [self.work / f"pf-{t.name}-{i}.xml" for i in range(reps + 1)]
            cmd = curl_base(t, 600) + ["-X", "PROPFIND", "-H", "Depth: 1",
                                       "-H", "Content-Type: application/xml; charset=utf-8",
                                       "--data-binary", f"@{body_file}", "-w", W_FMT]
            for o in outs:  # one process, one kept-alive connection: 1 warm-up + reps timed requests
                cmd += ["-o", str(o), t.url(path)]
            with self.sampled(t, "propfind"):
                cp = run(cmd, 600 * (reps + 1), f"{t.name}: PROPFIND")
            res = parse_w(cp.stdout, reps + 1)
            for i, (code, tt, size, conns) in enumerate(res):
                if code != 207:
                    raise BenchError(f"{t.name}: PROPFIND answered {code}{tail(outs[i], 5)}")
            n, with_len = count_responses(outs[-1])
            if n != n_docs + 1 or with_len < n_docs:
                raise BenchError(f"{t.name}: PROPFIND listed {n} resources ({with_len} with a length), "
                                 f"expected {n_docs + 1} ({n_docs} documents)")
            if sum(c for *_, c in res[1:]) != 0:
                log(f"  note: {t.name}: curl reconnected during the PROPFIND series")
            times = [tt * 1000 for _, tt, _, _ in res[1:]]
            getattr(row, t.attr).extend(times)
            first[t.name] = res[0][1] * 1000
            sizes[t.name] = res[-1][2]
            for o in outs:
                o.unlink()
            log(f"  propfind {t.name:7s}: first {first[t.name]:.1f} ms, then "
                f"{', '.join(f'{x:.1f}' for x in times)} ms; {sizes[t.name]:,} bytes of XML")
        self.extra["propfind"] = {"first_request_ms": first, "response_bytes": sizes, "props": a.propfind_body}
        row.note = ("1 warm-up + {} requests on one kept-alive connection; response {} (nginx) / {} (gateway) "
                    "bytes").format(reps, f"{sizes.get('nginx', 0):,}", f"{sizes.get('gateway', 0):,}")
        floors = [f"{size:,} ({name})" for name, size in sizes.items() if name in FLOOR_SCENARIOS]
        if floors:
            row.note += "; " + ", ".join(floors)

    def scen_get(self) -> None:
        row = self.rows["get"]
        ds = self.ds
        path = f"/dav/{self.centre}/big/{ds.big_name}"
        timeout = max(120.0, ds.big_size / (5 * MB))
        for rep in range(1, self.args.get_repeats + 1):
            for t in self.sides("get"):
                with self.sampled(t, "get"):
                    cp = run(curl_base(t, timeout) + ["-o", "/dev/null", "-w", W_FMT, t.url(path)],
                             timeout + 30, f"{t.name}: GET")
                code, tt, size, _ = parse_w(cp.stdout, 1)[0]
                if code != 200 or size != ds.big_size:
                    raise BenchError(f"{t.name}: GET answered {code} with {size} bytes, expected 200 and "
                                     f"{ds.big_size}")
                getattr(row, t.attr).append(size / MB / tt)
                log(f"  get {t.name:7s} rep {rep}: {tt:.2f} s, {size / MB / tt:,.1f} MB/s")
        # content check, outside the timing: the whole document through a pipe into SHA-256
        for t in self.sides("get"):
            h = hashlib.sha256()
            n = 0
            proc = subprocess.Popen(curl_base(t, timeout) + ["-o", "-", t.url(path)], stdout=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                assert proc.stdout is not None
                while chunk := proc.stdout.read(4 << 20):
                    h.update(chunk)
                    n += len(chunk)
                proc.wait(timeout=timeout)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if n != ds.big_size or h.hexdigest() != ds.big_sha:
                raise BenchError(f"{t.name}: GET returned different bytes than were stored ({n} bytes)")
        row.note = f"median of {self.args.get_repeats}; curl -o /dev/null, one connection per GET; SHA-256 checked"

    def wrk_script(self) -> Path:
        script = self.work / "rotate.lua"
        script.write_text(WRK_LUA.format(prefix=f"/dav/{self.centre}/small/", n=len(self.ds.small_names),
                                         offset=max(1, len(self.ds.small_names) // 2)))
        return script

    def check_small_docs(self) -> None:
        """Content check, outside the timing: a few 200 KB documents byte for byte from both servers."""
        names = self.ds.small_names
        for t in self.sides("wrk"):
            for name in (names[0], names[len(names) // 2], names[-1]):
                cp = subprocess.run(curl_base(t, 60) + ["-o", "-", t.url(f"/dav/{self.centre}/small/{name}")],
                                    capture_output=True, timeout=90, stdin=subprocess.DEVNULL)
                if cp.returncode != 0 or cp.stdout != (self.ds.folder("small") / name).read_bytes():
                    raise BenchError(f"{t.name}: GET {name} did not return the stored document")

    def load_run(self, t: Target, seconds: float, label: str, scenario: str) -> dict:
        """One measured wrk run, with the server's RSS sampled and, beside it, a fresh-connection probe: once a
        second a new curl connection GETs one document (wrk's latency starts only after a connection is up
        and counts only requests that finished in the window; the probe shows what a new client waits)."""
        a = self.args
        probes: list[tuple[float, float]] = []  # (TLS handshake done, whole GET), seconds
        stop = threading.Event()
        url = t.url(f"/dav/{self.centre}/small/{self.ds.small_names[-1]}")

        def probe_once() -> None:
            try:
                cp = subprocess.run(curl_base(t, 60) + ["-o", "/dev/null", "-w",
                                                        "%{http_code} %{time_appconnect} %{time_total}", url],
                                    capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
                code, tls, total = cp.stdout.split()
                if code == "200":
                    probes.append((float(tls), float(total)))
            except (subprocess.SubprocessError, ValueError):
                pass

        def probe() -> None:
            # one new probe every second, whether or not the earlier ones have finished
            started: list[threading.Thread] = []
            stop.wait(1.0)
            for _ in range(max(1, int(seconds) - 1)):
                if stop.is_set():
                    break
                th = threading.Thread(target=probe_once, daemon=True)
                th.start()
                started.append(th)
                stop.wait(1.0)
            for th in started:
                th.join(timeout=95)

        prober = threading.Thread(target=probe, daemon=True)
        spread: dict[str, int] = {}
        counter = threading.Thread(target=lambda: stop.wait(seconds * 0.8) or spread.update(
            connections_per_pid(t.port)), daemon=True)
        cpu = CpuMeter(lambda: tree_pids(t.pid))
        overflows0 = listen_overflows()
        drops0 = self.handshake_drops() if t.name == "gateway" else 0
        with self.sampled(t, scenario):
            prober.start()
            counter.start()
            cpu.start()
            try:
                r = run_wrk(t, self.wrk_script(), a.connections, a.wrk_threads, seconds, 30,
                            self.work / f"wrk-{t.name}-{label}.txt")
            finally:
                cpu.stop()
                stop.set()
        prober.join(timeout=120)  # outside the RSS sampling: the probes started late may still run
        counter.join(timeout=15)
        r["cpu"] = cpu.result
        r["cpu"]["server_cpu_ms_per_request"] = round(cpu.result["server_cores"] * cpu.result["seconds"] * 1000
                                                      / max(1, r["requests"]), 3)
        r["connections_per_pid"] = spread  # at 80% of the run, per server process holding them
        r["listen_overflows"] = listen_overflows() - overflows0
        if t.name == "gateway":
            time.sleep(1.5)  # let the server log the connections wrk dropped at its end (once a second)
            r["handshake_drops"] = self.handshake_drops() - drops0
        r["probe_tls_s"] = [p[0] for p in probes]
        r["probe_total_s"] = [p[1] for p in probes]
        # Little's law: requests in flight on average, as wrk saw them (close to -c when every connection works)
        r["in_flight"] = r["rps"] * r["lat_mean_us"] / 1e6
        pr = (f", fresh-connection GET median {median(r['probe_total_s']) * 1000:,.0f} ms / max "
              f"{max(r['probe_total_s']) * 1000:,.0f} ms ({len(probes)} probes)" if probes else ", no probe finished")
        log(f"  wrk {t.name:7s} {label}: {r['rps']:,.0f} req/s, p50 {r['p50_us'] / 1000:.1f} ms, p99 "
            f"{r['p99_us'] / 1000:.1f} ms, max {r['lat_max_us'] / 1000:.0f} ms, {r['in_flight']:.0f} in flight, "
            f"{r['errors']} socket errors ({r['err_timeout']} timeouts), {r['err_status']} non-2xx/3xx{pr}"
            + (f"; {r['listen_overflows']} listen-queue overflows on this host meanwhile"
               if r["listen_overflows"] else "")
            + (f"; the gateway has logged {r['handshake_drops']} more connections dropped during their TLS "
               f"handshake" if r.get("handshake_drops") else ""))
        c = r["cpu"]
        log(f"  wrk {t.name:7s} {label}: server used {c['server_cores']:.2f} of {c['cores']} cores "
            f"({c['server_cpu_ms_per_request']:.2f} ms CPU per request), machine busy {c['machine_busy_cores']:.2f}; "
            f"connections per server process at 80% of the run: {sorted(spread.values(), reverse=True)}")
        if r["requests"] == 0:
            raise BenchError(f"{t.name}: wrk completed no request{tail(self.work / f'wrk-{t.name}-{label}.txt', 20)}")
        if r["err_status"]:
            raise BenchError(f"{t.name}: {r['err_status']} of {r['requests']} responses were not 2xx/3xx")
        if r["bytes"] / r["requests"] < self.ds.small_size:
            raise BenchError(f"{t.name}: {r['bytes'] / r['requests']:.0f} bytes per response, less than the "
                             f"{self.ds.small_size}-byte document")
        return r

    def handshake_drops(self) -> int:
        """How many connections the gateway's log says a client dropped during the TLS handshake (its handshake
        threads: "TLS handshakes: N abandoned by the client during handshake", summed over the workers; older
        gateways, cheroot: one "peer dropped the TLS connection suddenly, during handshake" each). When wrk
        stops, those are the connections that were still waiting for the server to finish their handshake."""
        try:
            text = self.gateway.log.read_text(errors="replace")
        except OSError:
            return 0
        counted = re.findall(r"(\d+) abandoned by the client during handshake", text)
        return sum(map(int, counted)) + text.count("during handshake") - len(counted)

    def prime_auth(self, t: Target) -> None:
        """One authenticated request (on the gateway: a full login if its cache entry has run out)."""
        run(curl_base(t, 120) + ["-o", "/dev/null", "-X", "PROPFIND", "-H", "Depth: 0",
                                 t.url(f"/dav/{self.centre}/")], 180, f"{t.name}: PROPFIND (auth)")

    def wait_for_login_expiry(self) -> None:
        """Until the gateway has certainly forgotten our verified login. It remembers it for 60 s from the
        verification, however often it is used; but any request after an expiry verifies afresh, so the
        entry is at most as old as the bench's last request to the gateway."""
        marks = [m for m in (self.login_hi, self.gw_last_request) if m is not None]
        wait = (max(marks) + LOGIN_CACHE_S + 1 - time.monotonic()) if marks else LOGIN_CACHE_S + 1
        if wait > 0:
            log(f"  waiting {wait:.0f} s for the gateway's login cache to run out")
            time.sleep(wait)

    def ensure_fresh_login(self, needed_s: float) -> None:
        """Make sure the gateway's login cache entry stays valid for the next ``needed_s`` seconds, so that a
        measurement does not include an expiry (scenario expiry measures that on purpose)."""
        if self.login_lo is not None and time.monotonic() + needed_s < self.login_lo + LOGIN_CACHE_S - 2:
            return
        self.wait_for_login_expiry()
        t0 = time.monotonic()
        self.prime_auth(self.targets["gateway"])
        self.login_lo, self.login_hi = t0, time.monotonic()

    def scen_wrk(self) -> None:
        a = self.args
        rps, p99 = self.rows["wrk_rps"], self.rows["wrk_p99"]
        fresh = self.rows["wrk_fresh"]
        self.check_small_docs()
        details = {}
        for t in self.sides("wrk"):
            if t.name == "gateway":
                self.ensure_fresh_login(a.wrk_warmup + a.wrk_seconds + 15)
                drops0 = self.handshake_drops()
            if a.wrk_warmup > 0:
                w = run_wrk(t, self.wrk_script(), a.connections, a.wrk_threads, a.wrk_warmup, 30,
                            self.work / f"wrk-{t.name}-warmup.txt")
                log(f"  wrk {t.name:7s} warm-up {a.wrk_warmup:g} s: {w['rps']:,.0f} req/s, "
                    f"p99 {w['p99_us'] / 1000:.1f} ms, {w['errors']} socket errors, {w['err_status']} bad statuses")
                details[f"{t.name}_warmup"] = w
            r = self.load_run(t, a.wrk_seconds, "measured", "wrk")
            if t.name == "gateway":
                r["handshake_drops_incl_warmup"] = self.handshake_drops() - drops0
            details[t.name] = r
            getattr(rps, t.attr).append(r["rps"])
            getattr(p99, t.attr).append(r["p99_us"] / 1000)
            if r["probe_total_s"]:
                getattr(fresh, t.attr).append(median(r["probe_total_s"]) * 1000)
        self.extra["wrk"] = details
        notes = []
        names = [t.name for t in self.sides("wrk")]
        for name in names:
            r = details.get(name)
            if r and r["errors"]:
                notes.append(f"{name}: {r['errors']} socket errors ({r['err_timeout']} timeouts, not in the latency)")
        rps.note = (f"wrk -t{a.wrk_threads} -c{a.connections} -d{a.wrk_seconds:g}s --latency --timeout 30s, "
                    f"rotating over {len(self.ds.small_names):,} documents of {self.ds.small_size:,} bytes"
                    + (f", after a {a.wrk_warmup:g} s warm-up" if a.wrk_warmup > 0 else "")
                    + ("; " + "; ".join(notes) if notes else ""))
        inflight = {n: details[n]["in_flight"] for n in names if n in details}
        drops = details.get("gateway", {}).get("handshake_drops_incl_warmup")
        opened = a.connections * (2 if a.wrk_warmup > 0 else 1)
        p99.note = ("requests in flight on average (rps x mean latency; wrk times a request only once its "
                    "connection is up): " + ", ".join(f"{n} {v:.0f}" for n, v in inflight.items())
                    + f" of {a.connections}"
                    + (f"; {drops} of the {opened} connections wrk opened to the gateway (warm-up and measured "
                       f"run) were still in their TLS handshake when wrk stopped (gateway log)" if drops else ""))
        fresh.note = ("median of probes started once a second during the measured run, each a new TLS connection "
                      "+ one GET (curl)")

    def scen_expiry(self) -> None:
        """The gateway alone, right after its Basic-login cache expired: every request that arrives before the
        first re-verification finishes verifies the password itself (argon2) -- 200 clients at once."""
        a = self.args
        t = self.targets["gateway"]
        self.wait_for_login_expiry()
        t0 = time.monotonic()
        r = self.load_run(t, a.wrk_seconds, "after-expiry", "expiry")
        self.login_lo, self.login_hi = t0, time.monotonic()  # the stampede re-verified it somewhere in there
        self.extra["expiry"] = r
        self.rows["exp_rps"].gateway.append(r["rps"])
        self.rows["exp_p99"].gateway.append(r["p99_us"] / 1000)
        if r["probe_total_s"]:
            self.rows["exp_fresh"].gateway.append(max(r["probe_total_s"]) * 1000)
        self.rows["exp_rps"].note = (f"wrk as in 3. (no warm-up), started just after the gateway's "
                                     f"{LOGIN_CACHE_S:.0f} s login cache ran out; {r['in_flight']:.0f} requests "
                                     f"in flight on average; {r.get('handshake_drops', 0)} of "
                                     f"{a.connections} connections still in their TLS handshake when wrk "
                                     f"stopped; peak RSS in the expiry row below")

    # ---- profiling of the gateway when a target is missed ----------------------------------------------

    def profile(self, scenario: str) -> None:
        a = self.args
        pyspy = REPO / ".venv" / "bin" / "py-spy"
        if not pyspy.exists():
            pyspy = Path(shutil.which("py-spy") or "")
        if not pyspy or not pyspy.exists():
            log("py-spy not found: no profile")
            return
        t = self.targets["gateway"]
        if scenario == "wrk":  # the profile is of the steady state: no login-cache expiry in it
            self.ensure_fresh_login(a.profile_seconds + 20)
        out = (Path(a.profile_dir) if a.profile_dir else self.tmp) / f"profile-{scenario}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        secs = a.profile_seconds
        log(f"profiling the gateway during {scenario} for {secs} s (py-spy record --nonblocking -> {out})")
        spy = subprocess.Popen([str(pyspy), "record", "--nonblocking", "--subprocesses", "-f", "raw", "-o", str(out),
                                "--pid",
                                str(t.pid), "-d", str(secs)], stdout=subprocess.DEVNULL,
                               stderr=open(self.work / "py-spy.log", "ab"), stdin=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            deadline = time.monotonic() + secs
            if scenario == "wrk":
                run_wrk(t, self.wrk_script(), a.connections, a.wrk_threads, max(1, secs - 1), 30,
                        self.work / "wrk-profile.txt")
            elif scenario == "propfind":
                body = self.work / "propfind.xml"
                for _ in range(1000):
                    if time.monotonic() >= deadline:
                        break
                    subprocess.run(curl_base(t, 600) + ["-X", "PROPFIND", "-H", "Depth: 1", "-H",
                                                        "Content-Type: application/xml; charset=utf-8",
                                                        "--data-binary", f"@{body}", "-o", "/dev/null",
                                                        t.url(f"/dav/{self.centre}/propfind/")],
                                   timeout=600, stdin=subprocess.DEVNULL, capture_output=True)
            elif scenario == "get":
                for _ in range(1000):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    big = t.url(f"/dav/{self.centre}/big/{self.ds.big_name}")
                    subprocess.run(curl_base(t, max(1, remaining)) + ["-o", "/dev/null", big],
                                   timeout=remaining + 30, stdin=subprocess.DEVNULL, capture_output=True)
            spy.wait(timeout=secs + 60)
        finally:
            if spy.poll() is None:
                spy.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spy.wait(timeout=20)
        if not out.exists():
            log(f"py-spy wrote no profile{tail(self.work / 'py-spy.log', 10)}")
            return
        summary = summarize_raw_profile(out)
        summary["file"] = str(out) if a.profile_dir else None
        self.profiles[scenario] = summary
        log(f"gateway profile during {scenario}:\n{format_profile(summary)}")

    # ---- driver ---------------------------------------------------------------------------------------

    def run(self) -> None:
        self.setup()
        for s in RUN_ORDER:
            if s not in self.scenarios:
                continue
            log(f"scenario {s} (load average {loadavg()})")
            self.extra["loadavg"][s] = loadavg()
            try:
                getattr(self, f"scen_{s}")()
                self.gw_last_request = time.monotonic()
            except BenchError as exc:
                self.gw_last_request = time.monotonic()
                log(f"scenario {s} FAILED: {exc}")
                for r in self.rows.values():
                    if r.scenario == s and r.better != "info":
                        r.error = str(exc).strip()
                self.failed = True
        if self.args.profile:
            missed = []
            for r in self.rows.values():
                if r.verdict == "MISS" and r.scenario not in missed and r.scenario in self.scenarios:
                    missed.append(r.scenario)
            for s in missed:
                try:
                    self.profile(s)
                except (BenchError, subprocess.SubprocessError, OSError) as exc:
                    log(f"profiling {s} failed: {exc}")
                finally:
                    self.gw_last_request = time.monotonic()

    def result_rows(self) -> list[Row]:
        rows = [r for r in self.rows.values() if r.scenario in self.scenarios and (r.better != "info" or
                                                                                    r.nginx or r.gateway)]
        main = [r for r in rows if r.better != "info"]
        info = [r for r in rows if r.better == "info"]
        return main + info


def versions() -> dict:
    def first_line(cmd: list[str]) -> str | None:
        try:
            cp = subprocess.run(cmd, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return None
        return ((cp.stdout or cp.stderr).strip().splitlines() or [""])[0]

    out = {"nginx": first_line([NGINX, "-v"]), "curl": first_line([CURL, "-V"]), "wrk": first_line([WRK, "-v"]),
           "openssl": first_line([OPENSSL, "version"]), "python": platform.python_version()}
    try:
        from importlib.metadata import version

        for pkg in ("wsgidav", "cheroot", "cryptography", "SQLAlchemy"):
            out[pkg] = version(pkg)
    except Exception:  # noqa: BLE001 - informational only
        pass
    return out


def gateway_revision() -> dict:
    """Which gateway code was measured: the commit, and product files changed in the work tree."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True, timeout=20,
                                  stdin=subprocess.DEVNULL).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = [ln[3:] for ln in git("status", "--porcelain", "--", "gateway", "storage", "auth").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "changed_product_files": dirty}


def floor_json(r: Row, floors: list[str]) -> dict:
    """--floor: each floor's figures, median, ratio to nginx and whether it meets the row's target itself."""
    out: dict = {}
    for name in floors:
        side = name.replace("-", "_")
        out.update({side: getattr(r, side), f"{side}_median": r.med(side), f"{side}_ratio": r.ratio_of(side),
                    f"{side}_meets_target": r.floor_meets(side) or None})
    return out


def rows_to_json(rows: list[Row], bench: Bench, args, started: float) -> dict:
    floors = bench.floor_names
    return {
        "gateway_revision": gateway_revision(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "kernel": platform.release()},
        "versions": versions(),
        "gateway_cmd": gateway_base_cmd(args),
        "params": {k: v for k, v in vars(args).items() if k not in ("json", "blob_env") and
                   not (k == "floor" and not v)},
        "data": {"propfind_docs": len(bench.ds.propfind_names) if hasattr(bench, "ds") else None,
                 "small_files": len(bench.ds.small_names) if hasattr(bench, "ds") else None,
                 "small_doc_bytes": bench.ds.small_size if hasattr(bench, "ds") else None,
                 "big_doc_bytes": bench.ds.big_size if hasattr(bench, "ds") else None},
        "extra": bench.extra,
        "results": [
            {"scenario": r.key, "label": r.label, "unit": r.unit, "better": r.better, "target": r.target,
             "nginx": r.nginx, "gateway": r.gateway, "nginx_median": r.med("nginx"),
             "gateway_median": r.med("gateway"), "ratio": r.ratio, "result": r.verdict, "note": r.note,
             "error": r.error, **floor_json(r, floors)}
            for r in rows
        ],
        "profiles": bench.profiles,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="WebDAV benchmark: the gateway against nginx + dav_ext, both over TLS.")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run in well under a minute")
    p.add_argument("--blobs", choices=["local", "s3"], default="local",
                   help="the gateway's blob store: the local folder, or S3 on a SeaweedFS started here")
    p.add_argument("--only", action="append", metavar="SCENARIO",
                   help=f"run only these scenarios ({', '.join(ALL_SCENARIOS)}); repeat or comma-separate "
                        f"(default: all; --quick leaves out expiry)")
    p.add_argument("--json", metavar="OUT", help="also write every figure, the parameters and versions as JSON")
    p.add_argument("--propfind-docs", type=int, help="documents in the PROPFIND folder (default 10000)")
    p.add_argument("--propfind-repeats", type=int, help="timed PROPFIND requests, median taken (default 5)")
    p.add_argument("--propfind-body", choices=("prop", "allprop"), default="prop",
                   help="prop: ask for the usual 6 live properties (default); allprop: empty body")
    p.add_argument("--size-gib", type=float, help="size of the GET document (default 1)")
    p.add_argument("--get-repeats", type=int, help="GETs of the big document per server, median taken (default 3)")
    p.add_argument("--small-files", type=int, help="distinct 200 KB documents wrk rotates over (default 2000)")
    p.add_argument("--connections", type=int, default=200, help="wrk connections (default 200)")
    p.add_argument("--database-url", help="the gateway's database (an empty one; default SQLite in its data dir)")
    p.add_argument("--workers", type=int, help="gateway worker processes (serve --workers N; default: the "
                                               "gateway's own default, the number of cores)")
    p.add_argument("--floor", action="store_true",
                   help="also measure the stack floors (bench/floor/https_floor.py): wsgidav's FilesystemProvider "
                        "and a minimal WSGI app on the gateway's cheroot + TLS, serving nginx's files")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--wrk-seconds", type=float, help="wrk duration (default 10)")
    p.add_argument("--wrk-warmup", type=float, help="untimed wrk run before the measured one, seconds "
                                                    "(default 2; 0 = none)")
    p.add_argument("--no-expiry", dest="expiry", action="store_false",
                   help="leave out scenario expiry (the gateway under load right after its login cache ran out)")
    p.add_argument("--seed-workers", type=int, default=2, help="processes delivering documents to the gateway "
                                                               "(default 2)")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="do not profile the gateway (py-spy) when a target is missed")
    p.add_argument("--profile-seconds", type=int, help="length of each profile (default 10; 3 with --quick)")
    p.add_argument("--profile-dir", help="keep py-spy's raw profiles here (default: summarized, then deleted)")
    p.add_argument("--gateway-cmd", help="how to call the gateway CLI (default: .venv/bin/python -m gateway)")
    p.add_argument("--tmp-dir", help="parent of the temp dir (documents, both servers' files; ~3 GB full)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (serve.log, nginx logs; debugging)")
    p.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    a = p.parse_args(argv)
    quick = dict(propfind_docs=200, propfind_repeats=5, size_gib=1 / 64, get_repeats=3, small_files=60,
                 wrk_seconds=3.0, wrk_warmup=1.0, profile_seconds=3)
    full = dict(propfind_docs=10000, propfind_repeats=5, size_gib=1.0, get_repeats=3, small_files=2000,
                wrk_seconds=10.0, wrk_warmup=2.0, profile_seconds=10)
    for k, v in (quick if a.quick else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.only:
        only = [s.strip() for item in a.only for s in item.split(",") if s.strip()]
        bad = [s for s in only if s not in ALL_SCENARIOS]
        if bad:
            p.error(f"unknown scenario(s) {bad}; choose from {', '.join(ALL_SCENARIOS)}")
        a.only = only
    if a.propfind_docs < 1 or a.propfind_repeats < 1 or a.size_gib <= 0 or a.get_repeats < 1 or \
            a.small_files < 1 or a.connections < 1 or a.wrk_threads < 1 or a.wrk_seconds <= 0 or \
            a.wrk_warmup < 0 or a.seed_workers < 1 or a.profile_seconds < 1:
        p.error("sizes, counts, durations and repeats must be positive")
    if a.propfind_docs > 99999 or a.small_files > 99999 or a.size_gib > 8 or a.connections > 2000 or \
            a.wrk_seconds > 300 or a.propfind_repeats > 100 or a.get_repeats > 20 or a.profile_seconds > 120:
        p.error("counts, sizes or durations too large")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_interrupt)
    missing = [tool for tool in (NGINX, CURL, WRK, OPENSSL) if not os.path.exists(tool)]
    if missing or find_dav_ext_module() is None:
        print(f"missing: {', '.join(missing) or 'the nginx dav_ext module'}: run scripts/install-bench-deps.sh",
              file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="instpages-davbench-", dir=args.tmp_dir))
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
        if args.keep_tmp:
            log(f"temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    rows = bench.result_rows() if bench is not None and bench.rows else []
    if any(r.nginx or r.gateway or r.error for r in rows):
        print()
        print_table(rows, floors=bench.floor_names)
        if bench.profiles:
            print("gateway profiles (py-spy, during the missed scenarios):")
            for s, summary in bench.profiles.items():
                print(f"  {s}:")
                print(format_profile(summary))
        if args.json:
            Path(args.json).write_text(json.dumps(rows_to_json(rows, bench, args, started), indent=2) + "\n")
            log(f"results written to {args.json}")
        if rc == 0 and args.strict and any(r.verdict == "MISS" for r in rows):
            rc = 3
    return rc


if __name__ == "__main__":
    sys.exit(main())
