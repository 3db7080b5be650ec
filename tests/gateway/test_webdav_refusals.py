"""Every refusal the core decides for a WebDAV write (PUT, MKCOL, DELETE, MOVE, COPY, PROPPATCH, LOCK) is on the
record, as the operator reads it with ``instpages audit list`` -- and, where SFTP has the same operation (put,
mkdir, rm, rename), with exactly the row SFTP leaves: same action, outcome, path and reason.

wsgidav looks the target and its parent up before it calls the provider; those lookups used to answer some
refusals themselves (an uploader's PUT or MKCOL into a centre that is not active, anything by the security
cell, an uploader's DELETE of a name it does not see), without the core's record. Each case below is sent with
curl, as a person (Basic) or as POD MI's machine (its pinned client certificate).
"""
from __future__ import annotations

import hashlib

import pytest

from tests.conftest import CENTRE_A, CENTRE_B, CENTRE_PAPER, STAFF_PASSWORD, keygen
from tests.davtools import audit_list, dav_curl, lock
from tests.machinecert import add_machine
from tests.pdfsamples import minimal_pdf

UPLOADER = "rf-podmi"                                 # POD MI over WebDAV: a pinned client certificate
MOVER, MOVER_PW = "rf-mover", "rf-mover-password-1"   # staff who may write and remove in A (and has a key)
SEED = "brief.pdf"
PDF = minimal_pdf("refusals on the record")


@pytest.fixture(scope="module")
def rf(world, tmp_path_factory):
    """The machine certificate, the mover's key, and one folder of A seeded by podmi over SFTP."""
    tmp = tmp_path_factory.mktemp("refusals")
    cert = add_machine(world, tmp, UPLOADER)
    a = world.admin
    key = keygen(tmp / MOVER)
    a.add_account(MOVER, "staff", None, [key.with_suffix(".pub").read_text()], MOVER_PW, allow_keys=True)
    a.grant(MOVER, CENTRE_A, can_write=True, can_remove=True)
    world.keys[MOVER] = key
    (tmp / "seed").write_bytes(PDF)
    folder = "rf-" + hashlib.sha256(tmp.name.encode()).hexdigest()[:8]
    p = world.sftp("podmi", f'mkdir "/{CENTRE_A}/{folder}"\nput "{tmp / "seed"}" "/{CENTRE_A}/{folder}/{SEED}"\n')
    assert p.returncode == 0, p.stdout + p.stderr
    return {"cert": cert, "folder": folder}


def person(user: str, password: str = STAFF_PASSWORD) -> dict:
    return {"user": user, "password": password}


def proppatch_body() -> bytes:
    return (b'<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
            b'<x:note xmlns:x="urn:x">hello</x:note></D:prop></D:set></D:propertyupdate>')


