"""``init`` (the data folder, database and keys made ready) and ``serve`` (the gateway run, ``--demo`` with the
demo data set)."""
from __future__ import annotations

import dataclasses
import functools

from gateway.admin.service import Administration
from gateway.commands.base import command, reports
from gateway.config import Config
from storage.errors import GatewayError


def add_init(sub, common) -> None:
    command(sub, common, "init", init, help="create the data folder, database and keys")


def add_serve(sub, common) -> None:
    s = command(sub, common, "serve", serve, help="run the gateway")
    s.add_argument("--demo", action="store_true", help="load the demo data set (idempotent) and print how to log in")
    s.add_argument("--workers", type=int, metavar="N",
                   help="worker processes on the same ports (default: [server] workers, the number of cores); "
                        "1 = one process")


@reports
def init(args, admin: Administration) -> str:
    return f"initialised {admin.mailbox.config.data_path}"  # building the services did it


def serve(args, cfg: Config) -> int:
    from gateway import server
    from gateway.services import build

    if args.workers is not None:
        if not 1 <= args.workers <= 256:
            raise GatewayError("--workers must be between 1 and 256")
        cfg = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, workers=args.workers))
    services = build(cfg)
    demo_info = None
    if args.demo:
        from gateway.demo import ensure_demo

        demo_info = ensure_demo(services.administration(actor="demo"), cfg)
    ready = functools.partial(_ready, cfg, demo_info)
    try:
        if cfg.server.workers == 1:
            server.run(cfg, services, on_ready=lambda srv: ready(srv.sftp.port, srv.https.port if srv.https else None))
        else:
            server.run_workers(cfg, services, on_ready=ready)
    except OSError as exc:
        raise GatewayError(f"cannot start: {exc.strerror or exc}") from None
    return 0


def _ready(cfg: Config, demo_info: str | None, sftp_port: int, https_port: int | None) -> None:
    """The line that says the gateway is up and where (and, with --demo, how to log in)."""
    dav = (f", WebDAV on {'http' if cfg.webdav.plain_http else 'https'}://{cfg.webdav.host}:"
           f"{https_port}/dav/" if https_port else "")
    workers = f", {cfg.server.workers} worker processes" if cfg.server.workers > 1 else ""
    print(f"Institutional Pages is running: SFTP on {cfg.sftp.host}:{sftp_port}{dav}"
          f" (data in {cfg.data_path}{workers})", flush=True)
    if demo_info:
        print(demo_info.replace("{port}", str(sftp_port))
              .replace("{dav_port}", str(https_port or cfg.webdav.port)), flush=True)
