"""``instpages``: the operator's command line. Operators script against these names; keep them stable.

Every command takes ``--data-dir`` and ``--config``; errors print one clear line and exit non-zero. This module
is the wiring: the parser, the configuration, logging, terminal escaping and the error line; the commands
themselves are in ``gateway/commands/`` (one handler per command, grouped by topic), each parser naming its
handler with ``set_defaults(func=...)``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from gateway import terminal
from gateway.commands import (accounts, audit, bans, centres, credentials, documents, grants, notifications, reload,
                              serve)
from gateway.commands.base import EXIT_ERROR
from gateway.config import Config, load_config
from storage.errors import GatewayError

EXIT_USAGE = 2

#: every command, in the order of ``instpages --help``
COMMANDS = (serve.add_init, serve.add_serve, centres.add_institution, accounts.add_account, credentials.add_token,
            credentials.add_device_password, grants.add_grant, notifications.add_notify, credentials.add_api_token,
            audit.add_audit, bans.add_ban, documents.add_document, reload.add_reload)


class _Parser(argparse.ArgumentParser):
    """Usage errors in the CLI's one-line format (operators' scripts parse stderr)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"instpages: error: {message} (see {self.prog} --help)\n")


def _common(default=None) -> argparse.ArgumentParser:
    p = _Parser(add_help=False)
    p.add_argument("--data-dir", default=default, help="data folder (default ./var, or $INSTPAGES_DATA_DIR)")
    p.add_argument("--config", default=default, help="TOML configuration file (default $INSTPAGES_CONFIG)")
    return p


def parser() -> argparse.ArgumentParser:
    # the options are accepted before and after the command; SUPPRESS keeps a later level from resetting them
    common = _common(argparse.SUPPRESS)
    ap = _Parser(prog="instpages", description="Institutional Pages gateway", parents=[_common()])
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:  # in the order of --help
        add(sub, common)
    return ap


def _config(args) -> Config:
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    return load_config(args.config or os.environ.get("INSTPAGES_CONFIG"), overrides=overrides)


def main(argv: list[str] | None = None) -> int:
    # whatever a command prints may carry text an attacker chose (names tried in failed logins, file names)
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = terminal.EscapingStream(out), terminal.EscapingStream(err)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = out, err


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = _config(args)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(terminal.EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=getattr(logging, cfg.logging.level.upper()), handlers=[handler])
        for noisy in ("alembic", "asyncssh"):
            logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
        return args.func(args, cfg)  # the handler its parser set
    except GatewayError as exc:
        print(f"instpages: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # pragma: no cover
        return 130
