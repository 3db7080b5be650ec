"""A real OpenLDAP ``slapd`` for the tests, started and stopped by the test suite.

Use it from a test module with::

    from tests.ldapserver import slapd  # noqa: F401  (the session fixture)

The fixture starts one slapd per session on free 127.0.0.1 ports, plain LDAP (StartTLS-capable) and LDAPS, with
a test CA generated here (``server.ca_file``; ``server.untrusted_ca_file`` is a look-alike CA with another key).
As root, slapd runs as ``nobody`` from a temp dir chowned to it. The directory is seeded with:

- ``ou=people``: alice (nrn 85073003328), bob, carol (``employeeType=disabled``), and ``cn=Dupont\\, Dirk``
  (uid ``ddupont``, a comma in the cn and the RDN); passwords in :data:`PASSWORDS`;
- ``ou=groups``: ``cn=ocmw-0212345668-staff`` (alice), ``cn=ocmw-0207123407-remove`` (alice),
  ``cn=ocmw-0212345668-admin`` (ddupont), ``cn=unrelated`` (bob);
- ``ou=services``: ``cn=gateway``, the service account (read access to everything but passwords).

Anonymous clients may only bind; bound users and the service account may read. The handle changes entries during
a test (:meth:`SlapdServer.add_user`, :meth:`set_disabled`, :meth:`delete`, ...) and stops, starts, pauses
(SIGSTOP: a hung server) and resumes slapd. Tests restore what they change, or use users of their own; the
autouse-friendly :meth:`SlapdServer.ensure_running` brings a stopped or paused server back.

A missing slapd binary fails the fixture loudly (install it with ``scripts/install-test-deps.sh``); it never skips.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import free_port

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"

BASE_DN = "dc=example,dc=test"
PEOPLE = f"ou=people,{BASE_DN}"
GROUPS = f"ou=groups,{BASE_DN}"
SERVICES = f"ou=services,{BASE_DN}"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "admin-secret-for-tests"
SERVICE_DN = f"cn=gateway,{SERVICES}"
SERVICE_PASSWORD = "gateway-service-secret"

ALICE_NRN = "85073003328"
BOB_NRN = "90020212371"
PASSWORDS = {
    "alice": "alice-Correct-horse-1",
    "bob": "bob-Battery-staple-2",
    "carol": "carol-Disabled-3",
    "ddupont": "dirk-Comma-4",
}
DUPONT_DN = f"cn=Dupont\\, Dirk,{PEOPLE}"
STAFF_GROUP = f"cn=ocmw-0212345668-staff,{GROUPS}"
REMOVE_GROUP = f"cn=ocmw-0207123407-remove,{GROUPS}"
ADMIN_GROUP = f"cn=ocmw-0212345668-admin,{GROUPS}"
UNRELATED_GROUP = f"cn=unrelated,{GROUPS}"


def ssha(password: str) -> bytes:
    salt = os.urandom(8)
    return b"{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt)


# --------------------------------------------------------------------------------------------------- TLS material
def _make_ca(name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def write_tls_material(d: Path) -> tuple[Path, Path, Path, Path]:
    """A test CA, a server certificate for 127.0.0.1/localhost signed by it, and a look-alike CA (same name,
    another key). Returns (ca.pem, server cert, server key, untrusted-ca.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key, ca_cert = _make_ca("Institutional Pages Test LDAP CA")
    _, fake_ca_cert = _make_ca("Institutional Pages Test LDAP CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = (d / "ca.pem", d / "server.pem", d / "server.key", d / "untrusted-ca.pem")
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[3].write_bytes(fake_ca_cert.public_bytes(pem))
    os.chmod(paths[2], 0o600)
    return paths


# --------------------------------------------------------------------------------------------------- slapd
SLAPD_CONF = """\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
include {schema}/nis.schema
include {d}/nrn.schema
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath {modules}
moduleload back_mdb
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key
database mdb
maxsize 104857600
suffix "{base}"
rootdn "{admin_dn}"
rootpw {admin_pw}
directory {d}/db
index objectClass eq
index uid eq
index member eq
index serialNumber eq
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by dn.exact="{service_dn}" read
    by users read
    by * none
"""


# inetOrgPerson does not allow serialNumber (the national register number in the eID certificate); real
# directories add an auxiliary class for it, so does this one (OID from OpenLDAP's experimental arc).
NRN_SCHEMA = """\
objectclass ( 1.3.6.1.4.1.4203.666.11.990.1 NAME 'nrnHolder'
    DESC 'test schema: a person with a national register number'
    SUP top AUXILIARY MAY serialNumber )
"""


class SlapdServer:
    """One slapd child process and the helpers the tests drive it with."""

    base_dn = BASE_DN
    people = PEOPLE
    groups = GROUPS
    service_dn = SERVICE_DN
    service_password = SERVICE_PASSWORD
    passwords = PASSWORDS

    def __init__(self, workdir: Path):
        if not os.path.exists(SLAPD):
            raise RuntimeError(
                f"slapd not found ({SLAPD}): install the test dependencies with scripts/install-test-deps.sh "
                "(Debian packages slapd ldap-utils)"
            )
        import ldap  # noqa: F401  -- fail loudly here if python-ldap is missing

        self.dir = workdir
        self.port = free_port()
        self.ldaps_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.paused = False
        self.ca_file, self._cert, self._key, self.untrusted_ca_file = (str(p) for p in write_tls_material(workdir))
        (workdir / "db").mkdir()
        (workdir / "nrn.schema").write_text(NRN_SCHEMA)
        (workdir / "slapd.conf").write_text(
            SLAPD_CONF.format(
                schema=SCHEMA_DIR, modules=MODULE_DIR, d=workdir, base=BASE_DN, admin_dn=ADMIN_DN,
                admin_pw=ADMIN_PASSWORD, service_dn=SERVICE_DN,
            )
        )
        self._run_as: dict = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("nobody")
            group = grp.getgrnam("nogroup")
            for path in [workdir, *workdir.rglob("*")]:
                os.chown(path, user.pw_uid, group.gr_gid)
            self._run_as = dict(user=user.pw_uid, group=group.gr_gid, extra_groups=[])

    # -- addresses
    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    # -- process control
    def start(self, timeout: float = 15.0) -> None:
        assert self.proc is None, "slapd already running"
        cmd = [
            SLAPD, "-f", str(self.dir / "slapd.conf"),
            "-h", f"{self.uri}/ {self.ldaps_uri}/", "-d", "0",
        ]
        with open(self.dir / "slapd.log", "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **self._run_as
            )
        deadline = time.monotonic() + timeout
        pending = [self.port, self.ldaps_port]
        while pending:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"slapd exited with {rc} during start:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", pending[0]), timeout=1).close()
                pending.pop(0)
                continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"slapd did not listen on 127.0.0.1:{pending[0]}:\n{self.log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, nothing ever answers (a hung server)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.proc = None
        if self.proc is None:
            self.start()
        elif self.paused:
            self.resume()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join((self.dir / "slapd.log").read_text(errors="replace").splitlines()[-n:])
        except OSError as exc:
            return f"(no log: {exc})"

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- directory content
    @contextmanager
    def admin(self):
        import ldap

        conn = ldap.initialize(self.uri)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5.0)
        conn.timeout = 10
        conn.simple_bind_s(ADMIN_DN, ADMIN_PASSWORD)
        try:
            yield conn
        finally:
            conn.unbind_s()

    def add(self, dn: str, attrs: dict[str, list[str | bytes]]) -> str:
        import ldap.modlist

        entry = {k: [v if isinstance(v, bytes) else v.encode() for v in vs] for k, vs in attrs.items()}
        with self.admin() as conn:
            conn.add_s(dn, ldap.modlist.addModlist(entry))
        return dn

    def user_dn(self, uid: str) -> str:
        import ldap.dn

        return f"uid={ldap.dn.escape_dn_chars(uid)},{PEOPLE}"

    def _dn(self, uid_or_dn: str) -> str:
        """A full DN (ends with the base DN) is taken as is; anything else is a uid under ou=people."""
        return uid_or_dn if uid_or_dn.lower().endswith("," + BASE_DN) else self.user_dn(uid_or_dn)

    def add_user(
        self, uid: str, password: str, *, cn: str | None = None, mail: str | None = None, nrn: str | None = None,
        disabled: bool = False, dn: str | None = None,
    ) -> str:
        attrs: dict[str, list] = {
            "objectClass": ["inetOrgPerson"],
            "uid": [uid],
            "cn": [cn or uid.title()],
            "sn": [(cn or uid).split()[-1]],
            "mail": [mail or re.sub(r"[^a-z0-9.-]", "_", uid.lower()) + "@example.test"],  # IA5: ASCII only
            "userPassword": [ssha(password)],
        }
        if nrn:
            attrs["objectClass"].append("nrnHolder")
            attrs["serialNumber"] = [nrn]
        if disabled:
            attrs["employeeType"] = ["disabled"]
        return self.add(dn or self.user_dn(uid), attrs)

    def set_disabled(self, uid_or_dn: str, disabled: bool = True) -> None:
        import ldap

        dn = self._dn(uid_or_dn)
        with self.admin() as conn:
            if disabled:
                conn.modify_s(dn, [(ldap.MOD_REPLACE, "employeeType", [b"disabled"])])
            else:
                try:
                    conn.modify_s(dn, [(ldap.MOD_DELETE, "employeeType", None)])
                except ldap.NO_SUCH_ATTRIBUTE:
                    pass

    def set_password(self, uid_or_dn: str, password: str) -> None:
        import ldap

        dn = self._dn(uid_or_dn)
        with self.admin() as conn:
            conn.modify_s(dn, [(ldap.MOD_REPLACE, "userPassword", [ssha(password)])])

    def delete(self, uid_or_dn: str) -> None:
        """Deletes an entry and removes it from every group (as a directory with referential integrity would)."""
        import ldap
        import ldap.filter

        dn = self._dn(uid_or_dn)
        with self.admin() as conn:
            for gdn, _ in conn.search_s(GROUPS, ldap.SCOPE_SUBTREE, ldap.filter.filter_format("(member=%s)", [dn]),
                                        ["1.1"]):
                self._remove_member(conn, gdn, dn)
            conn.delete_s(dn)

    def add_member(self, group_dn: str, member_dn: str) -> None:
        import ldap

        with self.admin() as conn:
            conn.modify_s(group_dn, [(ldap.MOD_ADD, "member", [member_dn.encode()])])

    def remove_member(self, group_dn: str, member_dn: str) -> None:
        with self.admin() as conn:
            self._remove_member(conn, group_dn, member_dn)

    @staticmethod
    def _remove_member(conn, group_dn: str, member_dn: str) -> None:
        import ldap

        try:
            conn.modify_s(group_dn, [(ldap.MOD_DELETE, "member", [member_dn.encode()])])
        except ldap.OBJECT_CLASS_VIOLATION:  # the last member: groupOfNames needs one, drop the group
            conn.delete_s(group_dn)

    def add_group(self, cn: str, members: list[str]) -> str:
        import ldap.dn

        return self.add(f"cn={ldap.dn.escape_dn_chars(cn)},{GROUPS}",
                        {"objectClass": ["groupOfNames"], "cn": [cn], "member": members})

    def seed(self) -> None:
        ou = lambda name: {"objectClass": ["organizationalUnit"], "ou": [name]}  # noqa: E731
        self.add(BASE_DN, {"objectClass": ["dcObject", "organization"], "dc": ["example"], "o": ["Example"]})
        for name in ("people", "groups", "services"):
            self.add(f"ou={name},{BASE_DN}", ou(name))
        self.add(SERVICE_DN, {
            "objectClass": ["organizationalRole", "simpleSecurityObject"], "cn": ["gateway"],
            "userPassword": [ssha(SERVICE_PASSWORD)],
        })
        alice = self.add_user("alice", PASSWORDS["alice"], cn="Alice Peeters", nrn=ALICE_NRN)
        bob = self.add_user("bob", PASSWORDS["bob"], cn="Bob Janssens", nrn=BOB_NRN)
        self.add_user("carol", PASSWORDS["carol"], cn="Carol Maes", disabled=True)
        dupont = self.add_user("ddupont", PASSWORDS["ddupont"], cn="Dupont, Dirk", dn=DUPONT_DN)
        self.add_group("ocmw-0212345668-staff", [alice])
        self.add_group("ocmw-0207123407-remove", [alice])
        self.add_group("ocmw-0212345668-admin", [dupont])
        self.add_group("unrelated", [bob])


