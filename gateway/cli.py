"""``instpages``: the operator's command line. Operators script against these names; keep them stable.

Every command takes ``--data-dir`` and ``--config``; errors print one clear line and exit non-zero.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from gateway import terminal
from gateway.admin import Administration
from gateway.config import Config, load_config
from storage.errors import GatewayError

EXIT_ERROR = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """Usage errors in the CLI's one-line format (operators' scripts parse stderr)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"instpages: error: {message} (see {self.prog} --help)\n")


def _common(default=None) -> argparse.ArgumentParser:
    p = _Parser(add_help=False)
    p.add_argument("--data-dir", default=default, help="data folder (default ./var, or $INSTPAGES_DATA_DIR)")
    p.add_argument("--config", default=default, help="TOML configuration file (default $INSTPAGES_CONFIG)")
    return p


def _secret_commands(sub, common, command: str, text: str) -> None:
    """create / list / revoke of secrets shown once: device passwords and API tokens."""
    sp = sub.add_parser(command, parents=[common], help=text).add_subparsers(dest="sub", required=True)
    a = sp.add_parser("create", parents=[common], help="create one (shown once)")
    a.add_argument("account")
    a.add_argument("--label", default="")
    a.add_argument("--days", type=int)
    a = sp.add_parser("list", parents=[common])
    a.add_argument("account")
    a = sp.add_parser("revoke", parents=[common])
    a.add_argument("account")
    a.add_argument("id", type=int)


