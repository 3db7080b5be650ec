"""Bad input, document rules, logins and the record, over SFTP with real clients (asyncssh and OpenSSH sftp -b).

Each test works in its own folder (named after the test) of the shared ``world`` gateway; tests that need other
settings (a small maximum size, a trusted SSH user CA) start their own gateway with ``make_gateway``.
"""
from __future__ import annotations

import asyncio
import calendar
import hashlib
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import asyncssh
import pytest

from gateway.core.enterprise import with_check
from tests import pdfsamples as samples
from tests.conftest import CENTRE_A, CENTRE_B, SFTP_OPTS, STAFF_PASSWORD, ssh_env
from tests.sftpclients import attempt, get, names, put

GHOST = with_check("09999999")  # a well-formed enterprise number that no centre has
A = CENTRE_A


# -- helpers ------------------------------------------------------------------------------------------------
def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def folder(request) -> str:
    """A folder name of this test's own (the world is shared)."""
    return "r-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]


async def archiver_view(gw, folder: str, centre: str = A, user: str = "arch-a") -> dict[str, bytes]:
    """Everything the centre's archiver sees in ``folder``, with its bytes (folders map to None)."""
    out: dict[str, bytes | None] = {}
    async with gw.connect(user) as conn, conn.start_sftp_client() as s:
        for name in await names(s, f"/{centre}/{folder}"):
            p = f"/{centre}/{folder}/{name}"
            out[name] = None if await s.isdir(p) else await get(s, p)
    return out


def events(gw, action: str, path: str | None = None, limit: int = 500) -> list:
    return [e for e in gw.audit(action=action, limit=limit) if path is None or e.path == path]


