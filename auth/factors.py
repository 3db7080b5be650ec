"""Which proofs each kind of account needs, per protocol: the policy, in one pure function.

People (staff, local administrators, the security cell) need a first and a second factor on every protocol:
password + token code over SFTP (or a bare SSH key, where an administrator enabled it for that account);
eID certificate + password, or a device password, over WebDAV; eID + password or password + token code on the
web pages. Machine accounts (uploaders, archive systems) need a key or certificate, never a password; POD MI's
uploader may also call the REST API with an API token the security cell (or the operator) issued it, to read the
receipts of what it sent (it cannot log in strongly to make one itself).
"""
from __future__ import annotations

from auth.principal import Role

MACHINE_METHODS = frozenset({"publickey", "certificate", "client-certificate"})
#: besides keys and certificates, per machine role and protocol
MACHINE_EXTRA_METHODS = {(Role.UPLOADER, "api"): frozenset({"api-token"})}
PERSON_METHODS = {
    "sftp": frozenset({"password+token"}),
    "webdav": frozenset({"password+eid", "device-password"}),
    "web": frozenset({"password+eid", "password+token"}),
    # the REST API: the console's strong login, or a token created after one (for scripts)
    "api": frozenset({"password+eid", "password+token", "api-token"}),
}


def method_allowed(role: Role, method: str, protocol: str, *, second_factor_required: bool = True,
                   allow_keys: bool = False) -> bool:
    if role.is_machine:
        return method in MACHINE_METHODS or method in MACHINE_EXTRA_METHODS.get((role, protocol), frozenset())
    allowed = set(PERSON_METHODS.get(protocol, frozenset()))
    if protocol == "sftp" and allow_keys:
        allowed.add("publickey")
    if not second_factor_required:
        allowed.add("password")
    return method in allowed
