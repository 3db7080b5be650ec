"""``token ...``, ``device-password ...``, ``api-token ...``: the credentials shown once -- civil-servant token
cards, device passwords for drive mounts (WebDAV only) and API tokens for scripts using the REST API."""
from __future__ import annotations

from gateway.admin.service import Administration
from gateway.commands.base import administration, command, print_table
from storage.errors import GatewayError


def add_token(sub, common) -> None:
    tok = sub.add_parser("token", parents=[common], help="civil-servant token cards").add_subparsers(
        dest="sub", required=True)
    a = command(tok, common, "issue", issue_token_card,
                help="issue a new card (printed once; the old one is revoked)")
    a.add_argument("account")
    command(tok, common, "revoke", revoke_token_card).add_argument("account")


def add_device_password(sub, common) -> None:
    _add_secret(sub, common, "device-password", "passwords for drive mounts (WebDAV only)",
                create_device_password, list_device_passwords, revoke_device_password)


def add_api_token(sub, common) -> None:
    _add_secret(sub, common, "api-token", "tokens for scripts using the REST API",
                create_api_token, list_api_tokens, revoke_api_token)


def _add_secret(sub, common, name: str, text: str, create, list_, revoke) -> None:
    """create / list / revoke of secrets shown once: device passwords and API tokens."""
    sp = sub.add_parser(name, parents=[common], help=text).add_subparsers(dest="sub", required=True)
    a = command(sp, common, "create", create, help="create one (shown once)")
    a.add_argument("account")
    a.add_argument("--label", default="")
    a.add_argument("--days", type=int)
    command(sp, common, "list", list_).add_argument("account")
    a = command(sp, common, "revoke", revoke)
    a.add_argument("account")
    a.add_argument("id", type=int)


@administration
def issue_token_card(args, admin: Administration) -> int:
    card = admin.issue_token_card(args.account)
    print(f"Token card for {args.account} -- give it to the person; it is not shown again.")
    for i in range(0, len(card), 4):
        print("   ".join(f"{n:>2}: {code}" for n, code in card[i:i + 4]))
    return 0


@administration
def revoke_token_card(args, admin: Administration) -> int:
    admin.revoke_token_card(args.account)
    print(f"token card of {args.account} revoked")
    return 0


@administration
def create_device_password(args, admin: Administration) -> int:
    if args.days is not None and not 1 <= args.days <= 3650:
        raise GatewayError("--days must be between 1 and 3650")
    secret_id, secret = admin.create_device_password(args.account, args.label, args.days)
    print(f"device password {secret_id} for {args.account} (WebDAV only; shown once):")
    print(secret)
    return 0


@administration
def list_device_passwords(args, admin: Administration) -> int:
    _print_secrets(admin.device_passwords(args.account))
    return 0


@administration
def revoke_device_password(args, admin: Administration) -> int:
    admin.revoke_device_password(args.account, args.id)
    print(f"device password {args.id} of {args.account} revoked")
    return 0


@administration
def create_api_token(args, admin: Administration) -> int:
    secret_id, secret = admin.create_api_token(args.account, args.label, args.days)
    print(f"API token {secret_id} for {args.account} (shown once; use as 'Authorization: Bearer ...'):")
    print(secret)
    return 0


@administration
def list_api_tokens(args, admin: Administration) -> int:
    _print_secrets(admin.api_tokens(args.account))
    return 0


@administration
def revoke_api_token(args, admin: Administration) -> int:
    admin.revoke_api_token(args.account, args.id)
    print(f"API token {args.id} of {args.account} revoked")
    return 0


def _print_secrets(rows) -> None:
    print_table([[str(d.id), d.label, f"{d.created_at:%Y-%m-%d}", f"{d.expires_at:%Y-%m-%d}",
                  "revoked" if d.revoked else "live", f"{d.last_used_at:%Y-%m-%d %H:%M}" if d.last_used_at else "-"]
                 for d in rows], ["ID", "LABEL", "CREATED", "EXPIRES", "STATE", "LAST USED"])
