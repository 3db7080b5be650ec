"""Accounts: adding them (people and machines, with their SSH keys and pinned client certificates), their source
networks, enabling and disabling them, and the bans that failed logins put on account names and addresses.

All of it is the operator's (the CLI on the gateway host). A change forgets the remembered logins of this process
at once; other processes re-check within ``Mailbox.PRINCIPAL_TTL``.
"""
from __future__ import annotations

import asyncssh
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from auth.authenticator import hash_password
from auth.principal import Role
from gateway.admin.base import AdminBase
from storage.errors import AdminError, AdminNotFound, Conflict


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AdminError(f"unknown role {role!r} (one of {', '.join(x.value for x in Role)})") from None


def _check_person_fields(r: Role, password: str | None, allow_keys: bool, ldap: bool, nrn: str) -> None:
    """What a role's account may be given: passwords, keys, a directory source, a national register number."""
    if r.is_machine and password:
        raise AdminError("machine accounts log in with SSH keys or certificates, not passwords")
    if password is not None and len(password) < 12:
        raise AdminError("passwords must be at least 12 characters")
    if r.is_machine and (allow_keys or ldap or nrn):
        raise AdminError("--allow-keys, --ldap and --nrn are for people's accounts")
    if ldap and password:
        raise AdminError("a directory account's password is the directory's")
    if nrn and not (len(nrn) == 11 and nrn.isdigit()):
        raise AdminError("a national register number has 11 digits")


def _ssh_keys(texts) -> list:
    parsed = []
    for text in texts:
        try:
            key = asyncssh.import_public_key(text)
        except (asyncssh.KeyImportError, ValueError):
            raise AdminError("not an OpenSSH public key") from None
        parsed.append(key)
    return parsed


def _client_certificates(pems, r: Role) -> list:
    certs = []
    for pem in pems:
        try:
            cert = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
        except ValueError:
            raise AdminError("not a PEM X.509 certificate") from None
        if not r.is_machine:
            raise AdminError("pinned client certificates are for machine accounts (people use their eID)")
        try:
            ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        if ca:
            # a pinned certificate becomes a trust anchor of the HTTPS port: a CA could issue any identity
            raise AdminError("a CA certificate cannot be pinned to an account")
        certs.append(cert)
    return certs


class AccountAdmin(AdminBase):
    """The operator's operations on accounts, and the bans."""

    def add_account(self, name: str, role: str, institution: str | None = None, ssh_keys: list[str] = (),
                    password: str | None = None, display_name: str = "", client_certs: list[str] = (), *,
                    allow_keys: bool = False, ldap: bool = False, nrn: str = "", networks: str = "") -> int:
        self._operator("adding accounts")
        if not name or len(name) > 64 or not all(ch.isalnum() or ch in "-_.@" for ch in name):
            raise AdminError("account names are 1-64 letters, digits, '-', '_', '.', '@'")
        r = _role(role)
        inst_id = self._institution_id(institution) if institution else None
        if r in (Role.ARCHIVER, Role.LOCAL_ADMIN) and inst_id is None:
            raise AdminError(f"a {r.value} account belongs to one centre: give --institution")
        if r in (Role.UPLOADER, Role.SECURITY_CELL) and inst_id is not None:
            raise AdminError(f"a {r.value} account does not belong to a centre")
        _check_person_fields(r, password, allow_keys, ldap, nrn)
        networks = self._networks(networks)
        parsed = _ssh_keys(ssh_keys)
        certs = _client_certificates(client_certs, r)
        with self.repo.write() as c:
            try:
                account_id = self.repo.add_account(c, name, r.value, inst_id,
                                                   hash_password(password) if password else None, display_name,
                                                   allow_keys=allow_keys, source="ldap" if ldap else "local",
                                                   nrn=nrn, networks=networks)
                for key in parsed:
                    self.repo.add_ssh_key(c, account_id, key.get_fingerprint("sha256"),
                                          key.export_public_key().decode().strip(), key.get_comment() or "")
                for cert in certs:
                    self.repo.add_client_certificate(
                        c, account_id, cert.fingerprint(hashes.SHA256()).hex(),
                        cert.public_bytes(serialization.Encoding.PEM).decode(), cert.subject.rfc4514_string()[:500])
            except Conflict as exc:
                raise AdminError(str(exc)) from None
            self._audit(c, "account-add", inst_id,
                        detail=f"account={name} role={r.value} keys={len(parsed)} certificates={len(certs)}")
        return account_id

    def set_account_networks(self, name: str, networks: str) -> None:
        self._operator("this")
        nets = self._networks(networks)
        with self.repo.write() as c:
            acc = self._account(c, name)
            self.repo.set_account(c, acc.id, networks=nets)
            self._audit(c, "account-networks", acc.institution_id, detail=f"account={name} networks={nets or 'any'}")
        # remembered logins of this process re-check at once; other processes within Mailbox.PRINCIPAL_TTL
        self.mailbox.forget_logins(acc.id)

    def set_account_enabled(self, name: str, enabled: bool) -> None:
        self._operator("this")
        with self.repo.write() as c:
            acc = self._account(c, name)
            self.repo.set_account(c, acc.id, enabled=enabled)
            self._audit(c, "account-enable" if enabled else "account-disable", acc.institution_id,
                        detail=f"account={name}")
        self.mailbox.forget_logins(acc.id)

    def accounts(self) -> list:
        with self.repo.read() as c:
            return self.repo.accounts(c)

    # -- failed logins and bans ------------------------------------------------------------------------------
    def bans(self, counting: bool = False) -> list:
        """Banned account names and source addresses (``counting``: also those with failures in the window);
        looking is on the record too."""
        self._operator("the list of bans")
        rows = self.mailbox.throttle.bans(counting=counting)
        with self.repo.write() as c:
            self._audit(c, "ban-list", detail=f"{sum(1 for b in rows if b.banned_until)} banned, "
                                              f"{len(rows)} listed")
        return rows

    def lift_ban(self, target: str):
        """Lift the ban (and forget the count) of an account name or a source address."""
        self._operator("lifting a ban")
        target = target.strip()
        if not target or len(target) > 100 or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
            raise AdminError("give an account name or an IP address")
        lifted = self.mailbox.throttle.lift(target)
        if lifted is None:
            raise AdminNotFound(f"no ban or failure count for {target}")
        left = lifted.banned_until - self.mailbox.throttle.clock()
        state = f"ban lifted ({left:.0f} s left)" if lifted.banned_until else "not banned"
        with self.repo.write() as c:
            self._audit(c, "ban-lift", detail=f"{lifted.kind} {lifted.subject}: {state}, count {lifted.count} "
                                              "forgotten")
        return lifted
