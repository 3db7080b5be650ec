"""Who may do what, where: the role x operation x centre matrix, over SFTP with two real clients.

Every row (one account against one centre) drives the same eight operations -- ``ls /``, list the centre,
stat a document, get it, put a new one, mkdir, rm (= archive), rename -- once with the asyncssh client and once
with OpenSSH ``sftp -b``, and checks the answer of each against the rules:

- uploader: sees only active centres in ``/``; puts and mkdirs into active centres; is refused into paper and
  suspended centres with a message naming the status; never reads, never removes; lists its own uploads only;
- archiver: lists, gets and removes in its own centre only;
- staff: lists and gets in granted centres; removes only with the remove grant;
- local administrator: lists and gets in its own centre;
- security cell: sees the centres in ``/`` but neither lists nor reads a mailbox;
- anything in a centre the caller may not see answers *exactly* like a path that does not exist (same SFTP
  status code and message as the same operation on a centre that is not registered at all).

Each row works in its own folder (named after the test) of the shared ``world`` gateway, seeded over SFTP by
the two uploaders, and ends by checking, as the centre's archiver, that exactly the allowed changes happened.
"""
from __future__ import annotations

import asyncio
import hashlib
import stat as statmod
import subprocess
from pathlib import Path

import asyncssh
import pytest

from gateway.core.enterprise import with_check
from tests.conftest import (
    CENTRE_A,
    CENTRE_B,
    CENTRE_PAPER,
    CENTRE_SUSP,
    OFFICE_CASES,
    SFTP_OPTS,
    STAFF_CASES,
    cli,
    ssh_env,
)
from tests.pdfsamples import minimal_pdf
from tests.sftpclients import Result, attempt, get, names, put

#: a well-formed enterprise number that no centre has: the reference for "does not exist"
GHOST = with_check("09999999")

STATUS = {CENTRE_A: "active", CENTRE_B: "active", CENTRE_PAPER: "paper", CENTRE_SUSP: "suspended"}
ARCHIVER_OF = {CENTRE_A: "arch-a", CENTRE_B: "arch-b"}

#: centres each reader account may list/read, and remove from
READS = {"arch-a": {CENTRE_A}, "staff-a": {CENTRE_A}, "staff-a-rm": {CENTRE_A}, "staff-ab": {CENTRE_A, CENTRE_B},
         "admin-a": {CENTRE_A}}
REMOVES = {"arch-a": {CENTRE_A}, "staff-a-rm": {CENTRE_A}}

#: documents seeded in each row's folder (all by podmi, except OTHER by podmi2)
SEED, OTHER = "seed.pdf", "other.pdf"
SEEDS = (SEED, OTHER, "rm-a.pdf", "rm-o.pdf", "rn-a.pdf", "rn-o.pdf")

OK, DENIED, HIDDEN, REFUSED = "ok", "denied", "hidden", "refused"
OPS = ("root", "ls", "stat", "get", "put", "mkdir", "rm", "rename")


def expected(user: str, centre: str) -> dict:
    """Expected outcome per operation: OK, HIDDEN, or (DENIED, substring of the message or None).
    ``root`` is whether the centre appears in ``ls /``."""
    active = STATUS[centre] == "active"
    not_renamable = (DENIED, "documents cannot be renamed")
    if user in ("podmi", "podmi2"):
        if active:
            return dict(root=True, ls=OK, stat=OK, get=(DENIED, None), put=OK, mkdir=OK, rm=(DENIED, None),
                        rename=not_renamable)
        not_active = (DENIED, f"status: {STATUS[centre]}")
        return dict(root=False, ls=not_active, stat=not_active, get=(DENIED, None), put=not_active, mkdir=not_active,
                    rm=(DENIED, None), rename=HIDDEN)
    if user == "cell":
        return dict(root=True, ls=(DENIED, None), stat=(DENIED, "does not read"), get=(DENIED, None),
                    put=(DENIED, None), mkdir=(DENIED, None), rm=(DENIED, None), rename=(DENIED, None))
    if centre not in READS[user]:
        return dict(root=False, **{op: HIDDEN for op in OPS[1:]})
    return dict(root=True, ls=OK, stat=OK, get=OK, put=(DENIED, None), mkdir=(DENIED, None),
                rm=OK if centre in REMOVES.get(user, ()) else (DENIED, None), rename=not_renamable)


