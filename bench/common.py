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


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime of each process, in clock ticks (processes that are gone are left out)."""
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = int(fields[11]) + int(fields[12])
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat (idle and iowait count as not busy)."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    total = sum(vals[:8])
    return total - vals[3] - vals[4], total


class CpuMeter:
    """CPU used by a server's processes, and by the whole machine, between ``start()`` and ``stop()``: how many of
    the machine's cores the server had (so a throughput ratio between runs can be read against the cores it used)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pids_of):
        self.pids_of = pids_of  # () -> the server's pids now (its process tree)
        self.result: dict = {}

    def start(self) -> None:
        import time
        self._t0, self._m0, self._p0 = time.monotonic(), machine_ticks(), cpu_ticks(self.pids_of())

    def stop(self) -> dict:
        import time
        dt = time.monotonic() - self._t0
        m1, p1 = machine_ticks(), cpu_ticks(self.pids_of())
        per = {pid: (t - self._p0.get(pid, 0)) / self.TICK for pid, t in p1.items()}
        busy = (m1[0] - self._m0[0]) / max(1, m1[1] - self._m0[1]) * (os.cpu_count() or 1)
        self.result = {"seconds": round(dt, 2), "server_cores": round(sum(per.values()) / dt, 3),
                       "server_cores_per_pid": {str(p): round(v / dt, 3) for p, v in per.items() if v > 0},
                       "machine_busy_cores": round(busy, 3), "cores": os.cpu_count()}
        return self.result


def connections_per_pid(port: int) -> dict[str, int]:
    """Established TCP connections on the local ``port``, counted per server process that holds them (``ss -tnp``):
    how the connections of a run were spread over the worker processes sharing one listening socket."""
    import re
    import subprocess
    try:
        out = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    counts: dict[str, int] = {}
    for line in out.splitlines():
        for pid in set(re.findall(r"pid=(\d+)", line)):
            counts[pid] = counts.get(pid, 0) + 1
    return counts


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
