"""Gateway nodes of the scaled-out shape for the tests: each node a real ``python -m gateway serve`` process with its
own data folder, node id and ports, all of them on ONE PostgreSQL database and ONE S3 bucket/prefix (SeaweedFS),
with the SAME master key (copied from the first node's data folder, as an operator copies it to a new machine).

:func:`cluster` is the context manager (``with cluster(tmp_path, pg_url, s3_server) as c:``): it prepares the
database and the first node's keys with the people of :func:`tests.conftest.populate`, starts the nodes one after
the other, and stops every process it started by its handle (SIGTERM, a bounded wait, SIGKILL). A node is
restarted with the same node id and data folder by :meth:`Node.start` after :meth:`Node.kill`.

:func:`haproxy` puts a real HAProxy (Debian's ``haproxy``) in TCP mode in front of the nodes, sending PROXY v2
headers from its own address (:data:`BALANCER`), health-checking ``/readyz`` over TLS.
"""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from gateway.config import load_config
from gateway.services import build
from tests.conftest import PYTHON, ROOT, SFTP_OPTS, cli, free_port, populate, ssh_env, wait_port

RUNNING = "Institutional Pages is running"
#: what every node runs with unless a test says otherwise: one process per node (the two-core machine runs
#: several nodes), password-only logins for the test people, no delays or bans unless a test sets them
BASE_ENV = {"INSTPAGES_SERVER_WORKERS": "1", "INSTPAGES_AUTH_SECOND_FACTOR": "off",
            "INSTPAGES_AUTH_FAILURE_DELAY_BASE": "0", "INSTPAGES_AUTH_BAN_AFTER": "100000",
            "INSTPAGES_AUTH_SOURCE_BAN_SCORE": "100000", "INSTPAGES_STORAGE_WORKERS": "8"}


@dataclass
class Node:
    """One gateway node: ``env`` is its whole configuration (the process gets nothing else from ours)."""

    name: str
    env: dict[str, str]
    log: Path
    keys: dict[str, Path]
    proc: subprocess.Popen | None = None
    _config: object = field(default=None, repr=False)

    @property
    def node_id(self) -> str:
        return self.env["INSTPAGES_NODE_ID"]

    @property
    def data_dir(self) -> Path:
        return Path(self.env["INSTPAGES_DATA_DIR"])

    @property
    def port(self) -> int:
        return int(self.env["INSTPAGES_SFTP_PORT"])

    @property
    def https_port(self) -> int:
        return int(self.env["INSTPAGES_WEBDAV_PORT"])

    dav_port = https_port  # the name the in-process gateways of tests/conftest.py use

    @property
    def config(self):
        """The node's configuration as it reads it (paths of its TLS pair, for curl's ``--cacert``)."""
        if self._config is None:
            self._config = load_config(None, env=self.env)
        return self._config

    @property
    def dav_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}/dav"

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # -- the process -------------------------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> Node:
        """``python -m gateway serve``; returns once it said it runs and its HTTPS port answers."""
        assert self.proc is None or self.proc.poll() is not None, f"node {self.name} is running already"
        said = self.text().count(RUNNING)
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen([PYTHON, "-m", "gateway", "serve"], stdout=fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env, cwd=str(ROOT),
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.text().count(RUNNING) <= said:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"node {self.name} did not start:\n{self.text()[-3000:]}")
            time.sleep(0.1)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing of the node runs any more when this returns."""
        if self.running():
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM, up to ``grace`` seconds, then SIGKILL."""
        if self.running():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    # -- clients -----------------------------------------------------------------------------------------------
    def sftp(self, user: str, commands: str, *, timeout: float = 180) -> subprocess.CompletedProcess:
        """OpenSSH ``sftp -b -`` as ``user`` with its key, against this node."""
        cmd = ["sftp", *SFTP_OPTS, "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
               "-i", str(self.keys[user]), "-P", str(self.port), "-b", "-", f"{user}@127.0.0.1"]
        return subprocess.run(cmd, input=commands, capture_output=True, text=True, env=ssh_env(), timeout=timeout,
                              start_new_session=True, check=False)

    def connect(self, user: str, **kw):
        """An asyncssh client connection to this node as ``user`` (use inside ``async with``)."""
        import asyncssh

        opts = {"username": user, "known_hosts": None, "agent_path": None, "client_keys": [str(self.keys[user])],
                "preferred_auth": "publickey"}
        opts.update(kw)
        return asyncssh.connect("127.0.0.1", self.port, **opts)

    def probe(self, path: str) -> int:
        """The status of an unauthenticated GET (``/healthz``, ``/readyz``), 0 when nothing answers."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(self.config.tls_cert_path))
        ctx.check_hostname = False
        conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, context=ctx, timeout=15)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            return r.status
        except (OSError, http.client.HTTPException):
            return 0
        finally:
            conn.close()

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        """The ``instpages`` CLI on this node's machine, as its operator runs it (the shared database)."""
        return cli(*args, data_dir=self.data_dir, input=input,
                   env={k: v for k, v in self.env.items() if k.startswith("INSTPAGES_")})


