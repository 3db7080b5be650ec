"""``instpages``: the operator's command line. Operators script against these names; keep them stable.

Every command takes ``--data-dir`` and ``--config``; errors print one clear line and exit non-zero.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from gateway.admin import Administration
from gateway.config import Config, load_config
from gateway.errors import GatewayError

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
    a = inst.add_parser("configure", parents=[common], help="per-centre settings")
    a.add_argument("id")
    a.add_argument("--content-types")
    a.add_argument("--mutable", dest="mutable", action="store_true", default=None)
    a.add_argument("--immutable", dest="mutable", action="store_false")
    a = inst.add_parser("set-networks", parents=[common], help="source ranges of a centre (empty: any)")
    a.add_argument("id")
    a.add_argument("networks")
    a = inst.add_parser("set-status", parents=[common])
    a.add_argument("id")
    a.add_argument("status", choices=["paper", "requested", "active", "suspended"])
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

    dp = sub.add_parser("device-password", parents=[common], help="passwords for drive mounts (WebDAV only)"
                        ).add_subparsers(dest="sub", required=True)
    a = dp.add_parser("create", parents=[common], help="create one (shown once)")
    a.add_argument("account")
    a.add_argument("--label", default="")
    a.add_argument("--days", type=int)
    a = dp.add_parser("list", parents=[common])
    a.add_argument("account")
    a = dp.add_parser("revoke", parents=[common])
    a.add_argument("account")
    a.add_argument("id", type=int)

    gr = sub.add_parser("grant", parents=[common], help="access of staff to centres").add_subparsers(dest="sub",
                                                                                                 required=True)
    a = gr.add_parser("add", parents=[common])
    a.add_argument("account")
    a.add_argument("institution")
    a.add_argument("--remove", action="store_true", help="may also remove (archive) documents")
    a.add_argument("--write", action="store_true", help="may also upload and create folders (full rights)")
    a = gr.add_parser("revoke", parents=[common])
    a.add_argument("account")
    a.add_argument("institution")

    au = sub.add_parser("audit", parents=[common], help="the record").add_subparsers(dest="sub", required=True)
    a = au.add_parser("list", parents=[common])
    a.add_argument("--institution")
    a.add_argument("--limit", type=int, default=50)
    au.add_parser("verify", parents=[common], help="check the hash chain of the record")

    doc = sub.add_parser("document", parents=[common], help="documents").add_subparsers(dest="sub", required=True)
    a = doc.add_parser("restore", parents=[common])
    a.add_argument("institution")
    a.add_argument("path")
    return ap


def _config(args) -> Config:
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    return load_config(args.config or os.environ.get("INSTPAGES_CONFIG"), overrides=overrides)


def _print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    for r in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = _config(args)
        logging.basicConfig(level=getattr(logging, cfg.logging.level.upper()),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
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
            print(f"added centre {inst_id} ({args.status})")
        elif args.sub == "set-networks":
            admin.set_institution_networks(args.id, args.networks)
            print(f"centre {args.id}: networks {args.networks or 'any'}")
        elif args.sub == "configure":
            admin.configure(args.id, content_types=args.content_types, mutable=args.mutable)
            print(f"centre {args.id} configured")
        elif args.sub == "set-status":
            old = admin.set_status(args.id, args.status)
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
    if args.command == "device-password":
        if args.sub == "create":
            if args.days is not None and not 1 <= args.days <= 3650:
                raise GatewayError("--days must be between 1 and 3650")
            device_id, secret = admin.create_device_password(args.account, args.label, args.days)
            print(f"device password {device_id} for {args.account} (WebDAV only; shown once):")
            print(secret)
        elif args.sub == "list":
            _print_table([[str(d.id), d.label, d.created_at.strftime("%Y-%m-%d"), d.expires_at.strftime("%Y-%m-%d"),
                           "revoked" if d.revoked else "live",
                           d.last_used_at.strftime("%Y-%m-%d %H:%M") if d.last_used_at else "-"]
                          for d in admin.device_passwords(args.account)],
                         ["ID", "LABEL", "CREATED", "EXPIRES", "STATE", "LAST USED"])
        else:
            admin.revoke_device_password(args.account, args.id)
            print(f"device password {args.id} of {args.account} revoked")
        return 0
    if args.command == "grant":
        if args.sub == "add":
            admin.grant(args.account, args.institution, args.remove, args.write)
            extras = [w for w, on in (("remove", args.remove), ("write", args.write)) if on]
            print(f"granted {args.account} access to {args.institution}" + (f" (with {', '.join(extras)})"
                                                                              if extras else ""))
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
    if args.command == "document":
        doc_id = admin.restore(args.institution, args.path)
        print(f"restored document {doc_id} at {args.path}")
        return 0
    raise GatewayError(f"unknown command {args.command}")  # pragma: no cover
