"""The cheroot and wsgidav internals the HTTPS front-end relies on still have the shape it relies on.

gateway/web/tlsaccept.py replaces cheroot's connection manager accept (``_from_server_socket``, installed as the
server's ``_connections``) and hands finished handshakes back to the server; gateway/dav/state.py narrows
wsgidav's lock manager's ``_get_write_conflicts``; gateway/dav/errors.py replaces ``DAVError.get_response_page``;
gateway/dav/provider.py reads ``wsgidav.all_input_read``. Each test names one of them, so that an upgrade that
changes it says where to look (the HTTPS and WebDAV tests check the behaviour itself).
"""
from __future__ import annotations

import inspect

from cheroot import connections, server as cheroot_server, wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from wsgidav import error_printer, request_server, util
from wsgidav.dav_error import DAVError, DAVErrorCondition
from wsgidav.lock_man.lock_manager import LockManager, generate_lock_token
from wsgidav.lock_man.lock_storage import LockStorageDict, normalize_lock_root, validate_lock
from wsgidav.xml_tools import xml_to_bytes

from gateway.dav import errors as webdav
from gateway.web import tlsaccept
from gateway.dav.state import GatewayLockManager, LockPrincipal


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


# -- cheroot (gateway/web/tlsaccept.py) ----------------------------------------------------------------------------
def test_cheroot_server_keeps_its_connection_manager_in_connections_made_by_prepare():
    assert "self._connections = connections.ConnectionManager(self)" in inspect.getsource(wsgi.Server.prepare)
    assert _params(connections.ConnectionManager.__init__) == ["self", "server"]
    assert callable(connections.ConnectionManager.close)
    assert issubclass(tlsaccept._AcceptOnly, connections.ConnectionManager)


def test_cheroot_accepts_through_from_server_socket_and_takes_none_as_nothing_new():
    assert _params(connections.ConnectionManager._from_server_socket) == ["self", "server_socket"]
    assert _params(tlsaccept._AcceptOnly._from_server_socket) == ["self", "server_socket"]
    source = inspect.getsource(connections.ConnectionManager)
    assert "self._from_server_socket(self.server.socket)" in source
    assert "if new_conn is not None" in source or "if new_conn is None" in source


def test_cheroot_takes_a_handed_over_connection_with_put_conn_or_process_conn():
    for name in ("put_conn", "process_conn"):
        assert _params(getattr(cheroot_server.HTTPServer, name)) == ["self", "conn"], name
    conn_class = wsgi.Server.ConnectionClass
    assert _params(conn_class.__init__)[:4] == ["self", "server", "sock", "makefile"]
    for attribute in ("remote_addr", "remote_port", "ssl_env"):
        assert hasattr(conn_class, attribute), attribute
    assert _params(BuiltinSSLAdapter.makefile)[:2] == ["self", "sock"]


# -- wsgidav (gateway/dav/errors.py, provider.py, state.py) --------------------------------------------------------
def test_wsgidav_renders_errors_with_get_response_page_which_webdav_replaces():
    assert DAVError.get_response_page is webdav._plain_error_page
    assert "e.get_response_page()" in inspect.getsource(error_printer)
    assert "e.get_response_page()" in inspect.getsource(util)
    error = DAVError(409, context_info="why", err_condition=None)
    assert (error.value, error.context_info, error.err_condition) == (409, "why", None)
    assert error.get_response_page() == ("text/plain; charset=utf-8", b"409 Conflict\nwhy\n")


def test_wsgidav_marks_a_fully_read_request_body_in_the_environ():
    assert 'environ["wsgidav.all_input_read"] = 1' in inspect.getsource(request_server)
    environ = {"HTTP_IF": "(<opaquelocktoken:abc>)"}
    util.parse_if_header_dict(environ)
    assert environ["wsgidav.ifLockTokenList"] == ["opaquelocktoken:abc"]


def _locked(manager_class, principal: str):
    manager = manager_class(LockStorageDict())
    lock = manager.acquire(url="/a/b", lock_type="write", lock_scope="exclusive", lock_depth="infinity",
                           lock_owner=b"", timeout=60, principal=principal, token_list=[])
    return manager, lock


def test_wsgidav_lock_conflicts_come_from_get_write_conflicts_as_a_condition_listing_hrefs():
    assert _params(LockManager._get_write_conflicts) == ["self", "url", "depth", "token_list", "principal"]
    assert "self._get_write_conflicts(" in inspect.getsource(LockManager)
    assert "recursive" in _params(LockManager.get_url_lock_list)
    manager, lock = _locked(LockManager, "alice")
    assert {"principal", "token", "root", "depth"} <= set(lock)
    conflicts = manager._get_write_conflicts("/a/b", "0", [], "bob")
    assert isinstance(conflicts, DAVErrorCondition) and conflicts.hrefs == ["/a/b"]
    assert manager._get_write_conflicts("/a/b", "0", [lock["token"]], "alice").hrefs == []


def test_the_gateway_lock_manager_narrows_those_conflicts_for_a_writer_others_do_not_hold_back():
    manager, _ = _locked(GatewayLockManager, "alice")
    assert manager._get_write_conflicts("/a/b", "0", [], LockPrincipal("bob", True)).hrefs == ["/a/b"]
    assert manager._get_write_conflicts("/a/b", "0", [], LockPrincipal("bob", False)).hrefs == []


def test_the_wsgidav_helpers_davstate_and_webdav_call_take_what_they_are_given():
    assert isinstance(LockStorageDict.LOCK_TIME_OUT_DEFAULT, (int, float))
    assert isinstance(LockStorageDict.LOCK_TIME_OUT_MAX, (int, float))
    assert normalize_lock_root("/a/b/") == "/a/b"
    assert generate_lock_token().startswith("opaquelocktoken:")
    assert _params(validate_lock) == ["lock"]
    assert "pretty" in _params(xml_to_bytes)
    assert util.read_timeout_value_header("Second-60") == 60
    assert util.get_http_status_string(423) == "423 Locked"
    assert util.get_rfc1123_time(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert util.get_rfc3339_time(0).startswith("1970-01-01T00:00:00")