def kind(exp) -> str:
    return exp[0] if isinstance(exp, tuple) else exp


def openssh_expected(exp: dict) -> dict:
    """OpenSSH's sftp stats a path before ``ls`` and ``get`` (its glob) and prints "not found" whenever that
    stat fails, whatever the status; so where the stat is refused, it can only show a refusal."""
    out = dict(exp)
    mailbox_stat_ok = exp["root"]          # a centre is stat-able exactly when it shows in "/"
    doc_stat_ok = kind(exp["stat"]) == OK
    if not mailbox_stat_ok:
        out["ls"] = HIDDEN if kind(exp["ls"]) == HIDDEN else REFUSED
    if not doc_stat_ok:
        out["stat"] = HIDDEN if kind(exp["stat"]) == HIDDEN else REFUSED
        out["get"] = HIDDEN if kind(exp["get"]) == HIDDEN else REFUSED
    return out


CASES = [
    ("uploader-active", "podmi", CENTRE_A),
    ("uploader-other-active", "podmi", CENTRE_B),
    ("uploader-paper", "podmi", CENTRE_PAPER),
    ("uploader-suspended", "podmi", CENTRE_SUSP),
    ("archiver-own", "arch-a", CENTRE_A),
    ("archiver-other", "arch-a", CENTRE_B),
    ("archiver-paper", "arch-a", CENTRE_PAPER),
    ("archiver-suspended", "arch-a", CENTRE_SUSP),
    *STAFF_CASES,
    ("staff-remove-paper", "staff-a-rm", CENTRE_PAPER),
    ("staff-remove-suspended", "staff-a-rm", CENTRE_SUSP),
    *OFFICE_CASES,
]


# -- helpers ------------------------------------------------------------------------------------------------
def folder_for(request) -> str:
    return "mx-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]


class Problems(list):
    def check(self, cond: bool, msg: str) -> None:
        if not cond:
            self.append(msg)


def judge(problems: Problems, label: str, res: Result, exp, ghost: Result | None = None) -> None:
    """Check one asyncssh answer against its expectation (HIDDEN: identical to ``ghost``)."""
    k = kind(exp)
    if k == OK:
        problems.check(res.ok, f"{label}: expected success, got {res}")
    elif k == DENIED:
        msg = exp[1]
        problems.check(not res.ok and res.code == asyncssh.FX_PERMISSION_DENIED
                       and (msg is None or msg in res.reason),
                       f"{label}: expected permission denied{f' naming {msg!r}' if msg else ''}, got {res}")
    elif k == HIDDEN:
        assert ghost is not None
        problems.check(not ghost.ok and ghost.code == asyncssh.FX_NO_SUCH_FILE,
                       f"{label}: reference on a non-existent centre should be 'no such file', got {ghost}")
        problems.check(not res.ok and (res.code, res.reason) == (ghost.code, ghost.reason),
                       f"{label}: expected exactly the answer for a non-existent path ({ghost}), got {res}")
    else:  # pragma: no cover
        raise AssertionError(exp)


# -- seeding and final state, over SFTP -----------------------------------------------------------------------
async def seed(world, centre: str, folder: str, docs: dict[str, bytes]) -> None:
    async with world.connect("podmi") as c1, world.connect("podmi2") as c2:
        async with c1.start_sftp_client() as s1, c2.start_sftp_client() as s2:
            await s1.mkdir(f"/{centre}/{folder}")
            for name, data in docs.items():
                await put(s2 if name == OTHER else s1, f"/{centre}/{folder}/{name}", data)


def visible_to(user: str, state: set[str]) -> set[str]:
    return state - {OTHER} if user in ("podmi", "podmi2") else set(state)


