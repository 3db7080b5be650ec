#!/usr/bin/env python3
"""The stack floor of the SFTP benchmark: a bare asyncssh SFTP server, the gateway minus the gateway's work.

    python bench/floor/sftp_floor.py --port P --host 127.0.0.1 --root DIR --authorized-keys FILE \\
        --host-key FILE [--workers N] [--sshcompat]

It serves the plain directory ``--root`` with asyncssh's own ``asyncssh.SFTPServer`` (``chroot=--root``: a client's
``/`` is that directory), after a public-key login against ``--authorized-keys`` under any user name. There is no
database, no encryption at rest, no record of any kind, no authorization beyond the SSH login, no shell, exec,
port, agent or X11 forwarding. ``bench/sftp_bench.py --floor`` starts it as a third server next to sshd and the
gateway (bench/README.md, "The stack floor"): whatever target even this server misses is out of reach for
Python + asyncssh, whatever the gateway does.

What is taken over from the gateway (``gateway/sftp/server.py``, ``SFTPFrontend.start``), so that the floor
differs from the gateway only by the gateway's own work:

- the algorithms: ``kex_algs``, ``encryption_algs`` and ``mac_algs`` are exactly the ones the bench forces on its
  client (``KEX``, ``CIPHER``, ``MAC`` of sftp_bench.py), which the gateway offers among others and the client
  therefore negotiates there too; ``compression_algs=["none"]`` as on the gateway.
- the plain asyncssh transport options the gateway passes: ``allow_scp``, ``agent_forwarding``,
  ``x11_forwarding``, ``allow_pty`` all False, ``line_editor=False``, ``encoding=None``, ``keepalive_interval=60``,
  ``keepalive_count_max=3``, ``login_timeout`` = the gateway's default ``sftp.login_timeout`` (120 s) + 30.
  The gateway sets no window size, ``max_pktsize`` or SFTP limits: asyncssh's defaults there, as here.
  (``signature_algs`` is left out: the client pins its host-key and user-key algorithms, so the list changes
  nothing; ``server_version`` is this script's own name, a banner only.)
- the event loop: ``asyncio.run`` with the default policy, as the gateway (it does not use uvloop).
- ``--workers N`` (default: the number of cores, the gateway's ``serve --workers`` default): N forked processes
  that each listen on the port with ``SO_REUSEPORT`` (nothing is bound before the fork; the kernel spreads the
  connections over the N sockets). The gateway's supervisor instead opens one socket before forking and its
  workers accept from it in turn; SO_REUSEPORT is the cheapest way to spread connections, which is what a floor
  should have. With N = 1 the server runs in this process, as ``instpages serve --workers 1`` does. The parent
  is the gateway's own supervisor (:class:`gateway.supervisor.Supervisor`): it restarts a worker that dies, and
  SIGTERM/SIGINT stop the workers (SIGTERM, then SIGKILL after its grace period) and it exits 0. Workers get
  SIGTERM if the parent dies.

Not taken over unless ``--sshcompat`` is given: ``gateway/sftp/sshcompat.py``, the gateway's adjustments to
asyncssh internals. Besides hooks for the gateway's own login work, it makes sending cheaper without changing a
byte on the wire (no SSH_MSG_IGNORE before each packet for non-CBC ciphers, one ``send`` per channel flush, an
AES-GCM key schedule kept per key), and it wraps asyncssh's SFTP request handlers (error logging; WRITE packets
re-parsed to tolerate trailing padding). Without the option the floor is stock asyncssh; with it, it is the
gateway's own SSH/SFTP layer with nothing of the gateway behind it.

Once every worker listens, the parent prints ``sftp_floor: N worker(s) listening on HOST:PORT`` to stderr.
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import os
import signal
import sys
from pathlib import Path

import asyncssh

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(REPO))
from sftp_bench import CIPHER, KEX, MAC  # noqa: E402  (the algorithms the bench forces on its client)

from gateway.supervisor import Supervisor  # noqa: E402  (the gateway's own: forks, restarts, stops the workers)

GATEWAY_LOGIN_TIMEOUT = 120  # gateway/config.py: SFTPConfig.login_timeout, the default


def say(msg: str) -> None:
    print(f"sftp_floor[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def server_options(args) -> dict:
    """asyncssh.listen's options; everything read from disk is read here, once, before any fork."""
    return {
        "server_host_keys": [asyncssh.read_private_key(args.host_key)],
        "authorized_client_keys": asyncssh.read_authorized_keys(args.authorized_keys),
        "sftp_factory": lambda chan: asyncssh.SFTPServer(chan, chroot=args.root),
        "allow_scp": False, "agent_forwarding": False, "x11_forwarding": False, "allow_pty": False,
        "kex_algs": [KEX], "encryption_algs": [CIPHER], "mac_algs": [MAC], "compression_algs": ["none"],
        "login_timeout": GATEWAY_LOGIN_TIMEOUT + 30, "keepalive_interval": 60, "keepalive_count_max": 3,
        "server_version": "StackFloor", "line_editor": False, "encoding": None,
    }


async def serve(args, options: dict, ready) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncssh.listen(args.host, args.port, reuse_port=True, **options)
    ready()
    await stop.wait()
    server.close()
    await server.wait_closed()


def _worker(args, options: dict, slot: int, ready) -> None:
    """One forked worker (the supervisor's target): serves until SIGTERM/SIGINT."""
    asyncio.run(serve(args, options, ready))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Bare asyncssh SFTP server: the stack floor of bench/sftp_bench.py.")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--root", required=True, help="the directory served (chroot: the client's /)")
    p.add_argument("--authorized-keys", required=True, help="OpenSSH authorized_keys file; any user name")
    p.add_argument("--host-key", required=True, help="the host's private key file")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes listening on the port with SO_REUSEPORT (default: the number of cores)")
    p.add_argument("--sshcompat", action="store_true",
                   help="install the gateway's asyncssh adjustments (gateway/sftp/sshcompat.py) first")
    a = p.parse_args(argv)
    if not 1 <= a.workers <= 256:
        p.error("--workers must be between 1 and 256")
    if not os.path.isdir(a.root):
        p.error(f"--root {a.root}: not a directory")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.sshcompat:
        import gateway.sftp.sshcompat  # noqa: F401  (installs its adjustments at import)
    options = server_options(args)
    if args.workers == 1:  # one process, like instpages serve --workers 1
        asyncio.run(serve(args, options, lambda: say(f"1 worker(s) listening on {args.host}:{args.port} "
                                                     f"(pid {os.getpid()})")))
        return 0
    sup = Supervisor(args.workers, functools.partial(_worker, args, options))
    return sup.run(lambda: say(f"{args.workers} worker(s) listening on {args.host}:{args.port} "
                               f"(pids {' '.join(map(str, sorted(sup.pids)))})"))


if __name__ == "__main__":
    sys.exit(main())