def parser() -> argparse.ArgumentParser:
    # the options are accepted before and after the command; SUPPRESS keeps a later level from resetting them
    common = _common(argparse.SUPPRESS)
    ap = _Parser(prog="instpages", description="Institutional Pages gateway", parents=[_common()])
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("init", parents=[common], help="create the data folder, database and keys")
    s = sub.add_parser("serve", parents=[common], help="run the gateway")
    s.add_argument("--demo", action="store_true", help="load the demo data set (idempotent) and print how to log in")

    inst = sub.add_parser("institution", parents=[common], help="centres").add_subparsers(dest="sub", required=True)
    a = inst.add_parser("add", parents=[common])
    a.add_argument("id")
    a.add_argument("--name", required=True)
    a.add_argument("--status", default="paper", choices=["paper", "requested", "active", "suspended"])
    a.add_argument("--content-types", help="accepted content types, comma-separated (default application/pdf)")
    a.add_argument("--mutable", action="store_true", help="scratch/test centre: a new version archives the old")
    a.add_argument("--language", choices=["nl", "fr"], help="language of its mails (default nl)")
    a.add_argument("--contacts", help="comma-separated notification addresses")
    a = inst.add_parser("configure", parents=[common], help="per-centre settings")
    a.add_argument("id")
    a.add_argument("--content-types")
    a.add_argument("--mutable", dest="mutable", action="store_true", default=None)
    a.add_argument("--immutable", dest="mutable", action="store_false")
    a = inst.add_parser("set-networks", parents=[common], help="source ranges of a centre (empty: any)")
    a.add_argument("id")
    a.add_argument("networks")
    a = inst.add_parser("set-status", parents=[common], help="operator override outside the lifecycle")
    a.add_argument("id")
    a.add_argument("status", choices=["paper", "requested", "active", "suspended"])
    a.add_argument("--reference", default="")
    for verb, text in (("request", "record the centre's request to switch over (paper -> requested)"),
                       ("activate", "activate electronic delivery, all three legislations (requested/suspended "
                                    "-> active); mails the centre's contacts"),
                       ("suspend", "suspend an active centre (active -> suspended)")):
        a = inst.add_parser(verb, parents=[common], help=text)
        a.add_argument("id")
        a.add_argument("--reference", required=True, help="free text on the record, e.g. the signed forms received")
    a = inst.add_parser("show", parents=[common], help="status, history, administrators, contacts")
    a.add_argument("id")
    a = inst.add_parser("set-local-admin", parents=[common], help="designate a local administrator")
    a.add_argument("id")
    a.add_argument("account")
    a = inst.add_parser("unset-local-admin", parents=[common], help="withdraw a local administrator")
    a.add_argument("id")
    a.add_argument("account")
    a = inst.add_parser("set-security-consultant", parents=[common],
                        help="the centre's security consultant (acts as local administrator while none is designated)")
    a.add_argument("id")
    a.add_argument("account", nargs="?", help="omit to clear")
    a = inst.add_parser("set-contacts", parents=[common], help="notification addresses and language")
    a.add_argument("id")
    a.add_argument("--contacts", help="comma-separated e-mail addresses (empty: none)")
    a.add_argument("--language", choices=["nl", "fr"])
    inst.add_parser("list", parents=[common])

    acc = sub.add_parser("account", parents=[common], help="accounts").add_subparsers(dest="sub", required=True)
    a = acc.add_parser("add", parents=[common])
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=["uploader", "archiver", "staff", "local-admin", "security-cell"])
    a.add_argument("--institution")
    a.add_argument("--ssh-key", action="append", default=[], metavar="FILE", help="OpenSSH public key file")
    a.add_argument("--client-cert", action="append", default=[], metavar="FILE",
                   help="PEM client certificate for the HTTPS port (machine accounts), pinned by fingerprint")
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    a.add_argument("--display-name", default="")
    a.add_argument("--allow-keys", action="store_true", help="a person may also log in with a bare SSH key")
    a.add_argument("--ldap", action="store_true", help="a person whose password lives in the LDAP directory")
    a.add_argument("--nrn", default="", help="national register number (matched to the eID certificate)")
    a.add_argument("--networks", default="", help="comma-separated CIDR ranges logins must come from")
    acc.add_parser("list", parents=[common])
    a = acc.add_parser("set-networks", parents=[common], help="source ranges of an account (empty: any)")
    a.add_argument("name")
    a.add_argument("networks")
    for verb in ("disable", "enable"):
        a = acc.add_parser(verb, parents=[common])
        a.add_argument("name")

    tok = sub.add_parser("token", parents=[common], help="civil-servant token cards").add_subparsers(
        dest="sub", required=True)
    a = tok.add_parser("issue", parents=[common], help="issue a new card (printed once; the old one is revoked)")
    a.add_argument("account")
    a = tok.add_parser("revoke", parents=[common])
    a.add_argument("account")

    _secret_commands(sub, common, "device-password", "passwords for drive mounts (WebDAV only)")
    gr = sub.add_parser("grant", parents=[common], help="access of staff to centres").add_subparsers(dest="sub",
                                                                                                 required=True)
    a = gr.add_parser("add", parents=[common])
    a.add_argument("account")
    a.add_argument("institution")
    a.add_argument("--remove", action="store_true", help="may also remove (archive) documents")
    a.add_argument("--write", action="store_true", help="may also upload and create folders (full rights)")
    a.add_argument("--until", metavar="DATE", help="last day of access (YYYY-MM-DD, Brussels time)")
    a = gr.add_parser("revoke", parents=[common])
    a.add_argument("account")
    a.add_argument("institution")
    a = gr.add_parser("list", parents=[common], help="who has access to a centre")
    a.add_argument("institution")

    no = sub.add_parser("notify", parents=[common], help="mail notifications").add_subparsers(dest="sub",
                                                                                              required=True)
    a = no.add_parser("test", parents=[common], help="send a test mail to a centre's contacts now")
    a.add_argument("id")
    no.add_parser("run", parents=[common], help="queue due digests and send the outbox once (the server does "
                                                "this by itself)")
    a = no.add_parser("outbox", parents=[common], help="queued and sent mails")
    a.add_argument("--institution")
    a.add_argument("--limit", type=int, default=50)

    _secret_commands(sub, common, "api-token", "tokens for scripts using the REST API")

    au = sub.add_parser("audit", parents=[common], help="the record").add_subparsers(dest="sub", required=True)
    a = au.add_parser("list", parents=[common])
    a.add_argument("--institution")
    a.add_argument("--limit", type=int, default=50)
    au.add_parser("verify", parents=[common], help="check the hash chain of the record")

    ban = sub.add_parser("ban", parents=[common], help="failed logins: banned account names and source addresses"
                         ).add_subparsers(dest="sub", required=True)
    a = ban.add_parser("list", parents=[common], help="banned names and addresses (on the record)")
    a.add_argument("--all", action="store_true", help="also names and addresses with failures in the window")
    a = ban.add_parser("lift", parents=[common], help="lift a ban and forget the count (on the record)")
    a.add_argument("target", metavar="NAME|ADDRESS", help="an account name or an IP address")

    doc = sub.add_parser("document", parents=[common], help="documents").add_subparsers(dest="sub", required=True)
    a = doc.add_parser("restore", parents=[common])
    a.add_argument("institution")
    a.add_argument("path")
    return ap


