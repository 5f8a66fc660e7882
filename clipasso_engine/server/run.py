"""``clipasso serve``: bind the socket, make sure the token exists, read back the jobs of the
last run (``<config dir>/jobs``), run uvicorn until stopped."""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Optional, Sequence

import uvicorn

from .. import __version__
from ..devices import resolve_device
from .app import create_app
from .auth import allowed_hosts, config_dir, is_loopback, load_or_create_token
from .guard import (
    ACCEPT_BATCH, HEADER_TIMEOUT_S, connection_cap, guarded_protocol, quiet_accept_errors, quiet_repeats, raise_file_limit,
)
from .jobs import JobQueue
from .store import JobStore

CHECKPOINT_ENV = "CLIPASSO_CHECKPOINT_SECONDS"

KEEP_ALIVE_S = 5                 # an idle connection between requests is closed after this
MAX_HEADER_BYTES = 16 * 1024     # request line and headers together (h11's own limit)


def serve(host: str = "127.0.0.1", port: int = 8765, device: str = "auto", *,
          max_queued: int = 32, allow_hosts: Sequence[str] = (), allow_model_paths: bool = False,
          checkpoint_seconds: Optional[float] = None, jobs_max_mb: float = 1024) -> int:
    """Run the engine in the foreground until interrupted (or ``POST /v1/shutdown``); returns the
    exit status. Jobs are kept in ``<config dir>/jobs`` (at most ``jobs_max_mb``; finished ones
    7 days), checkpointed every ``checkpoint_seconds`` (default: ``$CLIPASSO_CHECKPOINT_SECONDS``,
    else 5). ``allow_model_paths``: jobs may name CLIP weights files anywhere, not only in the
    weights folders. Raises ``OSError`` when the address cannot be bound, ``ValueError`` for an
    absent device or a bad checkpoint period."""
    dev = resolve_device(device).type
    if not is_loopback(host):
        print(f"clipasso: warning: listening on {host}: other machines can reach this engine. They still need "
              "the token, which travels unencrypted over plain HTTP: use a trusted network or an SSH tunnel.",
              file=sys.stderr)
    if checkpoint_seconds is None:
        checkpoint_seconds = checkpoint_seconds_from_env()
    if not checkpoint_seconds >= 0:
        raise ValueError(f"the checkpoint period must be 0 seconds or more, got {checkpoint_seconds}")
    folder = config_dir()
    token = load_or_create_token(folder)
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    print(f"clipasso engine {__version__} on {url} (device {dev}); token in {folder / 'token'}", file=sys.stderr)
    # the preview link carries the token in its fragment (never sent to a server): only for a person at a terminal
    page = f"{url}/#token={token}" if sys.stderr.isatty() else f"{url}/ (it asks for the token)"
    print(f"live preview: {page}", file=sys.stderr)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    max_connections = connection_cap(raise_file_limit())
    queue = JobQueue(dev, store=JobStore(folder / "jobs"), max_queued=max_queued, max_bytes=int(jobs_max_mb * 2**20),
                     checkpoint_seconds=checkpoint_seconds)
    servers: list[uvicorn.Server] = []

    def shutdown() -> None:                   # POST /v1/shutdown: as Ctrl-C (the lifespan pauses the jobs)
        servers[0].should_exit = True

    app = create_app(queue, token, allowed_hosts(host, port, allow_hosts), allow_model_paths=allow_model_paths,
                     shutdown=shutdown)
    # no access log: the preview page polls twice a second; jobs log their own start and end.
    # Connections: see guard.py (a cap below the file limit, header deadline); keep-alive and
    # header size are uvicorn's own settings, limit_concurrency answers 503 beyond the cap.
    config = uvicorn.Config(app, log_level="info", access_log=False, timeout_graceful_shutdown=3,
                            http=guarded_protocol(max_connections, HEADER_TIMEOUT_S),
                            limit_concurrency=max_connections + 64, timeout_keep_alive=KEEP_ALIVE_S,
                            h11_max_incomplete_event_size=MAX_HEADER_BYTES, backlog=ACCEPT_BATCH)
    quiet_repeats("uvicorn", "uvicorn.error")
    quiet_accept_errors()
    logging.getLogger("clipasso.server").info("accepting up to %d connections at once", max_connections)
    servers.append(uvicorn.Server(config))
    servers[0].run(sockets=[sock])
    return 0


def checkpoint_seconds_from_env() -> float:
    """``$CLIPASSO_CHECKPOINT_SECONDS`` (how the extension, which starts the engine, sets it), else 5."""
    text = os.environ.get(CHECKPOINT_ENV, "").strip()
    try:
        return float(text) if text else 5.0
    except ValueError:
        raise ValueError(f"{CHECKPOINT_ENV}={text!r} is not a number of seconds") from None


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Made with proto IPPROTO_TCP (not 0, as ``socket.create_server``
    does) because asyncio sets TCP_NODELAY only on such sockets' connections; without it every
    small response waits ~40 ms for a delayed ACK."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             proto=socket.IPPROTO_TCP)[0]
        sock = socket.socket(family, kind, proto)
        if os.name == "posix":                   # restart at once after a stop (TIME_WAIT); unsafe on Windows
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(ACCEPT_BATCH)
        return sock
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): another engine may already run "
                      f"there (try http://{host}:{port}/v1/health), or choose another --port") from None