def wait_for_events(gw, action: str, pred, timeout: float = 5.0) -> list:
    """Some events (failed key logins) are written when the connection is gone: give them a moment."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in gw.audit(action=action, limit=500) if pred(e)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def sftp_batch(gw, user: str, commands: list[str], *, ignore_errors: bool = True) -> tuple[int, list[list[str]]]:
    """OpenSSH ``sftp -b`` with stdout and stderr merged, cut into one block of output lines per command."""
    cmd = ["sftp", *SFTP_OPTS, "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
           "-i", str(gw.keys[user]), "-P", str(gw.port), "-b", "-", f"{user}@127.0.0.1"]
    script = "".join(("-" if ignore_errors else "") + c + "\n" for c in commands)
    p = subprocess.run(cmd, input=script, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=ssh_env(), timeout=120, start_new_session=True)
    blocks: list[list[str]] = []
    for line in p.stdout.splitlines():
        if line.startswith("sftp> "):
            blocks.append([])
        elif blocks and line.strip():
            blocks[-1].append(line.strip())
    return p.returncode, blocks


def write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


# -- content rules -------------------------------------------------------------------------------------------
REFUSED_SAMPLES = {
    "zip": (samples.not_a_pdf_zip, "not a PDF"),
    "html": (samples.not_a_pdf_html, "not a PDF"),
    "javascript": (samples.pdf_with_javascript, "active content (JavaScript)"),
    "tab-split-javascript-uri": (samples.pdf_with_tab_split_javascript_uri, "active content (JavaScript)"),
    "truncated": (samples.truncated_pdf, "damaged or truncated PDF"),
    "truncated-fake-eof": (samples.truncated_pdf_with_fake_eof, "damaged or truncated PDF"),
}


@pytest.mark.parametrize("sample", list(REFUSED_SAMPLES))
def test_refused_content_says_why_and_leaves_nothing(world, folder, tmp_path, sample):
    make, reason = REFUSED_SAMPLES[sample]
    data = make()

    async def go():
        async with world.connect("podmi") as conn, conn.start_sftp_client() as s:
            await s.mkdir(f"/{A}/{folder}")
            res = await attempt(put(s, f"/{A}/{folder}/via-asyncssh.pdf", data))
            mine = await names(s, f"/{A}/{folder}")
            return res, mine

    res, mine = run(go())
    assert not res.ok and res.code == asyncssh.FX_FAILURE, res
    assert reason in res.reason, res.reason

    local = write(tmp_path, "doc.pdf", data)
    p = world.sftp("podmi", f"put {local} /{A}/{folder}/via-openssh.pdf\n")
    assert p.returncode != 0, p.stdout + p.stderr

    assert mine == set()                                   # not even for its uploader
    assert run(archiver_view(world, folder)) == {}          # nor for the centre
    for name in ("via-asyncssh.pdf", "via-openssh.pdf"):
        refused = events(world, "upload", f"/{A}/{folder}/{name}")
        assert [e.outcome for e in refused] == ["refused"], refused
        assert reason in refused[0].detail and refused[0].actor == "podmi"
        assert refused[0].bytes == len(data)


def test_identical_resend_is_a_harmless_noop(world, folder, tmp_path):
    data = samples.minimal_pdf(f"{folder} statement")
    path = f"/{A}/{folder}/statement.pdf"
    local = write(tmp_path, "statement.pdf", data)

    async def go(user):
        async with world.connect(user) as conn, conn.start_sftp_client() as s:
            return await attempt(put(s, path, data))

    first = run(go("podmi"))
    assert first.ok, first
    again = run(go("podmi"))
    assert again.ok, again
    p = world.sftp("podmi", f"put {local} {path}\n")
    assert p.returncode == 0, p.stderr
    other_sender = run(go("podmi2"))                       # a second uploader re-sending the same content
    assert other_sender.ok, other_sender

    assert run(archiver_view(world, folder)) == {"statement.pdf": data}   # still one document, same bytes
    ups = events(world, "upload", path)
    assert sorted(e.outcome for e in ups) == ["committed", "ok", "ok", "ok"], [(e.outcome, e.detail) for e in ups]
    noops = [e for e in ups if e.outcome == "ok"]
    assert all("identical" in e.detail for e in noops)
    assert {e.actor for e in noops} == {"podmi", "podmi2"}
    with world.repo.read() as c:
        committed = [d for d in world.repo.documents_in(c, A, folder)]
    assert len(committed) == 1 and committed[0].size == len(data)


def test_other_content_under_an_existing_name_is_refused_and_the_original_kept(world, folder, tmp_path):
    original = samples.minimal_pdf(f"{folder} original")
    correction = samples.minimal_pdf(f"{folder} correction")
    path = f"/{A}/{folder}/letter.pdf"

    async def go(user, data):
        async with world.connect(user) as conn, conn.start_sftp_client() as s:
            return await attempt(put(s, path, data))

    assert run(go("podmi", original)).ok
    res = run(go("podmi", correction))
    assert not res.ok and res.code == asyncssh.FX_FAILURE, res
    assert "already exists" in res.reason and "cannot be overwritten" in res.reason, res.reason
    by_other = run(go("podmi2", correction))
    assert not by_other.ok and "already exists" in by_other.reason, by_other
    p = world.sftp("podmi", f"put {write(tmp_path, 'c.pdf', correction)} {path}\n")
    assert p.returncode != 0, p.stdout

    assert run(archiver_view(world, folder)) == {"letter.pdf": original}  # byte for byte
    refused = [e for e in events(world, "upload", path) if e.outcome == "refused"]
    assert len(refused) == 3 and all("exists" in e.detail for e in refused), refused


# -- paths and names -----------------------------------------------------------------------------------------
def test_dotdot_and_other_centres_answer_as_names_that_do_not_exist(world, folder, tmp_path):
    """staff-a is granted centre A only; B holds a document. Every way of reaching it -- absolute, through
    ``..``, relative after ``cd`` -- answers exactly like the same path in a centre that does not exist."""
    secret = samples.minimal_pdf(f"{folder} secret of B")

    async def seed():
        async with world.connect("podmi") as conn, conn.start_sftp_client() as s:
            await s.mkdir(f"/{A}/{folder}")
            await put(s, f"/{CENTRE_B}/{folder}/secret.pdf", secret)

    run(seed())
    tails = [f"/{{c}}/{folder}/secret.pdf", f"/{A}/../{{c}}/{folder}/secret.pdf",
             f"/{A}/{folder}/../../{{c}}/{folder}/secret.pdf", f"/{A}/../../../{{c}}/{folder}/secret.pdf"]

    async def probe(user):
        async with world.connect(user) as conn, conn.start_sftp_client() as s:
            out = []
            for t in tails:
                for c in (CENTRE_B, GHOST):
                    p = t.format(c=c)
                    out.append((p, "stat", await attempt(s.stat(p))))
                    out.append((p, "get", await attempt(get(s, p))))
                    out.append((p, "put", await attempt(put(s, p.replace("secret", "new"), secret))))
                    out.append((p, "rm", await attempt(s.remove(p))))
                    d = p.rsplit("/", 1)[0]
                    out.append((d, "ls", await attempt(names(s, d))))
                    out.append((d, "mkdir", await attempt(s.mkdir(d + "/sub"))))
            # out of the tree altogether
            for p in ("/../../etc/passwd", "../../etc/passwd", f"/{A}/../../etc/shadow"):
                out.append((p, "outside", await attempt(s.stat(p))))
            return out

    for user in ("staff-a", "arch-a"):
        results = run(probe(user))
        by_key = {(p, op): r for p, op, r in results}
        for (p, op), r in by_key.items():
            assert not r.ok and r.code == asyncssh.FX_NO_SUCH_FILE, (user, p, op, str(r))
            if CENTRE_B in p:
                ghost = by_key[(p.replace(CENTRE_B, GHOST), op)]
                assert (r.code, r.reason) == (ghost.code, ghost.reason), (user, p, op, str(r), str(ghost))
        assert {r.reason for r in by_key.values()} == {"no such file or folder"}

    # OpenSSH: absolute, ../ from inside A, and relative after cd
    cmds = []
    for c in (CENTRE_B, GHOST):
        cmds += [f"ls -l /{c}/{folder}/secret.pdf", f"get /{A}/../{c}/{folder}/secret.pdf {tmp_path}/x-{c}.pdf",
                 f"cd /{A}", f"get ../{c}/{folder}/secret.pdf {tmp_path}/y-{c}.pdf", f"ls ../{c}/{folder}",
                 f"put {write(tmp_path, 's.pdf', secret)} ../{c}/{folder}/new.pdf", "cd /"]
    rc, blocks = sftp_batch(world, "staff-a", cmds)
    assert rc == 0 and len(blocks) == len(cmds), blocks
    half = len(cmds) // 2
    for cmd, b_out, g_out in zip(cmds, blocks[:half], blocks[half:]):
        if cmd.startswith("cd"):
            assert b_out == g_out == [], (b_out, g_out)   # cd /A works, and is the same on both sides
            continue
        norm = [ln.replace(CENTRE_B, "<c>").replace(GHOST, "<c>") for ln in b_out]
        assert norm == [ln.replace(GHOST, "<c>") for ln in g_out], (cmd, b_out, g_out)
        assert any("not found" in ln or "No such file" in ln for ln in b_out), (cmd, b_out)
    assert not list(tmp_path.glob("x-*")) + list(tmp_path.glob("y-*"))

    async def check_b():  # B is untouched
        async with world.connect("arch-b") as conn, conn.start_sftp_client() as s:
            return await names(s, f"/{CENTRE_B}/{folder}")
    assert run(check_b()) == {"secret.pdf"}


def test_folders_at_most_four_levels_deep(world, folder, tmp_path):
    doc = samples.minimal_pdf(f"{folder} deep")
    deepest_ok = f"/{A}/{folder}/l2/l3/l4"          # 4 folder levels below the mailbox
    too_deep = f"{deepest_ok}/l5"

    async def go():
        async with world.connect("podmi") as conn, conn.start_sftp_client() as s:
            made = [await attempt(s.mkdir(f"/{A}/{folder}/{d}")) for d in ("", "l2", "l2/l3", "l2/l3/l4")]
            return (all(r.ok for r in made), await attempt(put(s, f"{deepest_ok}/fits.pdf", doc)),
                    await attempt(s.mkdir(too_deep)), await attempt(put(s, f"{too_deep}/x.pdf", doc)),
                    await attempt(put(s, f"{too_deep}/l6/x.pdf", doc)))

    made, fits, mk5, put5, put6 = run(go())
    assert made and fits.ok, (made, str(fits))
    for r in (mk5, put5, put6):
        assert not r.ok and r.code == asyncssh.FX_FAILURE and "at most 4 levels" in r.reason, str(r)
    p = world.sftp("podmi", f"mkdir {too_deep}\n")
    assert p.returncode != 0
    p = world.sftp("podmi", f"put {write(tmp_path, 'x.pdf', doc)} {too_deep}/y.pdf\n")
    assert p.returncode != 0

    async def view():
        async with world.connect("arch-a") as conn, conn.start_sftp_client() as s:
            return await names(s, deepest_ok), await get(s, f"{deepest_ok}/fits.pdf")
    listing, data = run(view())
    assert listing == {"fits.pdf"} and data == doc
    refused = [e for e in events(world, "upload") if e.path.startswith(too_deep)]
    assert len(refused) >= 3 and all(e.outcome == "refused" and "at most 4 levels" in e.detail for e in refused)


BAD_NAMES = {
    "backslash": ("a\\b.pdf", "may not contain \\"),   # a separator for Windows clients
    "c0-control": ("a\x01b.pdf", None),            # not even a name: answers like a path that does not exist
    "newline": ("a\nb.pdf", None),
    "delete": ("a\x7fb.pdf", None),
    "c1-control": ("a\u0085b.pdf", "control or invisible"),
    "zero-width": ("a\u200bb.pdf", "control or invisible"),
    "bidi-override": ("fdp.\u202eexe.pdf", "control or invisible"),
    "trailing-dot": ("ab.pdf.", "end with a dot"),
    "leading-space": (" ab.pdf", "spaces"),
}


def test_bad_names_are_refused(world, folder, tmp_path):
    doc = samples.minimal_pdf(f"{folder} name")

    async def go():
        async with world.connect("podmi") as conn, conn.start_sftp_client() as s:
            await s.mkdir(f"/{A}/{folder}")
            out = {}
            for key, (name, _) in BAD_NAMES.items():
                out[key] = (await attempt(put(s, f"/{A}/{folder}/{name}", doc)),
                            await attempt(s.mkdir(f"/{A}/{folder}/{name}")))
            return out, await names(s, f"/{A}/{folder}")

    results, mine = run(go())
    for key, (res_put, res_mkdir) in results.items():
        reason = BAD_NAMES[key][1]
        for r in (res_put, res_mkdir):
            assert not r.ok, (key, str(r))
            if reason:
                assert r.code == asyncssh.FX_FAILURE and reason in r.reason, (key, str(r))
            else:
                assert r.code == asyncssh.FX_NO_SUCH_FILE, (key, str(r))
    # OpenSSH, with a backslash in a quoted name
    p = world.sftp("podmi", f"put {write(tmp_path, 'x.pdf', doc)} '/{A}/{folder}/c\\\\d.pdf'\n")
    assert p.returncode != 0 and "Failure" in p.stderr, p.stderr
    assert mine == set()
    assert run(archiver_view(world, folder)) == {}
    refused = [e for e in events(world, "upload") if e.path.startswith(f"/{A}/{folder}/")]
    assert {e.outcome for e in refused} == {"refused"}
    assert "/c\\d.pdf" in {e.path[len(f'/{A}/{folder}'):] for e in refused}


def small_gateway(make_gateway, tmp_path):
    """A gateway whose documents may be at most 2048 bytes, with one active centre, an uploader, an archiver."""
    gw = make_gateway(populated=False, env={"INSTPAGES_DOCUMENTS_MAX_SIZE": "2048"})
    gw.admin.add_institution(A, "OCMW klein", "active")
    for name, role, inst in (("podmi", "uploader", None), ("arch-a", "archiver", A)):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
        gw.admin.add_account(name, role, inst, [(tmp_path / f"{name}.pub").read_text()])
        gw.keys[name] = tmp_path / name
    return gw


SMALL = samples.minimal_pdf("fits")
BIG = samples.minimal_pdf("too big", pages=10)


def upload_big_and_small(gw, tmp_path):
    assert len(SMALL) < 2048 < len(BIG)

    async def go():
        async with gw.connect("podmi") as conn, conn.start_sftp_client() as s:
            return (await attempt(put(s, f"/{A}/big.pdf", BIG)), await attempt(put(s, f"/{A}/small.pdf", SMALL)))

    res_big, res_small = run(go())
    p = gw.sftp("podmi", f"put {write(tmp_path, 'big.pdf', BIG)} /{A}/big-openssh.pdf\n")
    return res_big, res_small, p


def test_maximum_size_refused_with_a_clear_message(make_gateway, tmp_path):
    gw = small_gateway(make_gateway, tmp_path)
    res_big, res_small, p = upload_big_and_small(gw, tmp_path)
    assert not res_big.ok and "exceeds the maximum size of 2048 bytes" in res_big.reason, str(res_big)
    assert res_small.ok, str(res_small)
    assert p.returncode != 0, p.stdout
    assert run(archiver_view(gw, "", user="arch-a")) == {"small.pdf": SMALL}
    for name in ("big.pdf", "big-openssh.pdf"):
        ev = events(gw, "upload", f"/{A}/{name}")
        assert len(ev) == 1 and "maximum size of 2048 bytes" in ev[0].detail, ev


def test_size_refusal_is_on_the_record_as_a_refusal(make_gateway, tmp_path):
    """Uploads are recorded as committed or refused, with the reason; "aborted" is what an interrupted upload
    (client killed, connection cut) is recorded as. A document over the maximum size is a refusal."""
    gw = small_gateway(make_gateway, tmp_path)
    upload_big_and_small(gw, tmp_path)
    for name in ("big.pdf", "big-openssh.pdf"):
        ev = events(gw, "upload", f"/{A}/{name}")
        assert [(e.outcome, e.detail) for e in ev] == [("refused", "document exceeds the maximum size of 2048 bytes")]


# -- staged uploads (WinSCP, FileZilla) ---------------------------------------------------------------------
def test_winscp_filepart_then_rename(world, folder):
    data = samples.minimal_pdf(f"{folder} via WinSCP")
    base = f"/{A}/{folder}"

    async def go():
        async with world.connect("podmi") as up, up.start_sftp_client() as s, \
                world.connect("arch-a") as ar, ar.start_sftp_client() as a:
            await s.mkdir(base)
            f = await s.open(f"{base}/x.pdf.filepart", "wb")
            await f.write(data[:300])
            mid_upload = await names(a, base)
            await f.write(data[300:])
            await f.close()
            uploader_sees = await names(s, base)
            archiver_sees = await names(a, base)
            staged_stat = await attempt(a.stat(f"{base}/x.pdf.filepart"))
            staged_get = await attempt(get(a, f"{base}/x.pdf.filepart"))
            await s.rename(f"{base}/x.pdf.filepart", f"{base}/x.pdf")
            after = await names(a, base)
            return mid_upload, uploader_sees, archiver_sees, staged_stat, staged_get, after, \
                await get(a, f"{base}/x.pdf"), await names(s, base)

    mid, up_sees, ar_sees, st, sg, after, got, up_after = run(go())
    assert mid == set() and ar_sees == set(), (mid, ar_sees)  # the .filepart never shows to the centre
    assert up_sees == {"x.pdf.filepart"}                         # its uploader does see it (WinSCP checks)
    for r in (st, sg):
        assert not r.ok and r.code == asyncssh.FX_NO_SUCH_FILE, str(r)
    assert after == {"x.pdf"} and got == data
    assert up_after == {"x.pdf"}
    ev = events(world, "upload", f"{base}/x.pdf")
    assert [e.outcome for e in ev] == ["committed"] and "renamed from x.pdf.filepart" in ev[0].detail, ev
    assert [e.outcome for e in events(world, "upload", f"{base}/x.pdf.filepart")] == ["staged"]


def test_uploader_removes_its_staged_filepart(world, folder):
    data = samples.minimal_pdf(f"{folder} cancelled")
    base = f"/{A}/{folder}"

    async def go():
        async with world.connect("podmi") as up, up.start_sftp_client() as s:
            await s.mkdir(base)
            await put(s, f"{base}/y.pdf.filepart", data)
            before = await names(s, base)
            removed = await attempt(s.remove(f"{base}/y.pdf.filepart"))
            return before, removed, await names(s, base), \
                await attempt(s.rename(f"{base}/y.pdf.filepart", f"{base}/y.pdf"))

    before, removed, after, renamed = run(go())
    assert before == {"y.pdf.filepart"} and removed.ok, str(removed)
    assert after == set()
    assert not renamed.ok and renamed.code == asyncssh.FX_NO_SUCH_FILE, str(renamed)
    assert run(archiver_view(world, folder)) == {}
    outcomes = [(e.outcome, e.detail) for e in events(world, "upload", f"{base}/y.pdf.filepart")]
    assert sorted(o for o, _ in outcomes) == ["aborted", "staged"], outcomes
    assert any("staged upload removed" in d for o, d in outcomes if o == "aborted")


def test_configured_temporary_name_patterns_are_staged(make_gateway):
    """An operator adds a client's temporary names ([documents] temporary_patterns): such an upload stays
    invisible to the centre until its uploader renames it to the final name."""
    gw = make_gateway(env={"INSTPAGES_DOCUMENTS_TEMPORARY_PATTERNS": "*.????????.partial,*.upload"})
    data = samples.minimal_pdf("staged under a configured name")

    async def go():
        async with gw.connect("podmi") as up, up.start_sftp_client() as s, \
                gw.connect("arch-a") as ar, ar.start_sftp_client() as a:
            await put(s, f"/{A}/x.pdf.upload", data)
            staged = await names(a, f"/{A}"), await names(s, f"/{A}")
            await s.rename(f"/{A}/x.pdf.upload", f"/{A}/x.pdf")
            return staged, await names(a, f"/{A}"), await get(a, f"/{A}/x.pdf")

    (centre_sees, uploader_sees), after, got = run(go())
    assert centre_sees == set() and uploader_sees == {"x.pdf.upload"}
    assert after == {"x.pdf"} and got == data
    assert [e.outcome for e in events(gw, "upload", f"/{A}/x.pdf.upload")] == ["staged"]


def test_renaming_a_committed_document_is_refused(world, folder, tmp_path):
    data = samples.minimal_pdf(f"{folder} committed")
    base = f"/{A}/{folder}"

    async def go():
        async with world.connect("podmi") as up, up.start_sftp_client() as s, \
                world.connect("arch-a") as ar, ar.start_sftp_client() as a:
            await put(s, f"{base}/z.pdf", data)
            await put(s, f"{base}/w.pdf.filepart", data)
            await put(s, f"{base}/v.pdf.filepart", samples.minimal_pdf(f"{folder} other content"))
            other = await attempt(s.rename(f"{base}/v.pdf.filepart", f"{base}/z.pdf"))
            return (other, await attempt(s.rename(f"{base}/z.pdf", f"{base}/z2.pdf")),
                    await attempt(a.rename(f"{base}/z.pdf", f"{base}/z2.pdf")),
                    await attempt(s.rename(f"{base}/w.pdf.filepart", f"/{CENTRE_B}/{folder}/w.pdf")),
                    await attempt(s.rename(f"{base}/w.pdf.filepart", f"{base}/z.pdf")))

    other, by_uploader, by_archiver, cross_centre, onto_existing = run(go())
    assert not other.ok and "already exists" in other.reason, str(other)   # a staged upload overwrites nothing
    for r in (by_uploader, by_archiver):
        assert not r.ok and r.code == asyncssh.FX_PERMISSION_DENIED and "cannot be renamed" in r.reason, str(r)
    assert not cross_centre.ok and cross_centre.code == asyncssh.FX_PERMISSION_DENIED, str(cross_centre)
    # identical content renamed onto the committed name: harmless; nothing overwritten either way
    assert onto_existing.ok, str(onto_existing)
    p = world.sftp("podmi", f"rename {base}/z.pdf {base}/z3.pdf\n")
    assert p.returncode != 0 and "Permission denied" in p.stderr, p.stderr
    assert run(archiver_view(world, folder)) == {"z.pdf": data}


# -- what readers see ----------------------------------------------------------------------------------------
def test_ls_l_shows_size_time_and_read_only_documents(world, folder):
    data = samples.minimal_pdf(f"{folder} listed")
    base = f"/{A}/{folder}"

    async def up():
        async with world.connect("podmi") as conn, conn.start_sftp_client() as s:
            await put(s, f"{base}/listed.pdf", data)
    before = time.time()
    run(up())
    after = time.time()
    for user in ("arch-a", "staff-a", "admin-a", "staff-ab"):
        p = world.sftp(user, f"ls -l {base}\nls -ln {base}/listed.pdf\n")
        assert p.returncode == 0, p.stderr
        lines = [ln for ln in p.stdout.splitlines() if not ln.startswith("sftp>") and ln.strip()]
        assert len(lines) == 2, p.stdout
        for ln in lines:
            f = ln.split()
            assert f[0] == "-r--r-----", (user, ln)
            assert f[4] == str(len(data)), (user, ln)
            assert f[-1].endswith("listed.pdf")
            # "Nov 22 17:04": the delivery time, to the minute (the server's long names are in UTC; OpenSSH
            # formats a single file's time itself, in local time)
            tm = time.strptime(f"{time.gmtime(before).tm_year} {f[5]} {f[6]} {f[7]}", "%Y %b %d %H:%M")
            assert any(before - 60 <= when <= after + 60 for when in (calendar.timegm(tm), time.mktime(tm))), \
                (user, ln)


def test_ten_parallel_sessions_all_commit(world, folder):
    docs = {f"batch-{i:02d}.pdf": samples.minimal_pdf(f"{folder} {i}") for i in range(10)}
    base = f"/{A}/{folder}"

    async def one(i, name, data):
        async with world.connect("podmi" if i % 2 else "podmi2") as conn, conn.start_sftp_client() as s:
            await put(s, f"{base}/{name}", data)

    async def go():
        await asyncio.gather(*(one(i, n, d) for i, (n, d) in enumerate(docs.items())))

    run(go())
    assert run(archiver_view(world, folder)) == docs
    committed = [e for e in events(world, "upload") if e.path.startswith(base + "/") and e.outcome == "committed"]
    assert sorted(e.path.rsplit("/", 1)[1] for e in committed) == sorted(docs)


def test_parallel_sessions_racing_for_one_name(world, folder):
    """Ten senders, one name: different contents -> exactly one is committed, the others are refused and
    nothing is overwritten; identical contents -> all succeed, one document."""
    base = f"/{A}/{folder}"
    contents = [samples.minimal_pdf(f"{folder} candidate {i}") for i in range(10)]
    same = samples.minimal_pdf(f"{folder} the same for all")

    async def one(i, name, data):
        async with world.connect("podmi" if i % 2 else "podmi2") as conn, conn.start_sftp_client() as s:
            return await attempt(put(s, f"{base}/{name}", data))

    async def go():
        return (await asyncio.gather(*(one(i, "race.pdf", d) for i, d in enumerate(contents))),
                await asyncio.gather(*(one(i, "same.pdf", same) for i in range(10))))

    different, identical = run(go())
    winners = [i for i, r in enumerate(different) if r.ok]
    assert len(winners) == 1, [str(r) for r in different]
    assert all("already exists" in r.reason for r in different if not r.ok), [str(r) for r in different]
    assert all(r.ok for r in identical), [str(r) for r in identical]
    assert run(archiver_view(world, folder)) == {"race.pdf": contents[winners[0]], "same.pdf": same}
    outcomes = sorted(e.outcome for e in events(world, "upload", f"{base}/race.pdf"))
    assert outcomes == ["committed"] + ["refused"] * 9, outcomes


# -- logins --------------------------------------------------------------------------------------------------
def test_unknown_key_is_refused(world):
    nobody = f"nobody-{uuid.uuid4().hex[:8]}"
    p = world.sftp(nobody, "ls /\n", key="stranger")
    assert p.returncode == 255 and "Permission denied" in p.stderr, (p.returncode, p.stderr)
    p = world.sftp("podmi", "ls /\n", key="stranger")          # a known account, a key not its own
    assert p.returncode == 255 and "Permission denied" in p.stderr

    async def go():
        try:
            async with world.connect("podmi", client_keys=[str(world.keys["stranger"])]):
                return None
        except asyncssh.PermissionDenied as exc:
            return exc
    assert isinstance(run(go()), asyncssh.PermissionDenied)
    failed = wait_for_events(world, "login", lambda e: e.actor == nobody and e.outcome == "failed")
    assert failed and "publickey" in failed[0].detail, failed
    assert not [e for e in events(world, "login") if e.actor == nobody and e.outcome == "ok"]


def test_staff_password_login_and_generic_refusal(world):
    async def login(user, password):
        try:
            async with world.connect(user, password=password, client_keys=None, preferred_auth="password") as conn:
                async with conn.start_sftp_client() as s:
                    return await names(s, "/")
        except asyncssh.PermissionDenied as exc:
            return exc

    seen = run(login("staff-a", STAFF_PASSWORD))
    assert isinstance(seen, set) and A in seen and CENTRE_B not in seen, seen
    ok = [e for e in events(world, "login") if e.actor == "staff-a" and e.outcome == "ok"]
    assert ok and ok[0].detail == "method=password", ok[:1]

    ghost_user = f"ghost-{uuid.uuid4().hex[:8]}"
    wrong = run(login("staff-a", STAFF_PASSWORD + "x"))
    unknown = run(login(ghost_user, STAFF_PASSWORD))
    machine = run(login("podmi", STAFF_PASSWORD))
    for exc, user in ((wrong, "staff-a"), (unknown, ghost_user), (machine, "podmi")):
        assert isinstance(exc, asyncssh.PermissionDenied), exc
        # the same answer whatever was wrong
        assert (exc.code, exc.reason.replace(user, "<u>")) == (wrong.code, wrong.reason.replace("staff-a", "<u>"))
    failed = [e for e in events(world, "login") if e.outcome == "failed"]
    assert any(e.actor == "staff-a" and "wrong password" in e.detail for e in failed)
    assert any(e.actor == ghost_user and "password" in e.detail for e in failed)


@pytest.fixture
def cert_gateway(make_gateway, tmp_path):
    """A gateway trusting one SSH user CA; an uploader ``pod-cert`` and a staff member ``staff-cert``, neither
    with keys; a second, untrusted CA; one key + certificate per case in ``gw.certs``."""
    d = tmp_path / "certs"
    d.mkdir()

    def sh(*a):
        subprocess.run(a, check=True, cwd=d, capture_output=True)

    cases = {  # key name: (signing CA, principal, validity)
        "valid": ("user_ca", "pod-cert", "-5m:+1h"),
        "expired": ("user_ca", "pod-cert", "20200101:20200102"),
        "not_yet": ("user_ca", "pod-cert", "+1d:+2d"),
        "wrong_principal": ("user_ca", "bob", "-5m:+1h"),
        "other_ca_signed": ("other_ca", "pod-cert", "-5m:+1h"),
        "staff": ("user_ca", "staff-cert", "-5m:+1h"),
    }
    for k in ("user_ca", "other_ca", *cases):
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", k)
    for k, (ca, principal, validity) in cases.items():
        sh("ssh-keygen", "-q", "-s", ca, "-I", f"{k}@test", "-n", principal, "-V", validity, f"{k}.pub")
    bare = tmp_path / "bare"                     # the valid key without its certificate next to it
    bare.mkdir()
    shutil.copy(d / "valid", bare / "valid")

    gw = make_gateway(populated=False, env={"INSTPAGES_SFTP_USER_CA_KEYS": str(d / "user_ca.pub")})
    gw.admin.add_institution(A, "OCMW cert", "active")
    gw.admin.add_account("pod-cert", "uploader", None, [])      # no keys: the certificate is the credential
    gw.admin.add_account("staff-cert", "staff", None, [], STAFF_PASSWORD)
    gw.admin.grant("staff-cert", A)
    gw.certs = d
    gw.bare_key = bare / "valid"
    return gw


CERT_DOC = samples.minimal_pdf("delivered with a certificate")


def cert_openssh(gw, tmp_path, key: Path, cert: Path | None, name: str, user: str = "pod-cert"):
    """OpenSSH sftp with ``-i key -o CertificateFile=cert``: put a document, list the centre."""
    local = write(tmp_path, "cert.pdf", CERT_DOC)
    cmd = ["sftp", *SFTP_OPTS, "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey", "-i", str(key)]
    if cert is not None:
        cmd += ["-o", f"CertificateFile={cert}"]
    cmd += ["-P", str(gw.port), "-b", "-", f"{user}@127.0.0.1"]
    return subprocess.run(cmd, input=f"put {local} /{A}/{name}.pdf\nls /{A}\n", capture_output=True, text=True,
                          env=ssh_env(), timeout=60, start_new_session=True)


async def cert_asyncssh(gw, case: str, user: str = "pod-cert"):
    """asyncssh with the key and its certificate: put a document, list the centre; or the exception."""
    d = gw.certs
    try:
        async with asyncssh.connect("127.0.0.1", gw.port, username=user, known_hosts=None, agent_path=None,
                                    client_keys=[(str(d / case), str(d / f"{case}-cert.pub"))]) as conn:
            async with conn.start_sftp_client() as s:
                await put(s, f"/{A}/{case}-asyncssh.pdf", CERT_DOC)
                return await names(s, f"/{A}")
    except (asyncssh.Error, OSError) as exc:
        return exc


def stored_names(gw) -> list[str]:
    with gw.repo.read() as c:
        return sorted(doc.name for doc in gw.repo.documents_in(c, A, ""))


def test_ssh_user_certificates(cert_gateway, tmp_path):
    gw, d = cert_gateway, cert_gateway.certs
    p = cert_openssh(gw, tmp_path, d / "valid", d / "valid-cert.pub", "openssh")
    assert p.returncode == 0, p.stderr
    assert "openssh.pdf" in p.stdout
    for case in ("expired", "not_yet", "wrong_principal", "other_ca_signed"):
        p = cert_openssh(gw, tmp_path, d / case, d / f"{case}-cert.pub", case)
        assert p.returncode == 255 and "Permission denied" in p.stderr, (case, p.returncode, p.stderr)
    p = cert_openssh(gw, tmp_path, gw.bare_key, None, "bare")
    assert p.returncode == 255 and "Permission denied" in p.stderr, ("bare key", p.stderr)

    assert run(cert_asyncssh(gw, "valid")) == {"openssh.pdf", "valid-asyncssh.pdf"}
    for case in ("expired", "not_yet", "wrong_principal", "other_ca_signed"):
        assert isinstance(run(cert_asyncssh(gw, case)), asyncssh.PermissionDenied), case

    assert stored_names(gw) == ["openssh.pdf", "valid-asyncssh.pdf"]
    ok = [e for e in events(gw, "login") if e.outcome == "ok"]
    assert len(ok) == 2 and all(e.actor == "pod-cert" and e.detail == "method=certificate" for e in ok), ok
    deadline = time.monotonic() + 5
    while True:  # refused key logins are written when their connection is gone
        failed = [e for e in events(gw, "login") if e.outcome == "failed"]
        if len(failed) >= 9 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    # 5 OpenSSH + 4 asyncssh refusals, each on the record once
    assert len(failed) == 9 and all(e.actor == "pod-cert" for e in failed), [(e.actor, e.detail) for e in failed]


def test_certificate_for_a_person_account_is_refused(cert_gateway, tmp_path):
    """Certificates are for machine accounts; a staff member's certificate, valid and from the trusted CA,
    gets nothing, and the refusal is on the record once per attempt, with its reason."""
    gw, d = cert_gateway, cert_gateway.certs
    p = cert_openssh(gw, tmp_path, d / "staff", d / "staff-cert.pub", "staff", user="staff-cert")
    assert p.returncode == 255, (p.returncode, p.stdout, p.stderr)
    res = run(cert_asyncssh(gw, "staff", user="staff-cert"))
    assert isinstance(res, (asyncssh.Error, OSError)), res
    assert stored_names(gw) == []
    assert not [e for e in events(gw, "login") if e.outcome == "ok"]
    time.sleep(0.3)  # let the connection-lost bookkeeping run
    failed = [e for e in events(gw, "login") if e.outcome == "failed"]
    reason = "method=certificate; certificate is not enough for a staff account over sftp"
    assert any(reason == e.detail for e in failed), failed
    # one attempt, one event: not a second one claiming that no key was accepted
    assert [(e.actor, e.detail) for e in failed] == [("staff-cert", reason)] * 2


def test_a_certificate_without_principals_logs_in_as_nobody(cert_gateway, tmp_path):
    """A certificate from the trusted CA that names no principal (OpenSSH reads that as "any user" only where a
    principals file says so) is refused for every account, with the reason on the record; one naming the
    account still logs in."""
    gw, d = cert_gateway, cert_gateway.certs
    gw.admin.add_account("arch-cert", "archiver", A, [])
    ca = asyncssh.read_private_key(str(d / "user_ca"))
    key = asyncssh.generate_private_key("ssh-ed25519")
    cert = ca.generate_user_certificate(key, "no-principals@test", principals=(), valid_after="-5m",
                                        valid_before="+1h")
    assert cert.principals == []
    key.write_private_key(str(d / "anyone"))
    (d / "anyone").chmod(0o600)
    cert.write_certificate(str(d / "anyone-cert.pub"))

    for user in ("pod-cert", "arch-cert"):
        p = cert_openssh(gw, tmp_path, d / "anyone", d / "anyone-cert.pub", f"anyone-{user}", user=user)
        shown = [line for line in p.stdout.splitlines() if not line.startswith("sftp>")]
        assert p.returncode == 255 and not shown, (user, p.returncode, p.stdout, p.stderr)
        assert not isinstance(run(cert_asyncssh(gw, "anyone", user=user)), set), user
    assert stored_names(gw) == []
    assert not [e for e in events(gw, "login") if e.outcome == "ok"]
    refused = [(e.actor, e.detail) for e in events(gw, "login") if e.outcome == "failed"]
    reason = "method=certificate; certificate names no principal"
    assert sorted(refused) == sorted([("pod-cert", reason), ("arch-cert", reason)] * 2), refused

    # a certificate that names the account still works
    assert run(cert_asyncssh(gw, "valid")) == {"valid-asyncssh.pdf"}


# -- the record ----------------------------------------------------------------------------------------------
def test_the_record_of_a_delivery(world, folder, tmp_path):
    """login ok, list, upload committed, upload refused with its reason, download complete -- each on the
    record with who, what and how much."""
    data = samples.minimal_pdf(f"{folder} on the record")
    base = f"/{A}/{folder}"
    since = max((e.id for e in world.audit(limit=1)), default=0)

    async def go():
        async with world.connect("podmi") as conn, conn.start_sftp_client() as s:
            await put(s, f"{base}/rec.pdf", data)
            await attempt(put(s, f"{base}/rec.zip.pdf", samples.not_a_pdf_zip()))
        async with world.connect("arch-a") as conn, conn.start_sftp_client() as s:
            listing = await names(s, base)
            got = await get(s, f"{base}/rec.pdf")
            f = await s.open(f"{base}/rec.pdf", "rb")   # a download stopped half way
            await f.read(100)
            await f.close()
        return listing, got

    listing, got = run(go())
    assert listing == {"rec.pdf"} and got == data
    p = world.sftp("staff-a", f"get {base}/rec.pdf {tmp_path}/rec.pdf\n")
    assert p.returncode == 0 and (tmp_path / "rec.pdf").read_bytes() == data

    new = [e for e in world.audit(limit=200) if e.id > since]
    logins = [(e.actor, e.outcome) for e in new if e.action == "login"]
    assert ("podmi", "ok") in logins and ("arch-a", "ok") in logins and ("staff-a", "ok") in logins, logins
    assert all(e.protocol == "sftp" and e.source == "127.0.0.1" for e in new if e.action == "login")
    lists = [e for e in new if e.action == "list" and e.path == base]
    assert [(e.actor, e.outcome, e.detail) for e in lists] == [("arch-a", "ok", "1 entries")], lists
    ups = {(e.path, e.outcome): e for e in new if e.action == "upload"}
    committed = ups[(f"{base}/rec.pdf", "committed")]
    assert committed.actor == "podmi" and committed.bytes == len(data) and committed.institution_id == A
    assert hashlib.sha256(data).hexdigest() in committed.detail
    refused = ups[(f"{base}/rec.zip.pdf", "refused")]
    assert "not a PDF" in refused.detail and refused.actor == "podmi"
    downloads = [(e.actor, e.outcome, e.bytes) for e in new if e.action == "download" and e.path == f"{base}/rec.pdf"]
    assert sorted(downloads) == sorted([("arch-a", "complete", len(data)), ("arch-a", "aborted", 100),
                                        ("staff-a", "complete", len(data))]), downloads
