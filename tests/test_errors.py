"""The one error tree (storage/errors.py): every front-end answers every error of it definitely, and the bottom
layers (auth/, storage/) never import the top one (gateway/)."""
from __future__ import annotations

import ast
from pathlib import Path

import asyncssh
import pytest

from gateway.dav import errors as webdav
from gateway.sftp import errors as sftp
from gateway.web import accountpage, console
from gateway.web.api import app as api
from storage import errors
from storage.errors import GatewayError, lookup

ROOT = Path(__file__).resolve().parent.parent
#: errors that are the server's fault, not the request's: the only ones an HTTP front-end may answer with a 500
SERVER_FAULTS = {errors.IntegrityFailure, errors.ConfigError}


def _tree(cls: type[GatewayError]) -> list[type[GatewayError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_tree(sub)]
    return found


TREE = sorted(set(_tree(GatewayError)), key=lambda c: c.__name__)


def _instance(cls: type[GatewayError]) -> GatewayError:
    """An instance without the constructor's arguments (they differ per class); the lookup needs only its type."""
    exc = cls.__new__(cls)
    exc.message = f"{cls.__name__} message"
    return exc


def _status(answer) -> int:
    return answer if isinstance(answer, int) else int(answer[0].split()[0])


def test_the_tree_holds_every_error_of_the_domain():
    names = {c.__name__ for c in TREE}
    assert {"NotFound", "AuthenticationFailed", "Throttled", "Conflict", "AdminError", "AdminNotFound",
            "CentreNotFound", "AdminForbidden", "AdminConflict", "IllegalTransition", "MalformedRequest",
            "MalformedCredentials", "ServiceUnavailable", "ConfigError"} <= names
    # one class per name: no second AuthenticationFailed or Conflict anywhere in the tree
    assert len(names) == len(TREE)
    # every class lives in the one module, and its drawing in the docstring names it
    for cls in TREE:
        assert cls.__module__ == "storage.errors", cls
        assert f" {cls.__name__} " in errors.__doc__ or f" {cls.__name__}\n" in errors.__doc__, cls


def test_the_old_homes_hand_out_the_same_classes():
    from auth.authenticator import AuthenticationFailed
    from auth.throttle import Throttled
    from gateway.core.lifecycle import IllegalTransition, next_status
    from storage.repository import Conflict
    assert AuthenticationFailed is errors.AuthenticationFailed
    assert Throttled is errors.Throttled and errors.Banned is errors.Throttled
    assert Conflict is errors.Conflict
    assert IllegalTransition is errors.IllegalTransition
    with pytest.raises(errors.AdminConflict):
        next_status("paper", "suspend")
    with pytest.raises(ValueError):  # still a ValueError for callers that catch that
        next_status("paper", "suspend")


def test_authentication_failed_tells_the_client_nothing_but_keeps_the_reason():
    exc = errors.AuthenticationFailed("wrong password", unknown_name=True)
    assert exc.message == str(exc) == "authentication failed"
    assert (exc.reason, exc.unknown_name, exc.throttled, exc.delay, exc.retry_after, exc.account) == (
        "wrong password", True, False, 0.0, 0.0, "")
    creds = errors.MalformedCredentials("control character in the name")
    assert creds.message == "authentication failed" and creds.reason == "control character in the name"
    throttled = errors.Throttled("account:ALICE", 12.5, banned=True)
    assert (str(throttled), throttled.key, throttled.until, throttled.banned) == ("account:ALICE", "account:ALICE",
                                                                                 12.5, True)
    assert "ALICE" not in throttled.message


def test_lookup_follows_the_mro_nearest_class_first():
    table = {errors.AdminError: "admin", errors.AdminConflict: "conflict", Exception: "anything"}
    assert lookup(table, errors.IllegalTransition("no")) == "conflict"
    assert lookup(table, errors.CentreNotFound()) == "admin"
    assert lookup(table, errors.NotFound()) == "anything"
    assert lookup({errors.NotFound: 1}, errors.TooLarge()) is None


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_sftp_answers_every_error_with_its_own_status(cls):
    exc = _instance(cls)
    answer = lookup(sftp.ERRORS, exc)
    assert answer is not None, f"{cls.__name__} has no SFTP status"
    translated = sftp.to_sftp_error(exc)
    assert type(translated) is answer and issubclass(answer, asyncssh.SFTPError)
    assert translated.reason == exc.message


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_webdav_answers_every_error_definitely(cls):
    exc = _instance(cls)
    assert lookup(webdav.ERRORS, exc) is not None, f"{cls.__name__} has no WebDAV status"
    status = webdav.to_dav_error(exc).value
    assert status != 500 or cls in SERVER_FAULTS, f"{cls.__name__} answered 500 over WebDAV"


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
@pytest.mark.parametrize("front_end", [api, console, accountpage], ids=lambda m: m.__name__.split(".")[-1])
def test_web_front_ends_answer_every_error_definitely(front_end, cls):
    answer = lookup(front_end.ERRORS, _instance(cls))
    assert answer is not None, f"{cls.__name__} has no answer in {front_end.__name__}"
    status = _status(answer)
    assert 400 <= status < 600
    assert status != 500 or cls in SERVER_FAULTS, f"{cls.__name__} answered 500 by {front_end.__name__}"


@pytest.mark.parametrize("front_end", [sftp, webdav, api, console, accountpage], ids=lambda m: m.__name__)
def test_every_table_names_only_errors_of_the_tree(front_end):
    assert set(front_end.ERRORS) <= set(TREE)


def _project_imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return {m for m in modules if m.split(".")[0] in ("gateway", "auth", "storage", "tests")}


@pytest.mark.parametrize("package, forbidden", [("auth", ("gateway",)), ("storage", ("gateway", "auth"))])
def test_bottom_layers_never_import_upwards(package, forbidden):
    sources = sorted((ROOT / package).rglob("*.py"))
    assert len(sources) > 3
    upward = {f"{path.relative_to(ROOT)}: {module}" for path in sources for module in _project_imports(path)
              if module.split(".")[0] in forbidden}
    assert not upward


def test_the_error_tree_imports_nothing_of_the_project():
    assert _project_imports(ROOT / "storage" / "errors.py") == set()