# -- the asyncssh client ---------------------------------------------------------------------------------------
async def drive_asyncssh(world, user: str, centre: str, folder: str, exp: dict, docs: dict[str, bytes],
                         state: set[str], problems: Problems) -> None:
    base, gbase = f"/{centre}/{folder}", f"/{GHOST}/{folder}"
    new_doc = minimal_pdf(f"{folder} put by asyncssh")
    async with world.connect(user) as conn, conn.start_sftp_client() as s:
        # ls /
        root = await names(s, "/")
        problems.check((centre in root) == exp["root"],
                       f"asyncssh ls /: centre {'missing from' if exp['root'] else 'shown in'} {sorted(root)}")
        problems.check(GHOST not in root, "the reference centre exists")

        # ls centre (the mailbox, then this row's folder)
        res, ghost = await attempt(names(s, f"/{centre}")), await attempt(names(s, f"/{GHOST}"))
        judge(problems, "asyncssh ls centre", res, exp["ls"], ghost)
        if kind(exp["ls"]) == OK and res.ok and STATUS[centre] == "active":
            problems.check(folder in res.value, f"asyncssh ls centre: folder {folder} missing from {res.value}")
        res, ghost = await attempt(names(s, base)), await attempt(names(s, gbase))
        judge(problems, "asyncssh ls folder", res, exp["ls"], ghost)
        if kind(exp["ls"]) == OK and res.ok:
            problems.check(res.value == visible_to(user, state),
                           f"asyncssh ls folder: {sorted(res.value)} != {sorted(visible_to(user, state))}")

        # stat doc
        res, ghost = await attempt(s.stat(f"{base}/{SEED}")), await attempt(s.stat(f"{gbase}/{SEED}"))
        judge(problems, "asyncssh stat doc", res, exp["stat"], ghost)
        if kind(exp["stat"]) == OK and res.ok:
            a = res.value
            problems.check(a.size == len(docs[SEED]) and statmod.S_ISREG(a.permissions)
                           and statmod.S_IMODE(a.permissions) == 0o440,
                           f"asyncssh stat doc: size {a.size} (want {len(docs[SEED])}), mode {a.permissions:o}")

        if user in ("podmi", "podmi2") and STATUS[centre] == "active":
            # another uploader's document: exactly like a name that does not exist, and never readable
            other = await attempt(s.stat(f"{base}/{OTHER}"))
            missing = await attempt(s.stat(f"{base}/no-such-{OTHER}"))
            judge(problems, "asyncssh stat other uploader's doc", other, HIDDEN, missing)
            judge(problems, "asyncssh stat other uploader's doc (vs unknown centre)", other, HIDDEN,
                  await attempt(s.stat(f"{gbase}/{OTHER}")))
            judge(problems, "asyncssh get other uploader's doc", await attempt(get(s, f"{base}/{OTHER}")),
                  (DENIED, None))

        # get doc
        res, ghost = await attempt(get(s, f"{base}/{SEED}")), await attempt(get(s, f"{gbase}/{SEED}"))
        judge(problems, "asyncssh get doc", res, exp["get"], ghost)
        if res.ok:
            problems.check(res.value == docs[SEED], "asyncssh get doc: bytes differ from what was uploaded")

        # put doc
        res = await attempt(put(s, f"{base}/put-a.pdf", new_doc))
        ghost = await attempt(put(s, f"{gbase}/put-a.pdf", new_doc))
        judge(problems, "asyncssh put doc", res, exp["put"], ghost)
        if res.ok:
            state.add("put-a.pdf")
            after = await attempt(s.stat(f"{base}/put-a.pdf"))
            problems.check(after.ok and after.value.size == len(new_doc),
                           f"asyncssh put doc: not visible to its uploader afterwards ({after})")

        # mkdir
        res, ghost = await attempt(s.mkdir(f"{base}/sub-a")), await attempt(s.mkdir(f"{gbase}/sub-a"))
        judge(problems, "asyncssh mkdir", res, exp["mkdir"], ghost)
        if res.ok:
            state.add("sub-a")

        # rm doc (= archive)
        path = f"{base}/rm-a.pdf"
        res, ghost = await attempt(s.remove(path)), await attempt(s.remove(f"{gbase}/rm-a.pdf"))
        judge(problems, "asyncssh rm doc", res, exp["rm"], ghost)
        if res.ok:
            state.discard("rm-a.pdf")
            listing = await names(s, base)
            problems.check("rm-a.pdf" not in listing, f"asyncssh rm doc: still listed: {sorted(listing)}")
            gone = await attempt(s.stat(path))
            problems.check(not gone.ok and gone.code == asyncssh.FX_NO_SUCH_FILE,
                           f"asyncssh rm doc: stat afterwards gives {gone}")
            events = [e for e in world.audit(action="archive", limit=500) if e.path == path]
            problems.check(any(e.outcome == "ok" and e.actor == user for e in events),
                           f"asyncssh rm doc: no 'archive' audit event for {path}: {events}")
            if user == "arch-a":
                # nothing is lost: the local administrator's CLI restores it, and it is back, byte for byte
                r = await asyncio.to_thread(cli, "document", "restore", centre, f"{folder}/rm-a.pdf",
                                            data_dir=world.data_dir)
                problems.check(r.returncode == 0, f"document restore failed: {r.returncode} {r.stderr}")
                if r.returncode == 0:
                    state.add("rm-a.pdf")
                    back = await attempt(get(s, path))
                    problems.check(back.ok and back.value == docs["rm-a.pdf"],
                                   f"restored document not readable again with the same bytes ({back})")
                    problems.check("rm-a.pdf" in await names(s, base), "restored document not listed again")
                    restores = [e for e in world.audit(action="restore", limit=500) if e.path == path]
                    problems.check(len(restores) == 1, f"restore not on the record: {restores}")

        # rename
        res = await attempt(s.rename(f"{base}/rn-a.pdf", f"{base}/rn-a2.pdf"))
        ghost = await attempt(s.rename(f"{gbase}/rn-a.pdf", f"{gbase}/rn-a2.pdf"))
        judge(problems, "asyncssh rename", res, exp["rename"], ghost)
        if res.ok:
            state.discard("rn-a.pdf")
            state.add("rn-a2.pdf")


