"""The WebDAV front-end's assembly: wsgidav with our own DAV provider over the mailbox core, built by
:func:`create_app` from its collaborators -- the provider (:mod:`~gateway.dav.provider`), the domain controller
(:mod:`~gateway.dav.domain`), the middlewares (:mod:`~gateway.dav.middleware`, :mod:`~gateway.dav.propfind`,
:mod:`~gateway.dav.listing`) and the DAV state in the database (:mod:`~gateway.dav.state`).

Like the SFTP front-end it only translates: HTTP Basic credentials into one ``Mailbox.login``, DAV requests into
``MailboxSession`` calls, and core errors into HTTP statuses through the one table ``ERRORS``
(:mod:`~gateway.dav.errors`). Nothing here decides who may do what, and nothing proceeds as "anonymous": a request
without a core session never reaches the provider.

Middleware order (outermost first): :class:`FrontDoor` (OPTIONS without authentication, the path and the Basic
credentials parsed), wsgidav's ErrorPrinter, :class:`CoreErrors` (core errors raised through wsgidav's code keep
their status), wsgidav's HTTPAuthenticator (Basic only, our domain controller), :class:`SessionGuard` (401 unless
the core accepted the login), :class:`RequestChecks` (XML bodies checked with defusedxml, bounded,
``Depth: infinity`` refused on collections), :class:`WriteChecks` (each write and LOCK asks the core first),
:class:`FastPropfind`, :class:`ListingPage` (a safe HTML listing for browsers), wsgidav's RequestResolver.
"""
from __future__ import annotations

from wsgidav.error_printer import ErrorPrinter
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from gateway.core.mailbox import Mailbox
from gateway.dav.domain import GatewayDomainController
from gateway.dav.listing import ListingPage
from gateway.dav.middleware import CoreErrors, FrontDoor, RequestChecks, SessionGuard, WriteChecks
from gateway.dav.propfind import FastPropfind
from gateway.dav.provider import MailboxProvider
from gateway.dav.state import DbLockStorage, DbPropertyManager, GatewayLockManager


def create_app(mailbox: Mailbox, *, mount_path: str = "/dav", auth_cache_seconds: float = 60,
               block_size: int = 1024 * 1024, fast_propfind: bool = True, trusted_proxies=()):
    config = {
        "provider_mapping": {"/": MailboxProvider()},
        "mount_path": mount_path,
        "http_authenticator": {"domain_controller": GatewayDomainController, "accept_basic": True,
                               "accept_digest": False, "default_to_digest": False, "trusted_auth_header": None},
        "instpages": {"mailbox": mailbox, "auth_cache_seconds": auth_cache_seconds},
        "middleware_stack": [ErrorPrinter, CoreErrors, HTTPAuthenticator, SessionGuard, RequestChecks, WriteChecks,
                             FastPropfind, ListingPage, RequestResolver],
        "property_manager": DbPropertyManager(mailbox.repo),
        "lock_storage": DbLockStorage(mailbox.repo, max_seconds=mailbox.config.webdav.lock_max_seconds),
        "dir_browser": {"enable": False},
        "suppress_version_info": True,
        "add_header_MS_Author_Via": True,
        "block_size": block_size,
        "verbose": 1,
        "logging": {"enable": False},
        "hotfixes": {"emulate_win32_lastmod": True, "re_encode_path_info": True, "unquote_path_info": False},
        "simple_dc": {"user_mapping": {}},
    }
    if not fast_propfind:
        config["middleware_stack"].remove(FastPropfind)
    dav = WsgiDAVApp(config)
    dav.lock_manager = GatewayLockManager(config["lock_storage"])
    for provider in dav.provider_map.values():
        provider.set_lock_manager(dav.lock_manager)
    return FrontDoor(dav, mailbox, trusted_proxies)
