"""``audit ...``: the record -- its newest events listed, its hash chain checked."""
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
    n, broken = admin.audit_verify()
    if broken == -1:
        print(f"instpages: error: audit record broken: its newest events were removed (the chain head "
              f"does not match event {n}, the last one present)", file=sys.stderr)
        return EXIT_ERROR
    if broken is not None:
        print(f"instpages: error: audit record broken at event {broken} (after {n} good events)", file=sys.stderr)
        return EXIT_ERROR
    print(f"audit record intact: {n} events")
    return 0