# -- OpenSSH sftp -b ---------------------------------------------------------------------------------------
def run_batch(world, user: str, commands: list[str]) -> list[list[str]]:
    """Run every command with ``-`` (continue on error); stdout and stderr merged (sftp line-buffers stdout),
    cut into one block of output lines per command."""
    cmd = ["sftp", *SFTP_OPTS, "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
           "-i", str(world.keys[user]), "-P", str(world.port), "-b", "-", f"{user}@127.0.0.1"]
    script = "".join(f"-{c}\n" for c in commands)
    p = subprocess.run(cmd, input=script, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=ssh_env(), timeout=120, start_new_session=True)
    assert p.returncode == 0, f"sftp -b failed ({p.returncode}): {p.stdout}"
    blocks: list[list[str]] = []
    echoed: list[str] = []
    for line in p.stdout.splitlines():
        if line.startswith("sftp> "):
            echoed.append(line[len("sftp> -"):])
            blocks.append([])
        elif blocks and line.strip():
            blocks[-1].append(line.rstrip())
    assert echoed == commands, f"unexpected sftp transcript:\n{p.stdout}"
    return blocks


def openssh_judge(problems: Problems, label: str, out: list[str], exp, ghost_out: list[str], subs: dict,
                  listing: bool = False) -> bool:
    """Check one OpenSSH answer; returns whether the command succeeded."""
    text = "\n".join(out)
    failed = any(m in text for m in ("not found", "Permission denied", "No such file", "Couldn't", "Can't",
                                     "Failure", "remote ", "dest open")) if listing else bool(out)
    k = kind(exp)
    if k == OK:
        problems.check(not failed, f"{label}: expected success, got {out}")
    elif k == DENIED:
        problems.check(failed and "Permission denied" in text, f"{label}: expected 'Permission denied', got {out}")
    elif k == REFUSED:
        problems.check(failed, f"{label}: expected a refusal, got {out}")
    else:
        def norm(lines):
            t = "\n".join(lines)
            for a, b in subs.items():
                t = t.replace(a, b)
            return t
        problems.check(bool(ghost_out) and ("not found" in norm(ghost_out) or "No such file" in norm(ghost_out)),
                       f"{label}: reference on a non-existent centre should say not found, got {ghost_out}")
        problems.check(norm(out) == norm(ghost_out),
                       f"{label}: expected exactly the answer for a non-existent path {ghost_out}, got {out}")
    return not failed


