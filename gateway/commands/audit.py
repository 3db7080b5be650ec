"""``audit ...``: the record -- its newest events listed, its hash chain checked (and events left unsealed)."""
from __future__ import annotations

import sys

from gateway.admin.service import Administration
from gateway.commands.base import EXIT_ERROR, administration, command, group, lists
from storage.errors import GatewayError


def add_audit(sub, common) -> None:
    au = group(sub, common, "audit", "the record")
    a = command(au, common, "list", list_events)
    a.add_argument("--institution")
    a.add_argument("--limit", type=int, default=50)
    command(au, common, "verify", verify, help="check the hash chain of the record")


@lists("ID", "TIME (UTC)", "ACTOR", "VIA", "SOURCE", "ACTION", "OUTCOME", "PATH", "BYTES", "DETAIL")
def list_events(args, admin: Administration) -> list[list[str]]:
    if args.limit <= 0:
        raise GatewayError("--limit must be positive")
    return [[str(r.id), r.ts.strftime("%Y-%m-%d %H:%M:%S"), r.actor, r.protocol, r.source, r.action,
             r.outcome, r.path, "" if r.bytes is None else str(r.bytes), r.detail]
            for r in admin.audit_list(args.institution, args.limit)]


@administration
def verify(args, admin: Administration) -> int:
    check = admin.audit_verify()
    n, broken = check
    if broken == -1:
        print(f"instpages: error: audit record broken: its newest events were removed (the chain head "
              f"does not match event {n}, the last one present)", file=sys.stderr)
        return EXIT_ERROR
    if broken is not None:
        print(f"instpages: error: audit record broken at event {broken} (after {n} good events)", file=sys.stderr)
        return EXIT_ERROR
    if check.stale:
        print(f"instpages: error: audit record: {check.stale} events were never sealed into the chain (the oldest "
              f"is event {check.oldest_stale}; the {n} sealed events are intact)", file=sys.stderr)
        return EXIT_ERROR
    fresh = f", {check.unsealed} newer not sealed yet" if check.unsealed else ""
    print(f"audit record intact: {n} events{fresh}")
    if check.missing_ids:
        print(f"note: {check.missing_ids} event ids are absent between the first and the newest event"
              + (" (an operation rolled back after writing its event also leaves one on PostgreSQL)"
                 if check.dialect == "postgresql" else ""))
    return 0
