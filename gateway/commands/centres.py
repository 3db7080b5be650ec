"""``institution ...``: centres -- added and configured, moved along their lifecycle, their administrators,
security consultant and notification contacts."""
from __future__ import annotations

from gateway.admin.service import Administration
from gateway.commands.base import administration, command, group, lists, print_table, reports, set_networks

STATUSES = ["paper", "requested", "active", "suspended"]
TRANSITIONS = (("request", "record the centre's request to switch over (paper -> requested)"),
               ("activate", "activate electronic delivery, all three legislations (requested/suspended -> active); "
                            "mails the centre's contacts"),
               ("suspend", "suspend an active centre (active -> suspended)"))
#: the sub-commands naming local administrators: the service's method, the help text, what is said after
LOCAL_ADMIN = {
    "set-local-admin": (Administration.set_local_admin, "designate a local administrator",
                        "{account} is a local administrator of centre {id}"),
    "unset-local-admin": (Administration.unset_local_admin, "withdraw a local administrator",
                          "{account} is no longer a local administrator of centre {id}"),
}


def add_institution(sub, common) -> None:
    inst = group(sub, common, "institution", "centres")
    a = command(inst, common, "add", add)
    a.add_argument("id")
    a.add_argument("--name", required=True)
    a.add_argument("--status", default="paper", choices=STATUSES)
    a.add_argument("--content-types", help="accepted content types, comma-separated (default application/pdf)")
    a.add_argument("--mutable", action="store_true", help="scratch/test centre: a new version archives the old")
    a.add_argument("--language", choices=["nl", "fr"], help="language of its mails (default nl)")
    a.add_argument("--contacts", help="comma-separated notification addresses")
    a = command(inst, common, "configure", configure, help="per-centre settings")
    a.add_argument("id")
    a.add_argument("--content-types")
    a.add_argument("--mutable", dest="mutable", action="store_true", default=None)
    a.add_argument("--immutable", dest="mutable", action="store_false")
    a = command(inst, common, "set-networks", set_networks("centre", "id", "set_institution_networks"),
                help="source ranges of a centre (empty: any)")
    a.add_argument("id")
    a.add_argument("networks")
    a = command(inst, common, "set-status", set_status, help="operator override outside the lifecycle")
    a.add_argument("id")
    a.add_argument("status", choices=STATUSES)
    a.add_argument("--reference", default="")
    for verb, text in TRANSITIONS:
        a = command(inst, common, verb, transition, help=text)
        a.add_argument("id")
        a.add_argument("--reference", required=True, help="free text on the record, e.g. the signed forms received")
    _add_people(inst, common)
    command(inst, common, "list", list_centres)


def _add_people(inst, common) -> None:
    """show, and who acts for the centre: local administrators, security consultant, contacts."""
    command(inst, common, "show", show, help="status, history, administrators, contacts").add_argument("id")
    for verb, (_, text, _) in LOCAL_ADMIN.items():
        a = command(inst, common, verb, local_admin, help=text)
        a.add_argument("id")
        a.add_argument("account")
    a = command(inst, common, "set-security-consultant", set_security_consultant,
                help="the centre's security consultant (acts as local administrator while none is designated)")
    a.add_argument("id")
    a.add_argument("account", nargs="?", help="omit to clear")
    a = command(inst, common, "set-contacts", set_contacts, help="notification addresses and language")
    a.add_argument("id")
    a.add_argument("--contacts", help="comma-separated e-mail addresses (empty: none)")
    a.add_argument("--language", choices=["nl", "fr"])


@reports
def add(args, admin: Administration) -> str:
    inst_id = admin.add_institution(args.id, args.name, args.status, args.content_types, args.mutable)
    if args.language or args.contacts is not None:
        admin.set_contacts(inst_id, args.contacts, args.language)
    return f"added centre {inst_id} ({args.status})"


@administration
def transition(args, admin: Administration) -> int:
    """request, activate, suspend: a step of the lifecycle (activation mails the contacts)."""
    old, new, outbox_id = admin.transition(args.id, args.sub, args.reference)
    print(f"centre {args.id}: {old} -> {new}")
    if args.sub == "activate":
        _activation_notice(admin, outbox_id)
    return 0


def _activation_notice(admin: Administration, outbox_id: int | None) -> None:
    notifier = admin.mailbox.notifier
    print("activation notice queued for the centre's contacts" if outbox_id is not None else
          "no activation notice: " + ("mail is not configured (smtp.host)" if not (notifier and notifier.enabled)
                                      else "the centre has no notification addresses"))
    if outbox_id is not None:
        notifier.deliver_due()


@administration
def show(args, admin: Administration) -> int:
    o = admin.centre_overview(args.id)
    c = o["centre"]
    print(f"centre {c.id}  {c.name}\nstatus      {c.status} (since {c.status_changed_at:%Y-%m-%d %H:%M} UTC, "
          f"by {c.status_changed_by or '-'}; reference: {c.status_reference or '-'})")
    print(f"language    {c.language}\ncontacts    {c.contacts.replace(',', ', ') or '-'}")
    print("local admin " + (", ".join(a.name for a in o["local_admins"]) or "-"))
    cons = o["consultant"]
    print("consultant  " + (f"{cons.name}" + (" (acting local administrator)" if o["acting_consultant"] else "")
                            if cons else "-"))
    print("history:")
    print_table([[f"{h.at:%Y-%m-%d %H:%M}", f"{h.from_status} -> {h.to_status}", h.actor, h.reference]
                 for h in o["history"]], ["WHEN (UTC)", "CHANGE", "BY", "REFERENCE"])
    return 0


@reports
def local_admin(args, admin: Administration) -> str:
    """set-local-admin, unset-local-admin."""
    change, _, said = LOCAL_ADMIN[args.sub]
    change(admin, args.id, args.account)
    return said.format(account=args.account, id=args.id)


@reports
def set_security_consultant(args, admin: Administration) -> str:
    admin.set_security_consultant(args.id, args.account)
    return f"centre {args.id}: security consultant {args.account or '-'}"


@reports
def set_contacts(args, admin: Administration) -> str:
    admin.set_contacts(args.id, args.contacts, args.language)
    return f"centre {args.id}: contacts updated"


@reports
def configure(args, admin: Administration) -> str:
    admin.configure(args.id, content_types=args.content_types, mutable=args.mutable)
    return f"centre {args.id} configured"


@reports
def set_status(args, admin: Administration) -> str:
    old = admin.set_status(args.id, args.status, args.reference)
    return f"centre {args.id}: {old} -> {args.status}"


@lists("ID", "STATUS", "NAME")
def list_centres(args, admin: Administration) -> list[list[str]]:
    return [[i.id, i.status, i.name] for i in admin.institutions()]
