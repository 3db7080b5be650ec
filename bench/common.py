"""What both benchmarks (``dav_bench.py``, ``sftp_bench.py``) use alike: the error a run stops on, free ports and
enterprise numbers, a log's last lines, medians and file digests, the memory and process tree of a server
read from /proc, and the SeaweedFS S3 server of ``--blobs s3``. The scripts import it as ``common`` (they run as
``python bench/<name>.py``)."""
from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import statistics
import sys
from pathlib import Path

HOST = "127.0.0.1"


class BenchError(Exception):
    pass


def enterprise_number(first8: int) -> str:
    """A valid Belgian enterprise number: 8 digits + (97 - first8 % 97) as 2 digits."""
    if not 0 <= first8 < 10**8:
        raise ValueError(first8)
    return f"{first8:08d}{97 - first8 % 97:02d}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tail(path: Path | None, n: int = 25) -> str:
    if path is None or not path.exists():
        return ""
    lines = path.read_text(errors="replace").splitlines()[-n:]
    return ("\n--- last lines of " + str(path.name) + " ---\n" + "\n".join(lines)) if lines else ""


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def vmrss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_ppids() -> dict[int, int]:
    out: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2:].split()
        out[int(name)] = int(rest[1])
    return out


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def seaweed(tmp: Path):
    """SeaweedFS serving S3 (the test suite's tests/s3server.py) for ``--blobs s3``, under ``tmp``; stopped on
    exit. Yields the server: ``.env(prefix=...)`` is the gateway's storage configuration for it."""
    repo = str(Path(__file__).resolve().parent.parent)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from tests.s3server import SeaweedS3

    with SeaweedS3(str(tmp / "seaweed")) as s3:
        yield s3
