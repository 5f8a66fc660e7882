"""Who may talk to the engine: the bearer token (kept in the user's config dir) and the Host check.

The engine runs jobs that read files and burn GPU time, so every /v1 call needs the token, even
on loopback: any local program or web page could otherwise submit work. The Host check stops
DNS rebinding (a web page whose domain is re-pointed at 127.0.0.1 would send its own Host).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Iterable, Optional

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import client

TOKEN_FILE = "token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def config_dir() -> Path:
    """The config folder: ``client.config_dir()``, the one rule the extension (which has only
    that file) uses too, so engine and extension always look in the same place."""
    return Path(client.config_dir())


def load_or_create_token(folder: Path) -> str:
    """The token in ``folder/token``; on first start a new random one, mode 0600. The folder is
    made (or tightened to) 0700. The new token is written to a temporary file first and linked
    into place whole, so an engine starting at the same moment reads either no file (and makes
    its own, of which the first one linked wins) or the complete token, never an empty file."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _private(folder, 0o700)
    path = folder / TOKEN_FILE
    if not path.exists():
        fd, tmp = tempfile.mkstemp(prefix=".token-", dir=folder)         # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
            _link_new(Path(tmp), path)
        except FileExistsError:
            pass                                 # another engine was quicker: use its token
        finally:
            Path(tmp).unlink(missing_ok=True)
    if os.name == "posix" and path.stat().st_uid != os.geteuid():
        raise ValueError(f"the token file {path} belongs to another user, who could have chosen or read it: delete "
                         "it (or set CLIPASSO_CONFIG_DIR to a folder of your own) and start the engine again")
    _private(path, 0o600)                       # someone loosened it; the token is a password
    token = path.read_bytes()[:4096].decode("ascii", errors="replace").strip()
    if not token:
        raise ValueError(f"the token file {path} is empty: delete it and start the engine again")
    if not client.valid_token(token):            # never shown: it may be someone's secret, or a trap for the terminal
        raise ValueError(f"the token file {path} does not hold a valid token: delete it and start the engine again, "
                         "which makes a new one")
    return token


def _link_new(tmp: Path, path: Path) -> None:
    """Give the file ``tmp`` the name ``path`` too, atomically; FileExistsError when ``path``
    exists (never replaced)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        # a file system without hard links: a rename (which on Windows never replaces a file;
        # elsewhere the check before it leaves a window of microseconds)
        if os.name != "nt" and path.exists():
            raise FileExistsError(path) from None
        os.rename(tmp, path)


def _private(path: Path, mode: int) -> None:
    """``chmod`` to ``mode`` when group or others have any access (POSIX; best effort)."""
    if os.name == "posix" and path.stat().st_mode & 0o077:
        try:
            path.chmod(mode)
        except OSError:
            pass                                 # not ours (a shared CLIPASSO_CONFIG_DIR): leave it


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host header values the engine answers to: the loopback names, the bound address (unless a
    wildcard such as 0.0.0.0) and ``extra`` names, each with ``:port`` (bare too on port 80).
    An ``extra`` entry that has its own port (``localhost:9000``, e.g. the local end of an SSH
    tunnel) is taken as it is."""
    names = set(LOOPBACK_NAMES)
    if not is_loopback(host) and host not in ("0.0.0.0", "::", ""):
        names.add(f"[{host}]" if ":" in host else host)
    with_port = {e.lower() for e in extra if re.fullmatch(r"(\[[^\]]+\]|[^:\[\]]+):\d+", e)}
    names.update(e for e in extra if e.lower() not in with_port)
    values = {f"{n.lower()}:{port}" for n in names} | with_port
    if port == 80:
        values.update(n.lower() for n in names)
    return frozenset(values)


class HostCheck:
    """ASGI middleware: refuse requests whose Host header is not one of ``allowed`` (400 when
    missing, 421 when foreign), before any route runs — the preview page included."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host")
            if not host:
                await JSONResponse({"detail": "the request has no Host header"}, 400)(scope, receive, send)
                return
            if host.lower() not in self.allowed:
                detail = (f"this engine does not answer to Host {host!r}; use one of {sorted(self.allowed)} "
                          "(start it with --allow-host NAME to add a name)")
                await JSONResponse({"detail": detail}, 421)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class TokenCheck:
    """ASGI middleware: every request under ``/v1`` must carry ``Authorization: Bearer <token>``
    (compared in constant time, so response timing does not leak how much of a guess was right).

    It runs before the body is read or parsed: a caller without the token costs a header check,
    never a 30 MB upload buffered and decoded as JSON. The preview page, its static files and
    ``/openapi.json`` hold no secret and stay open (the page asks for the token itself)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self._token = app, token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] in ("http", "websocket") else ""
        if path == "/v1" or path.startswith("/v1/"):
            refusal = self.refusal(Headers(scope=scope).get("authorization"))
            if refusal is not None and scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})      # policy violation
                return
            if refusal is not None:
                detail, challenge = refusal
                # Connection: close, as a body sent along is not read (and must not pass for a next request)
                headers = {"WWW-Authenticate": challenge, "Connection": "close"}
                await JSONResponse({"detail": detail}, 401, headers=headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, header: Optional[str]) -> Optional[tuple[str, str]]:
        """None when ``header`` carries the token, else (message, WWW-Authenticate value)."""
        given = _bearer(header)
        if given is None:
            return ("this engine needs its token: send 'Authorization: Bearer <token>'; the token is the file "
                    "'token' in the engine's config folder (clipasso serve prints where)", "Bearer")
        if not hmac.compare_digest(given.encode("utf-8"), self._token):
            return ("wrong token: use the one in the engine's config folder (file 'token'); it changes only "
                    "when that file is deleted", 'Bearer error="invalid_token"')
        return None


def _bearer(header: Optional[str]) -> Optional[str]:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
