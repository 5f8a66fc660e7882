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
from pathlib import Path
from typing import Iterable, Optional

import platformdirs
from fastapi import HTTPException, Request
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_FILE = "token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def config_dir() -> Path:
    """``$CLIPASSO_CONFIG_DIR``, else platformdirs' ``user_config_dir("clipasso")`` (e.g.
    ``~/.config/clipasso``). ``client.config_dir()`` computes the same without platformdirs."""
    override = os.environ.get("CLIPASSO_CONFIG_DIR")
    return Path(override).expanduser() if override else Path(platformdirs.user_config_dir("clipasso"))


def load_or_create_token(folder: Path) -> str:
    """The token in ``folder/token``; on first start a new random one, written with mode 0600
    (created exclusively, so two engines starting at once end up with the same token)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"the token file {path} is empty: delete it and start the engine again") from None
        if os.name == "posix" and path.stat().st_mode & 0o077:
            path.chmod(0o600)                   # someone loosened it; the token is a password
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


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
    """FastAPI dependency: the request must carry ``Authorization: Bearer <token>`` (compared in
    constant time, so response timing does not leak how much of a guess was right)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")

    def __call__(self, request: Request) -> None:
        given = _bearer(request.headers.get("authorization"))
        if given is None:
            raise HTTPException(401, "this engine needs its token: send 'Authorization: Bearer <token>'; the token is "
                                     "the file 'token' in the engine's config folder (clipasso serve prints where)",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.encode("utf-8"), self._token):
            raise HTTPException(401, "wrong token: use the one in the engine's config folder (file 'token'); "
                                     "it changes only when that file is deleted",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _bearer(header: Optional[str]) -> Optional[str]:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