def listed_names(lines: list[str]) -> set[str]:
    return {ln.split()[-1] for ln in lines}


def drive_openssh(world, tmp: Path, user: str, centre: str, folder: str, exp: dict, docs: dict[str, bytes],
                  state: set[str], problems: Problems) -> None:
    exp = openssh_expected(exp)
    base, gbase = f"/{centre}/{folder}", f"/{GHOST}/{folder}"
    new_doc = minimal_pdf(f"{folder} put by OpenSSH")
    (tmp / "put-o.pdf").write_bytes(new_doc)
    got, got_ghost = tmp / "got.pdf", tmp / "got-ghost.pdf"
    plan = {
        "root": "ls /",
        "ls": f"ls /{centre}", "ls-ghost": f"ls /{GHOST}",
        "lsf": f"ls -l {base}", "lsf-ghost": f"ls -l {gbase}",
        "stat": f"ls -l {base}/{SEED}", "stat-ghost": f"ls -l {gbase}/{SEED}",
        "get": f"get {base}/{SEED} {got}", "get-ghost": f"get {gbase}/{SEED} {got_ghost}",
        "put": f"put {tmp}/put-o.pdf {base}/put-o.pdf", "put-ghost": f"put {tmp}/put-o.pdf {gbase}/put-o.pdf",
        "mkdir": f"mkdir {base}/sub-o", "mkdir-ghost": f"mkdir {gbase}/sub-o",
        "rm": f"rm {base}/rm-o.pdf", "rm-ghost": f"rm {gbase}/rm-o.pdf",
        "rename": f"rename {base}/rn-o.pdf {base}/rn-o2.pdf",
        "rename-ghost": f"rename {gbase}/rn-o.pdf {gbase}/rn-o2.pdf",
        "after": f"ls -l {base}",
    }
    if user in ("podmi", "podmi2") and STATUS[centre] == "active":
        plan["other"] = f"ls -l {base}/{OTHER}"
        plan["other-missing"] = f"ls -l {base}/no-such-{OTHER}"
    keys = list(plan)
    out = dict(zip(keys, run_batch(world, user, [plan[k] for k in keys])))
    subs = {GHOST: "<centre>", centre: "<centre>", str(got_ghost): "<local>", str(got): "<local>"}

    root = {t.strip("/") for ln in out["root"] for t in ln.split()}
    problems.check((centre in root) == exp["root"],
                   f"OpenSSH ls /: centre {'missing from' if exp['root'] else 'shown in'} {sorted(root)}")

    if openssh_judge(problems, "OpenSSH ls centre", out["ls"], exp["ls"], out["ls-ghost"], subs, listing=True) \
            and STATUS[centre] == "active":
        problems.check(f"{base}" in {t for ln in out["ls"] for t in ln.split()},
                       f"OpenSSH ls centre: {folder} missing from {out['ls']}")
    lsf_exp = exp["ls"] if kind(exp["ls"]) != DENIED else REFUSED  # the folder's stat comes first (glob)
    if openssh_judge(problems, "OpenSSH ls -l folder", out["lsf"], lsf_exp, out["lsf-ghost"], subs, listing=True):
        problems.check(listed_names(out["lsf"]) == visible_to(user, state),
                       f"OpenSSH ls -l folder: {out['lsf']} != {sorted(visible_to(user, state))}")
        for ln in out["lsf"]:
            if ln.split()[-1] in docs:  # documents are read-only for everyone, and show their size
                problems.check(ln.startswith("-r--r-----") and ln.split()[4] == str(len(docs[ln.split()[-1]])),
                               f"OpenSSH ls -l folder: bad entry {ln!r}")

    if openssh_judge(problems, "OpenSSH stat doc", out["stat"], exp["stat"], out["stat-ghost"], subs,
                     listing=True):
        problems.check(len(out["stat"]) == 1 and out["stat"][0].startswith("-r--r-----")
                       and out["stat"][0].split()[4] == str(len(docs[SEED])),
                       f"OpenSSH stat doc: {out['stat']}")
    if "other" in out:
        msubs = dict(subs, **{f"no-such-{OTHER}": OTHER})
        openssh_judge(problems, "OpenSSH stat other uploader's doc", out["other"], HIDDEN, out["other-missing"],
                      msubs, listing=True)

    if openssh_judge(problems, "OpenSSH get doc", out["get"], exp["get"], out["get-ghost"], subs):
        problems.check(got.exists() and got.read_bytes() == docs[SEED], "OpenSSH get doc: bytes differ")
    else:
        problems.check(not got.exists() or got.stat().st_size == 0, "OpenSSH get doc: refused, yet bytes arrived")
    problems.check(not got_ghost.exists() or got_ghost.stat().st_size == 0, "OpenSSH get from unknown centre")

    if openssh_judge(problems, "OpenSSH put doc", out["put"], exp["put"], out["put-ghost"], subs):
        state.add("put-o.pdf")
    if openssh_judge(problems, "OpenSSH mkdir", out["mkdir"], exp["mkdir"], out["mkdir-ghost"], subs):
        state.add("sub-o")
    if openssh_judge(problems, "OpenSSH rm doc", out["rm"], exp["rm"], out["rm-ghost"], subs):
        state.discard("rm-o.pdf")
    if openssh_judge(problems, "OpenSSH rename", out["rename"], exp["rename"], out["rename-ghost"], subs):
        state.discard("rn-o.pdf")
        state.add("rn-o2.pdf")
    if kind(exp["ls"]) == OK:
        problems.check(listed_names(out["after"]) == visible_to(user, state),
                       f"OpenSSH ls -l after the changes: {out['after']} != {sorted(visible_to(user, state))}")


