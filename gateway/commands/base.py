"""What the ``instpages`` commands share: the failure exit code, command and sub-command declaration, the table
printer and the wrappers that run a handler against the :class:`~gateway.admin.service.Administration` service
(:func:`administration`; :func:`reports` for a handler that says what it did in one line, :func:`lists` for one
that lists rows as a table)."""
from __future__ import annotations

import argparse
import functools
import logging
from typing import TYPE_CHECKING

from gateway import terminal

if TYPE_CHECKING:
    from gateway.admin.service import Administration

EXIT_ERROR = 1


def group(sub, common: argparse.ArgumentParser, name: str, text: str):
    """The command ``name`` (``text`` in ``--help``), whose sub-commands are declared on what it returns."""
    return sub.add_parser(name, parents=[common], help=text).add_subparsers(dest="sub", required=True)


def command(group, common: argparse.ArgumentParser, name: str, handler, **kw) -> argparse.ArgumentParser:
    """The (sub-)command ``name`` of ``group``, run by ``handler``; it takes the common options too."""
    p = group.add_parser(name, parents=[common], **kw)
    p.set_defaults(func=handler)
    return p


def administration(handler):
    """``handler(args, admin)`` as a command: the services built for it and closed after it."""
    @functools.wraps(handler)
    def run(args, cfg) -> int:
        from gateway.services import build

        services = build(cfg)
        # a command reports the outcome of what it sent itself, in its one line
        logging.getLogger("instpages.notify").setLevel(logging.ERROR)
        try:
            admin = services.administration()
            return handler(args, admin)
        finally:
            services.close()
    return run


def reports(handler):
    """``handler(args, admin) -> line`` as a command that prints the line saying what it did, and succeeds."""
    @functools.wraps(handler)
    def run(args, admin: Administration) -> int:
        print(handler(args, admin))
        return 0
    return administration(run)


def lists(*header: str):
    """``handler(args, admin) -> rows`` as a command that prints the rows as a table under ``header``."""
    def wrap(handler):
        @functools.wraps(handler)
        def run(args, admin: Administration) -> int:
            print_table(handler(args, admin), list(header))
            return 0
        return administration(run)
    return wrap


def print_table(rows: list[list[str]], header: list[str]) -> None:
    rows = [[terminal.escape(str(x)) for x in r] for r in rows]  # a cell never breaks or colours its line
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    for r in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())


def set_networks(what: str, key: str, setter: str):
    """The ``set-networks`` handler of a ``what`` (account, centre) named by ``args.<key>``: ``admin.<setter>``."""
    @reports
    def handler(args, admin: Administration) -> str:
        name = getattr(args, key)
        getattr(admin, setter)(name, args.networks)
        return f"{what} {name}: networks {args.networks or 'any'}"
    return handler
