"""``grant ...``: access of staff to centres -- given (with remove or write rights, until a day), listed,
revoked."""
from __future__ import annotations

from gateway.admin.service import Administration
from gateway.commands.base import command, group, lists, reports
from gateway.core.localtime import last_day


def add_grant(sub, common) -> None:
    gr = group(sub, common, "grant", "access of staff to centres")
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


@reports
def add(args, admin: Administration) -> str:
    admin.grant(args.account, args.institution, args.remove, args.write, args.until)
    extras = [w for w, on in (("remove", args.remove), ("write", args.write)) if on]
    return (f"granted {args.account} access to {args.institution}" + (f" (with {', '.join(extras)})" if extras else "")
            + (f" until {args.until}" if args.until else ""))


@lists("ACCOUNT", "ACCESS", "GRANTED BY", "SINCE", "UNTIL")
def list_grants(args, admin: Administration) -> list[list[str]]:
    return [[g.name, "read+remove" if g.can_remove else "read", g.granted_by or "-", f"{g.created_at:%Y-%m-%d}",
             last_day(g.expires_at) if g.expires_at else "-"] for g in admin.access(args.institution)]


@reports
def revoke(args, admin: Administration) -> str:
    admin.revoke(args.account, args.institution)
    return f"revoked {args.account}'s access to {args.institution}"
