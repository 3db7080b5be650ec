"""The implementations in auth/ offer what the protocols of auth/interfaces.py declare: every method, with the
same parameters, so that the services factory can pass them wherever a protocol is asked for."""
from __future__ import annotations

import inspect

import pytest

from auth import interfaces
from auth.authenticator import GatewayAuthenticator
from auth.ldap.directory import Directory
from auth.secondfactor import ApiTokens, DevicePasswords, TokenCards

PAIRS = [(interfaces.TokenCardService, TokenCards), (interfaces.DevicePasswordService, DevicePasswords),
         (interfaces.ApiTokenService, ApiTokens), (interfaces.DirectoryService, Directory),
         (interfaces.AccountProvisioner, GatewayAuthenticator), (interfaces.Authenticator, GatewayAuthenticator)]


def _methods(protocol: type) -> dict[str, object]:
    return {name: member for cls in protocol.__mro__ if cls.__module__ == interfaces.__name__
            for name, member in vars(cls).items() if inspect.isfunction(member) and not name.startswith("_")}


@pytest.mark.parametrize(("protocol", "implementation"), PAIRS, ids=lambda x: x.__name__)
def test_the_implementation_has_every_method_of_its_protocol(protocol, implementation):
    methods = _methods(protocol)
    assert methods
    for name, declared in methods.items():
        offered = getattr(implementation, name, None)
        assert callable(offered), f"{implementation.__name__} has no {name}"
        assert list(inspect.signature(offered).parameters) == list(inspect.signature(declared).parameters), name


def test_the_authenticator_holds_the_services_its_protocol_declares():
    declared = set(inspect.get_annotations(interfaces.Authenticator))
    assert declared == {"tokens", "devices", "api_tokens", "directory"}
    authenticator = GatewayAuthenticator(None)
    assert all(hasattr(authenticator, name) for name in declared)
