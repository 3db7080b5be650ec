import pytest

from auth.factors import method_allowed
from auth.principal import Role

PEOPLE = [Role.STAFF, Role.LOCAL_ADMIN, Role.SECURITY_CELL]
MACHINES = [Role.UPLOADER, Role.ARCHIVER]


@pytest.mark.parametrize("role", PEOPLE)
def test_people_need_two_factors(role):
    assert method_allowed(role, "password+token", "sftp")
    assert not method_allowed(role, "password", "sftp")
    assert not method_allowed(role, "password", "webdav")
    assert method_allowed(role, "password+eid", "webdav")
    assert method_allowed(role, "device-password", "webdav")
    assert not method_allowed(role, "device-password", "sftp")  # WebDAV only
    assert not method_allowed(role, "device-password", "web")
    assert not method_allowed(role, "publickey", "sftp")
    assert method_allowed(role, "publickey", "sftp", allow_keys=True)
    assert not method_allowed(role, "client-certificate", "webdav")


@pytest.mark.parametrize("role", MACHINES)
def test_machines_use_keys_and_certificates_only(role):
    for method in ("publickey", "certificate", "client-certificate"):
        assert method_allowed(role, method, "sftp")
    for method in ("password", "password+token", "password+eid", "device-password"):
        assert not method_allowed(role, method, "sftp")
        assert not method_allowed(role, method, "webdav", second_factor_required=False)


def test_only_the_uploader_calls_the_rest_api_with_a_token():
    """POD MI's uploader reads the receipts of what it sent with an API token the security cell issued; nowhere
    else, and no archive system."""
    assert method_allowed(Role.UPLOADER, "api-token", "api")
    for protocol in ("sftp", "webdav", "web"):
        assert not method_allowed(Role.UPLOADER, "api-token", protocol)
    assert not method_allowed(Role.ARCHIVER, "api-token", "api")
    for method in ("password", "password+token", "password+eid"):
        assert not method_allowed(Role.UPLOADER, method, "api")


def test_second_factor_off_is_for_people_only():
    assert method_allowed(Role.STAFF, "password", "webdav", second_factor_required=False)
    assert not method_allowed(Role.UPLOADER, "password", "webdav", second_factor_required=False)
