"""Shared helpers of the WebDAV tests: curl against a gateway's /dav as a person (Basic) or a machine (a pinned
client certificate), the record as the operator reads it with ``instpages audit list``, and documents put in
place over SFTP."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tests.conftest import cli


@dataclass
class Answer:
    status: int
    headers: dict[str, str]   # lower-case names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __str__(self) -> str:
        return f"{self.status} {self.text[:300]!r}"


def dav_curl(gw, method: str, path: str, tmp: Path, *, user: str | None = None, password: str = "",
             cert: tuple[Path, Path] | None = None, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> Answer:
    """One request with curl to ``gw``'s /dav + ``path`` (quoted here), verifying the server certificate."""
    hfile, bfile = tmp / "curl-headers", tmp / "curl-body"
    cmd = ["curl", "-sS", "--max-time", "30", "--cacert", str(gw.config.tls_cert_path), "-D", str(hfile),
           "-o", str(bfile), "-X", method]
    if user is not None:
        cmd += ["-u", f"{user}:{password}"]
    if cert is not None:
        cmd += ["--cert", str(cert[0]), "--key", str(cert[1])]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    if body is not None:
        (tmp / "curl-request-body").write_bytes(body)
        cmd += ["--data-binary", f"@{tmp / 'curl-request-body'}"]
    p = subprocess.run(cmd + [gw.dav_url + quote(path)], capture_output=True, timeout=60)
    assert p.returncode == 0, f"curl {method} {path} failed: rc={p.returncode} {p.stderr.decode()}"
    blocks = [b for b in hfile.read_text("latin-1").replace("\r\n", "\n").split("\n\n") if b.strip()]
    lines = blocks[-1].splitlines()  # the last block: after any "100 Continue"
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return Answer(int(lines[0].split()[1]), hdrs, bfile.read_bytes() if bfile.exists() else b"")


LOCKINFO = (b'<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            b"</D:lockscope><D:locktype><D:write/></D:locktype><D:owner>test</D:owner></D:lockinfo>")


def lock(gw, path: str, tmp: Path, *, depth: str = "infinity", timeout: str = "Second-600", **who) -> Answer:
    """A LOCK (exclusive, write) with curl; ``who``: user/password or cert as for :func:`dav_curl`."""
    return dav_curl(gw, "LOCK", path, tmp, body=LOCKINFO, **who,
                    headers={"Content-Type": "application/xml", "Depth": depth, "Timeout": timeout})


def lock_token(a: Answer) -> str:
    return a.headers["lock-token"].strip("<>")


_AUDIT_COLUMNS = ("ID", "TIME (UTC)", "ACTOR", "VIA", "SOURCE", "ACTION", "OUTCOME", "PATH", "BYTES", "DETAIL")


def audit_list(gw, limit: int = 300) -> list[dict[str, str]]:
    """``instpages audit list`` run by the operator on ``gw``'s data folder, newest first, one dict per row
    (columns cut where the header puts them: cells may be empty or hold spaces)."""
    r = cli("audit", "list", "--limit", str(limit), data_dir=gw.data_dir)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    starts = [m.start() for m in (re.search(r"(?:^|  )" + re.escape(c) + r"(?:  |$)", lines[0])
                                  for c in _AUDIT_COLUMNS)]
    starts = [s if s == 0 else s + 2 for s in starts]
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [len(line) + 1])]
        rows.append(dict(zip(_AUDIT_COLUMNS, cells)))
    return rows


def sftp_put(world, user: str, centre: str, folder: str, files: dict[str, bytes], tmp: Path) -> None:
    """Upload ``files`` into /centre/folder (and the subfolders their names need) over OpenSSH sftp as ``user``."""
    cmds = [f'-mkdir "/{centre}/{folder}"']
    cmds += [f'-mkdir "/{centre}/{folder}/{sub}"' for sub in sorted({n.rsplit("/", 1)[0] for n in files if "/" in n})]
    for i, (name, data) in enumerate(files.items()):
        local = tmp / f"sftp-upload-{i}"
        local.write_bytes(data)
        cmds.append(f'put "{local}" "/{centre}/{folder}/{name}"')
    p = world.sftp(user, "\n".join(cmds) + "\n")
    assert p.returncode == 0, f"SFTP upload failed: {p.stdout}\n{p.stderr}"
