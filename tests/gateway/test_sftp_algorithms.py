"""The SSH algorithms the gateway offers, as ssh-audit rates them against the running server: nothing rated
"fail", and a "warn" only where a named client cannot connect without it -- which is shown by taking the
algorithm away and watching that client fail while the others still connect.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.sftp import server as sftp
from tests.conftest import CENTRE_A
from tests.sftpclients import CLIENTS

NO_PQ = "does not provide protection against post-quantum attacks"
#: algorithm -> (the warning ssh-audit gives it, the clients that cannot do without it)
ALLOWED_WARNINGS = {
    "curve25519-sha256": (NO_PQ, ("openssh", "lftp", "curl", "rclone-debian")),
    "curve25519-sha256@libssh.org": (NO_PQ, ("paramiko-debian",)),
    "hmac-sha2-256": ("using encrypt-and-MAC mode", ("curl",)),
}
PSEUDO = {"ext-info-s", "kex-strict-s-v00@openssh.com"}
PQ_HYBRIDS = ("mlkem768x25519-sha256", "sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com")


def ssh_audit(port: int) -> dict:
    p = subprocess.run([sys.executable, "-m", "ssh_audit", "-j", "-t", "20", "-p", str(port), "127.0.0.1"],
                       capture_output=True, text=True, timeout=120)
    assert p.stdout.startswith("{"), f"ssh-audit gave no report (exit {p.returncode}): {p.stderr or p.stdout}"
    return json.loads(p.stdout)


def test_ssh_audit_rates_every_offered_algorithm_clean(world):
    report = ssh_audit(world.port)
    offered = {kind: [a["algorithm"] for a in report[kind] if a["algorithm"] not in PSEUDO]
               for kind in ("kex", "key", "enc", "mac")}
    assert offered == {"kex": sftp.KEX_ALGS, "key": ["ssh-ed25519"], "enc": sftp.ENCRYPTION_ALGS,
                       "mac": sftp.MAC_ALGS}
    assert offered["kex"][0] in PQ_HYBRIDS, "a post-quantum hybrid key exchange comes first"
    problems = []
    for kind in ("kex", "key", "enc", "mac"):
        for alg in report[kind]:
            notes = alg.get("notes", {})
            if notes.get("fail"):
                problems.append(f"{kind} {alg['algorithm']}: fail {notes['fail']}")
            allowed = ALLOWED_WARNINGS.get(alg["algorithm"], ("",))[0]
            for warning in notes.get("warn", []):
                if warning != allowed:
                    problems.append(f"{kind} {alg['algorithm']}: warn {warning!r}")
    assert not problems, problems


def connects(gw, tmp_path, name: str) -> bool:
    client = CLIENTS[name](gw.port, "arch-a", gw.keys["arch-a"], tmp_path / name)
    result = client.ls(f"/{CENTRE_A}")
    return result.ok


@pytest.mark.parametrize("dropped", [("curve25519-sha256", "curve25519-sha256@libssh.org"),
                                     ("curve25519-sha256@libssh.org",), ("hmac-sha2-256",)],
                         ids=lambda d: "+".join(d))
def test_each_warned_algorithm_is_needed_by_its_named_clients(make_gateway, monkeypatch, tmp_path, dropped):
    monkeypatch.setattr(sftp, "KEX_ALGS", [a for a in sftp.KEX_ALGS if a not in dropped])
    monkeypatch.setattr(sftp, "MAC_ALGS", [a for a in sftp.MAC_ALGS if a not in dropped])
    gw = make_gateway()
    # with the algorithm every client connects (test_sftp_clients.py); without it, exactly the named ones cannot
    needing = {c for alg in dropped for c in ALLOWED_WARNINGS[alg][1]}
    outcome = {name: connects(gw, tmp_path, name) for name in CLIENTS}
    assert {name for name, ok in outcome.items() if not ok} == needing, outcome
