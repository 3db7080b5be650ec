"""``ban ...``: failed logins -- the account names and source addresses banned (or counting), and a ban lifted.
Both are on the record."""
from __future__ import annotations

from datetime import datetime, timezone

from gateway.admin.service import Administration
from gateway.commands.base import command, group, lists, reports


def add_ban(sub, common) -> None:
    ban = group(sub, common, "ban", "failed logins: banned account names and source addresses")
    a = command(ban, common, "list", list_bans, help="banned names and addresses (on the record)")
    a.add_argument("--all", action="store_true", help="also names and addresses with failures in the window")
    a = command(ban, common, "lift", lift, help="lift a ban and forget the count (on the record)")
    a.add_argument("target", metavar="NAME|ADDRESS", help="an account name or an IP address")


@lists("KIND", "NAME OR ADDRESS", "COUNT", "LAST FAILURE (UTC)", "BANNED UNTIL (UTC)")
def list_bans(args, admin: Administration) -> list[list[str]]:
    return [[b.kind, _shown(b.subject), str(b.count), _when(b.last_at), _when(b.banned_until)]
            for b in admin.bans(counting=args.all)]


@reports
def lift(args, admin: Administration) -> str:
    lifted = admin.lift_ban(args.target)
    return f"{lifted.kind} {lifted.subject}: " + ("ban lifted" if lifted.banned_until else "not banned; count forgotten")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _shown(name: str) -> str:
    """A name from a failed login: attacker-chosen, so no terminal controls."""
    return "".join(f"\\x{ord(ch):02x}" if ord(ch) < 32 or 127 <= ord(ch) < 160 else ch for ch in name)
