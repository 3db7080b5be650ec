"""``account ...``: accounts -- added with their keys, certificates or password, listed, limited to networks,
disabled and enabled."""
from __future__ import annotations

import sys
from pathlib import Path

from gateway.admin.service import Administration
from gateway.commands.base import command, group, lists, reports, set_networks
from storage.errors import GatewayError


def add_account(sub, common) -> None:
    acc = group(sub, common, "account", "accounts")
    a = command(acc, common, "add", add)
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
    command(acc, common, "list", list_accounts)
    a = command(acc, common, "set-networks", set_networks("account", "name", "set_account_networks"),
                help="source ranges of an account (empty: any)")
    a.add_argument("name")
    a.add_argument("networks")
    command(acc, common, "disable", set_enabled).add_argument("name")
    command(acc, common, "enable", set_enabled).add_argument("name")


@reports
def add(args, admin: Administration) -> str:
    keys = [_ssh_key(f) for f in args.ssh_key]
    certs = [_certificate(f) for f in args.client_cert]
    password = _password() if args.password_stdin else None
    admin.add_account(args.name, args.role, args.institution, keys, password, args.display_name, certs,
                      allow_keys=args.allow_keys, ldap=args.ldap, nrn=args.nrn, networks=args.networks)
    return f"added account {args.name} ({args.role})"


def _ssh_key(f: str) -> str:
    try:
        return Path(f).read_text(encoding="utf-8")
    except OSError as exc:
        raise GatewayError(f"cannot read SSH key file {f}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise GatewayError(f"{f} is not an OpenSSH public key file") from None


def _certificate(f: str) -> str:
    try:
        return Path(f).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise GatewayError(f"cannot read certificate file {f}") from None


def _password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise GatewayError("no password on standard input")
    return password


@lists("NAME", "ROLE", "CENTRE", "ENABLED")
def list_accounts(args, admin: Administration) -> list[list[str]]:
    return [[a.name, a.role, a.institution_id or "-", "yes" if a.enabled else "no"] for a in admin.accounts()]


@reports
def set_enabled(args, admin: Administration) -> str:
    """enable, disable."""
    admin.set_account_enabled(args.name, args.sub == "enable")
    return f"account {args.name} {args.sub}d"