def _config(args) -> Config:
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    return load_config(args.config or os.environ.get("INSTPAGES_CONFIG"), overrides=overrides)


def _print_table(rows: list[list[str]], header: list[str]) -> None:
    rows = [[terminal.escape(str(x)) for x in r] for r in rows]  # a cell never breaks or colours its line
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    for r in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())


def _secret_command(args, admin: Administration) -> int:
    device = args.command == "device-password"
    noun = "device password" if device else "API token"
    if args.sub == "create":
        if device and args.days is not None and not 1 <= args.days <= 3650:
            raise GatewayError("--days must be between 1 and 3650")
        create = admin.create_device_password if device else admin.create_api_token
        secret_id, secret = create(args.account, args.label, args.days)
        use = "WebDAV only" if device else "use as 'Authorization: Bearer ...'"
        print(f"{noun} {secret_id} for {args.account} ({use}; shown once):" if device else
              f"{noun} {secret_id} for {args.account} (shown once; {use}):")
        print(secret)
    elif args.sub == "list":
        rows = admin.device_passwords(args.account) if device else admin.api_tokens(args.account)
        _print_table([[str(d.id), d.label, f"{d.created_at:%Y-%m-%d}", f"{d.expires_at:%Y-%m-%d}",
                       "revoked" if d.revoked else "live", f"{d.last_used_at:%Y-%m-%d %H:%M}" if d.last_used_at else "-"]
                      for d in rows], ["ID", "LABEL", "CREATED", "EXPIRES", "STATE", "LAST USED"])
    else:
        (admin.revoke_device_password if device else admin.revoke_api_token)(args.account, args.id)
        print(f"{noun} {args.id} of {args.account} revoked")
    return 0


def _ban_command(args, admin: Administration) -> int:
    from datetime import datetime, timezone

    def when(ts: float) -> str:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"

    if args.sub == "lift":
        lifted = admin.lift_ban(args.target)
        print(f"{lifted.kind} {lifted.subject}: " + ("ban lifted" if lifted.banned_until else "not banned; count "
                                                     "forgotten"))
        return 0
    def shown(name: str) -> str:  # names come from failed logins: attacker-chosen, no terminal controls
        return "".join(f"\\x{ord(ch):02x}" if ord(ch) < 32 or 127 <= ord(ch) < 160 else ch for ch in name)

    rows = admin.bans(counting=args.all)
    _print_table([[b.kind, shown(b.subject), str(b.count), when(b.last_at), when(b.banned_until)] for b in rows],
                 ["KIND", "NAME OR ADDRESS", "COUNT", "LAST FAILURE (UTC)", "BANNED UNTIL (UTC)"])
    return 0


def _last_day(expires_at) -> str:
    """A grant's end (the next local midnight) shown as its last day."""
    if expires_at is None:
        return "-"
    from datetime import timedelta

    from gateway.admin import BRUSSELS
    from storage.repository import as_utc

    return (as_utc(expires_at).astimezone(BRUSSELS) - timedelta(seconds=1)).date().isoformat()


