"""``token ...``, ``device-password ...``, ``api-token ...``: the credentials shown once -- civil-servant token
cards, device passwords for drive mounts (WebDAV only) and API tokens for scripts using the REST API.

Device passwords and API tokens are two kinds of one thing (:class:`Secret`): created, listed and revoked by the
same handlers, each kind naming its words and its :class:`~gateway.admin.service.Administration` methods."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.admin.service import Administration
from gateway.commands.base import administration, command, group, lists, reports
from storage.errors import GatewayError


@dataclass(frozen=True)
class Secret:
    """A kind of secret shown once: its command, how it is called, and the service's methods for it."""
    command: str
    help: str
    noun: str
    #: what the creation line says after the account
    shown: str
    create: Callable
    listed: Callable
    revoke: Callable
    #: longest life ``--days`` may ask, checked here; None: the service checks it
    max_days: int | None = None


DEVICE_PASSWORD = Secret("device-password", "passwords for drive mounts (WebDAV only)", "device password",
                         "(WebDAV only; shown once):", Administration.create_device_password,
                         Administration.device_passwords, Administration.revoke_device_password, max_days=3650)
API_TOKEN = Secret("api-token", "tokens for scripts using the REST API", "API token",
                   "(shown once; use as 'Authorization: Bearer ...'):", Administration.create_api_token,
                   Administration.api_tokens, Administration.revoke_api_token)


def add_token(sub, common) -> None:
    tok = group(sub, common, "token", "civil-servant token cards")
    a = command(tok, common, "issue", issue_token_card,
                help="issue a new card (printed once; the old one is revoked)")
    a.add_argument("account")
    command(tok, common, "revoke", revoke_token_card).add_argument("account")


def add_device_password(sub, common) -> None:
    _add_secret(sub, common, DEVICE_PASSWORD)


def add_api_token(sub, common) -> None:
    _add_secret(sub, common, API_TOKEN)


def _add_secret(sub, common, kind: Secret) -> None:
    """create / list / revoke of a kind of secret shown once."""
    sp = group(sub, common, kind.command, kind.help)
    a = command(sp, common, "create", create_secret, help="create one (shown once)")
    a.add_argument("account")
    a.add_argument("--label", default="")
    a.add_argument("--days", type=int)
    command(sp, common, "list", list_secrets).add_argument("account")
    a = command(sp, common, "revoke", revoke_secret)
    a.add_argument("account")
    a.add_argument("id", type=int)
    for p in sp.choices.values():  # the handlers learn which kind they serve
        p.set_defaults(kind=kind)


@administration
def issue_token_card(args, admin: Administration) -> int:
    card = admin.issue_token_card(args.account)
    print(f"Token card for {args.account} -- give it to the person; it is not shown again.")
    for i in range(0, len(card), 4):
        print("   ".join(f"{n:>2}: {code}" for n, code in card[i:i + 4]))
    return 0


@reports
def revoke_token_card(args, admin: Administration) -> str:
    admin.revoke_token_card(args.account)
    return f"token card of {args.account} revoked"


@administration
def create_secret(args, admin: Administration) -> int:
    kind: Secret = args.kind
    if kind.max_days is not None and args.days is not None and not 1 <= args.days <= kind.max_days:
        raise GatewayError(f"--days must be between 1 and {kind.max_days}")
    secret_id, secret = kind.create(admin, args.account, args.label, args.days)
    print(f"{kind.noun} {secret_id} for {args.account} {kind.shown}")
    print(secret)
    return 0


@lists("ID", "LABEL", "CREATED", "EXPIRES", "STATE", "LAST USED")
def list_secrets(args, admin: Administration) -> list[list[str]]:
    return [[str(d.id), d.label, f"{d.created_at:%Y-%m-%d}", f"{d.expires_at:%Y-%m-%d}",
             "revoked" if d.revoked else "live", f"{d.last_used_at:%Y-%m-%d %H:%M}" if d.last_used_at else "-"]
            for d in args.kind.listed(admin, args.account)]


@reports
def revoke_secret(args, admin: Administration) -> str:
    args.kind.revoke(admin, args.account, args.id)
    return f"{args.kind.noun} {args.id} of {args.account} revoked"