class Cluster:
    """Nodes on one database and one bucket prefix; ``admin``/``repo``: the operator's own services on node A's
    configuration (set-up and looking at the documents table); ``keys``: the test people's SSH keys."""

    def __init__(self, root: Path, database_url: str, s3, names: tuple[str, ...], env: dict[str, str]):
        self.root, self.s3 = root, s3
        self.prefix = f"c{uuid.uuid4().hex[:10]}/"
        self.keys: dict[str, Path] = {}
        shared = {k: v for k, v in os.environ.items() if not k.startswith("INSTPAGES_")}
        shared.update(PYTHONPATH=str(ROOT), INSTPAGES_STORAGE_DATABASE_URL=database_url)
        shared.update({**BASE_ENV, **s3.env(prefix=self.prefix), **env})
        self.nodes = [Node(n, dict(shared, INSTPAGES_NODE_ID=f"node-{n}", INSTPAGES_DATA_DIR=str(root / n / "var"),
                                   INSTPAGES_SFTP_PORT=str(free_port()), INSTPAGES_WEBDAV_PORT=str(free_port())),
                           root / f"serve-{n}.log", self.keys) for n in names]
        self.services = build(load_config(None, env=self.nodes[0].env), worker="operator")
        self.admin = self.services.administration(actor="test")
        self.repo = self.services.repo
        try:
            populate(self, root)
            for node in self.nodes[1:]:  # the same master key on every node: a copy of the first node's keys
                shutil.copytree(self.nodes[0].config.key_path, node.config.key_path)
        except BaseException:
            self.services.close()
            raise

    def __getitem__(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def start(self) -> Cluster:
        for node in self.nodes:  # one after the other: the first start of each also makes its host key and TLS pair
            node.start()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.services.close()

    # -- what an operator looks at -------------------------------------------------------------------------------
    def documents(self, name: str) -> list[tuple[str, str, str]]:
        """``(state, node_id, blob_id)`` of every row of the documents table named ``name``, oldest first."""
        with self.repo.read() as c:
            return [tuple(r) for r in c.execute(sa.text(
                "SELECT state, node_id, blob_id FROM documents WHERE name = :n ORDER BY id"), {"n": name})]

    def s3_client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.s3.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.s3.access_key, aws_secret_access_key=self.s3.secret_key)

    def audit(self, action: str | None = None, limit: int = 50) -> list:
        """The newest events of the record (every node writes the one record), as ``Gateway.audit``."""
        with self.repo.read() as c:
            return self.repo.audit_events(c, action=action, limit=limit)

    def bucket(self, under: str = "") -> tuple[list[str], list[str]]:
        """What the bucket holds below this cluster's prefix + ``under``, listed with boto3: (object keys,
        keys of multipart uploads in progress), both without the prefix."""
        client, prefix = self.s3_client(), self.prefix + under
        objects = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.s3.bucket, Prefix=prefix) for o in page.get("Contents", ())]
        uploads = [u["Key"] for page in client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.s3.bucket, Prefix=prefix) for u in page.get("Uploads", ())]
        cut = len(self.prefix)
        return [k[cut:] for k in objects], [k[cut:] for k in uploads]