@contextmanager
def running_slapd():
    d = Path(tempfile.mkdtemp(prefix="instpages-slapd-"))
    server = None
    try:
        server = SlapdServer(d)
        server.start()
        server.seed()
        yield server
    finally:
        if server is not None:
            server.close()
        else:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def slapd():
    with running_slapd() as server:
        yield server


def gateway_env(server: SlapdServer, **extra: str) -> dict[str, str]:
    """Environment for a test gateway that logs people in against ``server`` (StartTLS, the service account,
    groups naming centres), with two factors required."""
    env = {
        "INSTPAGES_AUTH_SECOND_FACTOR": "required",
        "INSTPAGES_LDAP_ENABLED": "true", "INSTPAGES_LDAP_URIS": server.uri, "INSTPAGES_LDAP_START_TLS": "true",
        "INSTPAGES_LDAP_CA_FILE": str(server.ca_file), "INSTPAGES_LDAP_BIND_DN": SERVICE_DN,
        "INSTPAGES_LDAP_BIND_PASSWORD": SERVICE_PASSWORD, "INSTPAGES_LDAP_USER_BASE": f"ou=people,{server.base_dn}",
        "INSTPAGES_LDAP_GROUP_BASE": f"ou=groups,{server.base_dn}",
    }
    env.update(extra)
    return env
