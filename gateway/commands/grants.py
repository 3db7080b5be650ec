"""``grant ...``: access of staff to centres -- given (with remove or write rights, until a day), listed,
revoked."""
from __future__ import annotations

from gateway.admin.service import Administration
from gateway.commands.base import administration, command, print_table
from gateway.core.localtime import last_day


def add_grant(sub, common) -> None:
    gr = sub.add_parser("grant", parents=[common], help="access of staff to centres").add_subparsers(dest="sub",
                                                                                                 required=True)
    a = command(gr, common, "add", add)
    a.add_argument("account")
    a.add_argument("institution")
    a.add_argument("--remove", action="store_true", help="may also remove (archive) documents")
    a.add_argument("--write", action="store_true", help="may also upload and create folders (full rights)")
    a.add_argument("--until", metavar="DATE", help="last day of access (YYYY-MM-DD, Brussels time)")
    a = command(gr, common, "revoke", revoke)
    a.add_argument("account")
    a.add_argument("institution")
    command(gr, common, "list", list_grants, help="who has access to a centre").add_argument("institution")


@administration
def add(args, admin: Administration) -> int:
    admin.grant(args.account, args.institution, args.remove, args.write, args.until)
    extras = [w for w, on in (("remove", args.remove), ("write", args.write)) if on]
    print(f"granted {args.account} access to {args.institution}" + (f" (with {', '.join(extras)})" if extras else "")
          + (f" until {args.until}" if args.until else ""))
    return 0


@administration
def list_grants(args, admin: Administration) -> int:
    print_table([[g.name, "read+remove" if g.can_remove else "read", g.granted_by or "-", f"{g.created_at:%Y-%m-%d}",
                  last_day(g.expires_at) if g.expires_at else "-"] for g in admin.access(args.institution)],
                ["ACCOUNT", "ACCESS", "GRANTED BY", "SINCE", "UNTIL"])
    return 0


@administration
def revoke(args, admin: Administration) -> int:
    admin.revoke(args.account, args.institution)
    print(f"revoked {args.account}'s access to {args.institution}")
    return 0