async def final_listing(world, centre: str, folder: str, docs: dict[str, bytes]) -> tuple[set[str], bytes]:
    async with world.connect(ARCHIVER_OF[centre]) as conn, conn.start_sftp_client() as s:
        return await names(s, f"/{centre}/{folder}"), await get(s, f"/{centre}/{folder}/{SEED}")


# -- the matrix ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("user,centre", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_role_operation_centre(world, request, tmp_path, user, centre):
    folder = folder_for(request)
    exp = expected(user, centre)
    docs = {name: minimal_pdf(f"{folder}/{name}") for name in SEEDS}
    active = STATUS[centre] == "active"
    if active:
        asyncio.run(seed(world, centre, folder, docs))
    state: set[str] = set(SEEDS) if active else set()
    problems = Problems()

    asyncio.run(drive_asyncssh(world, user, centre, folder, exp, docs, state, problems))
    drive_openssh(world, tmp_path, user, centre, folder, exp, docs, state, problems)

    # what is really there, seen by the centre's archiver: exactly the allowed changes, seed untouched
    if active:
        final, seed_bytes = asyncio.run(final_listing(world, centre, folder, docs))
        problems.check(final == state, f"final content {sorted(final)} != expected {sorted(state)}")
        problems.check(seed_bytes == docs[SEED], "the seeded document changed")
    else:
        with world.repo.read() as c:
            problems.check(not world.repo.folder_exists(c, centre, folder)
                           and not world.repo.documents_in(c, centre, folder),
                           f"something was created in the {STATUS[centre]} centre")
    assert not problems, f"{user} on {STATUS[centre]} centre {centre}:\n  " + "\n  ".join(problems)


def test_matrix_covers_every_role_and_centre_kind():
    """The matrix above is only as good as its rows: every role meets every kind of centre."""
    rows = {(u, c) for _, u, c in CASES}
    for user in ("podmi", "arch-a", "staff-a", "staff-a-rm", "admin-a", "cell"):
        assert {c for u, c in rows if u == user} == set(STATUS), user
    # and the expectations are not vacuous: each outcome kind occurs
    kinds = {kind(v) for _, u, c in CASES for k, v in expected(u, c).items() if k != "root"}
    assert kinds == {OK, DENIED, HIDDEN}