# label: (who, WebDAV method, path, extra curl arguments, expected audit action, reason substring,
#         the SFTP user and batch line of the same operation, or None where SFTP has no such operation)
F = "{folder}"
CASES = {
    "put-uploader-centre-not-active": ("uploader", "PUT", f"/{CENTRE_PAPER}/rf-new.pdf", {"body": PDF}, "upload",
                                       "status: paper", ("podmi", f'-put "{{local}}" "/{CENTRE_PAPER}/rf-new.pdf"')),
    "put-security-cell": ("cell", "PUT", f"/{CENTRE_A}/{F}/by-cell.pdf", {"body": PDF}, "upload", "may not upload",
                          ("cell", f'-put "{{local}}" "/{CENTRE_A}/{F}/by-cell.pdf"')),
    "mkcol-uploader-centre-not-active": ("uploader", "MKCOL", f"/{CENTRE_PAPER}/rf-map/", {}, "mkdir",
                                         "status: paper", ("podmi", f'-mkdir "/{CENTRE_PAPER}/rf-map"')),
    "mkcol-security-cell": ("cell", "MKCOL", f"/{CENTRE_A}/{F}/by-cell/", {}, "mkdir", "may not mkdir",
                            ("cell", f'-mkdir "/{CENTRE_A}/{F}/by-cell"')),
    "delete-uploader-not-its-own": ("uploader", "DELETE", f"/{CENTRE_A}/{F}/{SEED}", {}, "archive",
                                    "may not archive", ("podmi2", f'-rm "/{CENTRE_A}/{F}/{SEED}"')),
    "delete-security-cell": ("cell", "DELETE", f"/{CENTRE_A}/{F}/{SEED}", {}, "archive", "may not archive",
                             ("cell", f'-rm "/{CENTRE_A}/{F}/{SEED}"')),
    "delete-read-only-staff": ("staff-a", "DELETE", f"/{CENTRE_A}/{F}/{SEED}", {}, "archive", "may not archive",
                               ("staff-a", f'-rm "/{CENTRE_A}/{F}/{SEED}"')),
    "delete-a-whole-mailbox": ("staff-a-rm", "DELETE", f"/{CENTRE_A}/", {}, "archive", "mailbox cannot be removed",
                               ("staff-a-rm", f'-rmdir "/{CENTRE_A}"')),
    "move-committed-document": (MOVER, "MOVE", f"/{CENTRE_A}/{F}/{SEED}",
                                {"headers": {"Destination": f"/dav/{CENTRE_A}/{F}/renamed.pdf"}}, "move",
                                "cannot be renamed", (MOVER, f'-rename "/{CENTRE_A}/{F}/{SEED}" '
                                                             f'"/{CENTRE_A}/{F}/renamed.pdf"')),
    "copy-into-another-centre": ("staff-ab", "COPY", f"/{CENTRE_A}/{F}/{SEED}",
                                 {"headers": {"Destination": f"/dav/{CENTRE_B}/{F}-copy.pdf"}}, "copy",
                                 "inside one centre", None),
    "proppatch-read-only-staff": ("staff-a", "PROPPATCH", f"/{CENTRE_A}/{F}/{SEED}",
                                  {"body": proppatch_body(), "headers": {"Content-Type": "application/xml"}},
                                  "upload", "may not upload", None),
    "lock-read-only-staff": ("staff-a", "LOCK", f"/{CENTRE_A}/{F}/free-name.pdf", {}, "lock",
                             "may not create this name", None),
}


def newest(rows: list[dict], **match) -> dict | None:
    return next((r for r in rows if all(r[k] == v for k, v in match.items())), None)


@pytest.mark.parametrize("label", list(CASES))
def test_webdav_refusal_is_on_the_record_as_over_sftp(world, rf, tmp_path, label):
    who, method, path, extra, action, reason, sftp = CASES[label]
    path = path.format(folder=rf["folder"])
    creds = {"cert": rf["cert"]} if who == "uploader" else person(MOVER, MOVER_PW) if who == MOVER else person(who)
    actor = UPLOADER if who == "uploader" else who
    extra = dict(extra)
    if "headers" in extra:
        extra["headers"] = {k: v.format(folder=rf["folder"]) for k, v in extra["headers"].items()}
    if method == "LOCK":
        r = lock(world, path, tmp_path, **creds)
    else:
        r = dav_curl(world, method, path, tmp_path, **creds, **extra)
    assert r.status == 403, f"{label}: {r}"
    assert reason in r.text, f"{label}: the answer does not give the reason: {r}"

    recorded = path.rstrip("/")
    dav_row = newest(audit_list(world), ACTOR=actor, VIA="webdav", ACTION=action, PATH=recorded)
    assert dav_row is not None, f"{label}: no '{action}' row for {actor} on {path} in `instpages audit list`"
    assert dav_row["OUTCOME"] == "denied" and reason in dav_row["DETAIL"], dav_row

    if sftp is not None:
        sftp_user, line = sftp
        (tmp_path / "local.pdf").write_bytes(PDF)
        p = world.sftp(sftp_user, line.format(local=tmp_path / "local.pdf", folder=rf["folder"]) + "\n")
        assert p.returncode == 0, p.stdout + p.stderr
        sftp_row = newest(audit_list(world), ACTOR=sftp_user, VIA="sftp", ACTION=action, PATH=recorded)
        assert sftp_row is not None, f"{label}: the SFTP equivalent left no row (reference)"
        same = ("ACTION", "OUTCOME", "PATH", "BYTES", "DETAIL")
        assert {k: dav_row[k] for k in same} == {k: sftp_row[k] for k in same}, (dav_row, sftp_row)
    # nothing was changed by the refused request
    seen = dav_curl(world, "GET", f"/{CENTRE_A}/{rf['folder']}/{SEED}", tmp_path, **person("staff-a"))
    assert seen.status == 200 and seen.body == PDF