def main(argv: list[str] | None = None) -> int:
    # whatever a command prints may carry text an attacker chose (names tried in failed logins, file names)
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = terminal.EscapingStream(out), terminal.EscapingStream(err)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = out, err


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = _config(args)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(terminal.EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=getattr(logging, cfg.logging.level.upper()), handlers=[handler])
        for noisy in ("alembic", "asyncssh"):
            logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
        return _dispatch(args, cfg)
    except GatewayError as exc:
        print(f"instpages: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # pragma: no cover
        return 130


def _dispatch(args, cfg: Config) -> int:
    from gateway.services import build

    if args.command == "serve":
        from gateway import server

        services = build(cfg)
        demo_info = None
        if args.demo:
            from gateway.demo import ensure_demo

            demo_info = ensure_demo(Administration(services.mailbox, actor="demo"), cfg)

        def ready(srv) -> None:
            dav = (f", WebDAV on {'http' if cfg.webdav.plain_http else 'https'}://{cfg.webdav.host}:"
                   f"{srv.https.port}/dav/" if srv.https else "")
            print(f"Institutional Pages is running: SFTP on {cfg.sftp.host}:{srv.sftp.port}{dav}"
                  f" (data in {cfg.data_path})", flush=True)
            if demo_info:
                print(demo_info.replace("{port}", str(srv.sftp.port))
                      .replace("{dav_port}", str(srv.https.port if srv.https else cfg.webdav.port)), flush=True)

        try:
            server.run(cfg, services, on_ready=ready)
        except OSError as exc:
            raise GatewayError(f"cannot start: {exc.strerror or exc}") from None
        return 0

    services = build(cfg)
    # a command reports the outcome of what it sent itself, in its one line
    logging.getLogger("instpages.notify").setLevel(logging.ERROR)
    try:
        admin = Administration(services.mailbox)
        return _admin_command(args, cfg, admin)
    finally:
        services.close()


def _admin_command(args, cfg: Config, admin: Administration) -> int:
    if args.command == "init":
        print(f"initialised {cfg.data_path}")
        return 0
    if args.command == "institution":
        if args.sub == "add":
            inst_id = admin.add_institution(args.id, args.name, args.status, args.content_types, args.mutable)
            if args.language or args.contacts is not None:
                admin.set_contacts(inst_id, args.contacts, args.language)
            print(f"added centre {inst_id} ({args.status})")
        elif args.sub in ("request", "activate", "suspend"):
            old, new, outbox_id = admin.transition(args.id, args.sub, args.reference)
            print(f"centre {args.id}: {old} -> {new}")
            if args.sub == "activate":
                print("activation notice queued for the centre's contacts" if outbox_id is not None else
                      "no activation notice: " + ("mail is not configured (smtp.host)"
                                                  if not (admin.mailbox.notifier and admin.mailbox.notifier.enabled)
                                                  else "the centre has no notification addresses"))
                if outbox_id is not None:
                    admin.mailbox.notifier.deliver_due()
        elif args.sub == "show":
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
            _print_table([[f"{h.at:%Y-%m-%d %H:%M}", f"{h.from_status} -> {h.to_status}", h.actor, h.reference]
                          for h in o["history"]], ["WHEN (UTC)", "CHANGE", "BY", "REFERENCE"])
        elif args.sub == "set-local-admin":
            admin.set_local_admin(args.id, args.account)
            print(f"{args.account} is a local administrator of centre {args.id}")
        elif args.sub == "unset-local-admin":
            admin.unset_local_admin(args.id, args.account)
            print(f"{args.account} is no longer a local administrator of centre {args.id}")
        elif args.sub == "set-security-consultant":
            admin.set_security_consultant(args.id, args.account)
            print(f"centre {args.id}: security consultant {args.account or '-'}")
        elif args.sub == "set-contacts":
            admin.set_contacts(args.id, args.contacts, args.language)
            print(f"centre {args.id}: contacts updated")
        elif args.sub == "set-networks":
            admin.set_institution_networks(args.id, args.networks)
            print(f"centre {args.id}: networks {args.networks or 'any'}")
        elif args.sub == "configure":
            admin.configure(args.id, content_types=args.content_types, mutable=args.mutable)
            print(f"centre {args.id} configured")
        elif args.sub == "set-status":
            old = admin.set_status(args.id, args.status, args.reference)
            print(f"centre {args.id}: {old} -> {args.status}")
        else:
            _print_table([[i.id, i.status, i.name] for i in admin.institutions()], ["ID", "STATUS", "NAME"])
        return 0
    if args.command == "account":
        if args.sub == "add":
            keys = []
            for f in args.ssh_key:
                try:
                    keys.append(Path(f).read_text(encoding="utf-8"))
                except OSError as exc:
                    raise GatewayError(f"cannot read SSH key file {f}: {exc.strerror}") from None
                except UnicodeDecodeError:
                    raise GatewayError(f"{f} is not an OpenSSH public key file") from None
            certs = []
            for f in args.client_cert:
                try:
                    certs.append(Path(f).read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError):
                    raise GatewayError(f"cannot read certificate file {f}") from None
            password = None
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\r\n")
                if not password:
                    raise GatewayError("no password on standard input")
            admin.add_account(args.name, args.role, args.institution, keys, password, args.display_name, certs,
                              allow_keys=args.allow_keys, ldap=args.ldap, nrn=args.nrn, networks=args.networks)
            print(f"added account {args.name} ({args.role})")
        elif args.sub == "set-networks":
            admin.set_account_networks(args.name, args.networks)
            print(f"account {args.name}: networks {args.networks or 'any'}")
        elif args.sub in ("disable", "enable"):
            admin.set_account_enabled(args.name, args.sub == "enable")
            print(f"account {args.name} {args.sub}d")
        else:
            _print_table([[a.name, a.role, a.institution_id or "-", "yes" if a.enabled else "no"]
                          for a in admin.accounts()], ["NAME", "ROLE", "CENTRE", "ENABLED"])
        return 0
    if args.command == "token":
        if args.sub == "issue":
            card = admin.issue_token_card(args.account)
            print(f"Token card for {args.account} -- give it to the person; it is not shown again.")
            for i in range(0, len(card), 4):
                print("   ".join(f"{n:>2}: {code}" for n, code in card[i:i + 4]))
        else:
            admin.revoke_token_card(args.account)
            print(f"token card of {args.account} revoked")
        return 0
    if args.command in ("device-password", "api-token"):
        return _secret_command(args, admin)
    if args.command == "grant":
        if args.sub == "add":
            admin.grant(args.account, args.institution, args.remove, args.write, args.until)
            extras = [w for w, on in (("remove", args.remove), ("write", args.write)) if on]
            print(f"granted {args.account} access to {args.institution}" + (f" (with {', '.join(extras)})"
                                                                              if extras else "")
                  + (f" until {args.until}" if args.until else ""))
        elif args.sub == "list":
            _print_table([[g.name, "read+remove" if g.can_remove else "read", g.granted_by or "-",
                           f"{g.created_at:%Y-%m-%d}", _last_day(g.expires_at)]
                          for g in admin.access(args.institution)], ["ACCOUNT", "ACCESS", "GRANTED BY", "SINCE",
                                                                     "UNTIL"])
        else:
            admin.revoke(args.account, args.institution)
            print(f"revoked {args.account}'s access to {args.institution}")
        return 0
    if args.command == "audit":
        if args.sub == "verify":
            n, broken = admin.audit_verify()
            if broken == -1:
                print(f"instpages: error: audit record broken: its newest events were removed (the chain head "
                      f"does not match event {n}, the last one present)", file=sys.stderr)
                return EXIT_ERROR
            if broken is not None:
                print(f"instpages: error: audit record broken at event {broken} (after {n} good events)",
                      file=sys.stderr)
                return EXIT_ERROR
            print(f"audit record intact: {n} events")
            return 0
        if args.limit <= 0:
            raise GatewayError("--limit must be positive")
        rows = admin.audit_list(args.institution, args.limit)
        _print_table([[str(r.id), r.ts.strftime("%Y-%m-%d %H:%M:%S"), r.actor, r.protocol, r.source, r.action,
                       r.outcome, r.path, "" if r.bytes is None else str(r.bytes), r.detail] for r in rows],
                     ["ID", "TIME (UTC)", "ACTOR", "VIA", "SOURCE", "ACTION", "OUTCOME", "PATH", "BYTES", "DETAIL"])
        return 0
    if args.command == "notify":
        notifier = admin.mailbox.notifier
        if args.sub == "test":
            outbox_id = admin.notify_test(args.id)
            notifier.deliver_due()
            with admin.repo.read() as c:
                row = [r for r in admin.repo.outbox(c, None, 1000) if r.id == outbox_id][0]
            if row.sent_at is None:
                raise GatewayError(f"test mail {outbox_id} queued but not sent yet: {row.last_error or 'pending'} "
                                   "(the server retries it)")
            print(f"test mail {outbox_id} sent to {row.recipients.replace(',', ', ')}")
        elif args.sub == "run":
            if not notifier.enabled:
                raise GatewayError("mail is not configured (smtp.host)")
            n = notifier.queue_digests()
            report = notifier.deliver_due(limit=1000)
            print(f"digests queued: {n}; mails sent: {report.sent}; failed (will be retried): {report.failed}")
        else:
            if args.limit <= 0:
                raise GatewayError("--limit must be positive")
            inst_id = admin.centre(args.institution).id if args.institution else None
            with admin.repo.read() as c:
                rows = admin.repo.outbox(c, inst_id, args.limit)
            _print_table([[str(r.id), r.kind, r.institution_id or "-", f"{r.created_at:%Y-%m-%d %H:%M}",
                           f"{r.sent_at:%Y-%m-%d %H:%M}" if r.sent_at else "pending", str(r.attempts),
                           r.last_error[:60]] for r in rows],
                         ["ID", "KIND", "CENTRE", "QUEUED (UTC)", "SENT (UTC)", "ATTEMPTS", "LAST ERROR"])
        return 0
    if args.command == "ban":
        return _ban_command(args, admin)
    if args.command == "document":
        doc_id = admin.restore(args.institution, args.path)
        print(f"restored document {doc_id} at {args.path}")
        return 0
    raise GatewayError(f"unknown command {args.command}")  # pragma: no cover