@contextmanager
def cluster(root: Path, database_url: str, s3, names: tuple[str, ...] = ("a", "b"), env: dict | None = None):
    """Nodes ``names`` (node ids ``node-<name>``) started on ``database_url`` and ``s3`` (a
    :class:`tests.s3server.SeaweedS3`); every process stopped afterwards."""
    c = Cluster(root, database_url, s3, names, dict(env or {}))
    try:
        yield c.start()
    finally:
        c.stop()


#: the address HAProxy connects to the nodes from (``source``): the nodes' ``server.proxy_protocol_from``
BALANCER = "127.0.0.5"
HAPROXY_CONFIG = """global
    maxconn 500
    stats socket {stats} mode 600 level admin
defaults
    mode tcp
    timeout connect 5s
    timeout client 180s
    timeout server 180s
    source {balancer}
listen sftp
    bind 127.0.0.1:{sftp_port}
    balance roundrobin
{sftp_servers}
listen https
    bind 127.0.0.1:{https_port}
    balance roundrobin
    option httpchk
    http-check send meth HEAD uri /readyz ver HTTP/1.1 hdr Host gateway
    http-check expect status 200
{https_servers}
"""


@dataclass
class Balancer:
    """A running HAProxy: clients use ``port`` (SFTP) and ``https_port``; ``status()`` is what its health checks
    say of each server."""

    proc: subprocess.Popen
    port: int
    https_port: int
    stats: Path
    log: Path

    def status(self) -> dict[str, str]:
        """``{"sftp/gw-a": "UP", ...}`` from HAProxy's stats socket."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.stats))
            s.sendall(b"show stat\n")
            out = b"".join(iter(lambda: s.recv(65536), b"")).decode()
        rows = [ln.split(",") for ln in out.splitlines() if ln and not ln.startswith("#")]
        return {f"{r[0]}/{r[1]}": r[17] for r in rows if r[1] not in ("FRONTEND", "BACKEND")}

    def wait_up(self, timeout: float = 30.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if all(v == "UP" for v in st.values()) or time.monotonic() > deadline:
                return st
            time.sleep(0.2)


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if os.path.exists(p)), None)
    if found is None:  # a missing balancer fails the test: scripts/install-test-deps.sh installs it
        raise RuntimeError("haproxy not found: run scripts/install-test-deps.sh (Debian package haproxy)")
    return found


@contextmanager
def haproxy(root: Path, nodes, *, check_interval: str = "1s"):
    """HAProxy in TCP mode in front of ``nodes`` (anything with ``name``, ``port``, ``https_port``), sending PROXY v2
    headers (``send-proxy-v2``) from :data:`BALANCER`, health checks included; stopped by its handle afterwards."""
    sftp_port, https_port = free_port(), free_port()
    stats, cfg, log = root / "haproxy.sock", root / "haproxy.cfg", root / "haproxy.log"
    line = "    server gw-{n} 127.0.0.1:{p} send-proxy-v2 check inter {i}"
    cfg.write_text(HAPROXY_CONFIG.format(
        stats=stats, balancer=BALANCER, sftp_port=sftp_port, https_port=https_port,
        sftp_servers="\n".join(line.format(n=n.name, p=n.port, i=check_interval) for n in nodes),
        https_servers="\n".join(line.format(n=n.name, p=n.https_port, i=check_interval)
                                + " check-ssl verify none" for n in nodes)))
    with open(log, "wb") as fh:
        proc = subprocess.Popen([haproxy_binary(), "-db", "-f", str(cfg)], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        for port in (sftp_port, https_port):
            wait_port(port, proc)
        deadline = time.monotonic() + 10
        while not stats.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield Balancer(proc, sftp_port, https_port, stats, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
