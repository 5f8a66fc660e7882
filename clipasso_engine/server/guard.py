"""Keep the engine reachable when clients misbehave: connection limits, timeouts, quiet logs.

Each open connection holds a file descriptor. A desktop's default limit is 1,024 of them, so
~1,000 connections that never send a request would leave the engine unable to accept anyone
(and asyncio would log a traceback per failed accept). Here:

- ``raise_file_limit`` lifts the soft limit of open files to the hard one at start;
- ``guarded_protocol`` is uvicorn's h11 protocol with a cap on open connections, well below
  that limit (when full, the oldest connection that is not serving a request is closed to make
  room, so a new request is always heard), and a deadline for a request's headers after the
  connection opens or the previous answer ends (slow or silent clients are dropped);
- ``quiet_accept_errors`` turns asyncio's traceback for an accept that found no free descriptor
  (it then pauses accepting for a second by itself) into one warning line;
- ``RepeatFilter`` lets a repeated log message through a few times a minute, with a count of
  those it held back, so no client can fill the disk with the engine's log.

Slow request bodies are timed out by ``app.BodyLimit``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

FD_RESERVE = 128                 # descriptors kept for everything else: model files, logs, threads' pipes
ACCEPT_BATCH = 64                # asyncio accepts up to this many connections (its listen backlog) before
                                 # the protocol of the first one can count it: kept free below the file limit
MAX_CONNECTIONS = 4096           # even with a large file limit: each connection costs memory too
HEADER_TIMEOUT_S = 10.0          # a request line and headers must arrive within this after (re)opening
_SOFT_CEILING = 65536            # when the hard limit is "unlimited"


def raise_file_limit() -> Optional[int]:
    """Raise this process's soft limit of open files toward its hard limit (POSIX); the soft
    limit now in force, or None where there is no such limit (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _SOFT_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass                                 # e.g. macOS refuses above OPEN_MAX: keep what we have
    return None if soft == resource.RLIM_INFINITY else soft


def connection_cap(file_limit: Optional[int]) -> int:
    """Open connections allowed with ``file_limit`` descriptors (None: no known limit)."""
    if file_limit is None:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, file_limit - FD_RESERVE - ACCEPT_BATCH))


def guarded_protocol(max_connections: int, header_timeout_s: float = HEADER_TIMEOUT_S) -> type:
    """uvicorn's h11 protocol class with a connection cap and a header deadline (see the module)."""
    return type("GuardedH11Protocol", (_Guarded,), {"max_connections": max_connections,
                                                     "header_timeout_s": header_timeout_s})


class _Guarded(H11Protocol):
    max_connections: int = MAX_CONNECTIONS
    header_timeout_s: float = HEADER_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: Optional[asyncio.TimerHandle] = None
        self._awaited: Any = None             # the request cycle in force when the deadline was set
        self._since = time.monotonic()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            idle = [c for c in self.connections if c is not self and isinstance(c, _Guarded) and c._idle()]
            if not idle:                       # every connection is serving a request: this one waits no turn
                self._drop()
                return
            min(idle, key=lambda c: c._since)._drop()
        self._expect_request()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._since = time.monotonic()
            self._expect_request()

    def _idle(self) -> bool:
        """No request being served (none yet, or the last one answered)."""
        return not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete)

    def _expect_request(self) -> None:
        self._cancel_deadline()
        self._awaited = self.cycle
        self._deadline = self.loop.call_later(self.header_timeout_s, self._deadline_passed)

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.cycle is self._awaited:       # no new request began in time
            self._drop()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _drop(self) -> None:
        self._cancel_deadline()
        if not self.transport.is_closing():
            try:
                self.conn.send(h11.ConnectionClosed())
            except h11.LocalProtocolError:
                pass
            self.transport.close()


class RepeatFilter(logging.Filter):
    """Passes a message (same logger, level and format string) at most ``burst`` times per
    ``window_s`` seconds; the first one after a held-back stretch says how many were held back."""

    def __init__(self, burst: int = 5, window_s: float = 60.0) -> None:
        super().__init__()
        self.burst, self.window_s = burst, window_s
        self._seen: dict[tuple[str, int, str], list[float]] = {}   # key → [window start, passed, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        state = self._seen.get(key)
        if state is None or now - state[0] >= self.window_s:
            held = int(state[2]) if state else 0
            self._seen[key] = [now, 1, 0]
            if len(self._seen) > 1000:         # forget old messages
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
            if held:
                record.msg = f"{record.msg} [{held} more like this were not logged]"
            return True
        if state[1] < self.burst:
            state[1] += 1
            return True
        state[2] += 1
        return False


ACCEPT_ERROR = "socket.accept() out of system resource"   # how asyncio's event loop words it


class AcceptErrorFilter(logging.Filter):
    """asyncio logs a failed accept (no file descriptor left) as an error with a traceback, and
    then waits a second before it accepts again, which is all there is to do: one warning line,
    no traceback (the RepeatFilter on the handlers keeps a flood of them short)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(ACCEPT_ERROR):
            record.msg, record.args = ("too many open connections or files: new connections wait a second "
                                       "(idle ones are closed to make room)"), ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_accept_errors() -> None:
    """Install ``AcceptErrorFilter`` on the asyncio logger (before any handler sees the record)."""
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, AcceptErrorFilter) for f in logger.filters):
        logger.addFilter(AcceptErrorFilter())


def quiet_repeats(*loggers: str) -> RepeatFilter:
    """Install one ``RepeatFilter`` on every handler of the root logger and of ``loggers``."""
    repeat = RepeatFilter()
    for name in ("", *loggers):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(repeat)
    return repeat
