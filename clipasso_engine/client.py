"""A client for the clipasso engine's HTTP API, on the standard library alone.

This one file is also copied beside the Inkscape extension, whose Python has no torch, no
requests and no PIL and may be as old as 3.8. So: standard library only, no imports from the
engine package, Python 3.8 syntax.

    client = EngineClient()                      # http://127.0.0.1:8765, token from the config dir
    job = client.submit(png_bytes, {"strokes": 16, "preset": "fast"})
    result = client.wait(job, on_progress=lambda status: print(status["iteration"]))
    result["levels"]["16"][0]["points"]          # 4 control points in photo pixels

Every failure raises :class:`EngineError` with the engine's own message (what to do);
:class:`EngineUnavailable` when nothing answers at the URL (or the answer breaks off). Redirects
are refused, never followed: the token would go along to wherever they point.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

try:  # inside the engine package
    from .config_folder import config_dir, platform_config_dir
    from .errors import ClipassoError, EngineUnreachable, NotAnEngine
    from .limits import MAX_REQUEST_BYTES
except ImportError:  # the copies beside the Inkscape extension (install.py)
    from clipasso_config_folder import config_dir, platform_config_dir  # type: ignore[no-redef]
    from clipasso_errors import ClipassoError, EngineUnreachable, NotAnEngine  # type: ignore[no-redef]
    from clipasso_limits import MAX_REQUEST_BYTES  # type: ignore[no-redef]

DEFAULT_URL = "http://127.0.0.1:8765"
TERMINAL_STATES = ("done", "failed", "cancelled")


class EngineError(ClipassoError):
    """The engine refused a request or a job ended without a result. ``status``: the HTTP
    status (None when no response came); ``job``: the job's last status, when there was one."""

    kind = "engine"

    def __init__(self, message: str, status: Optional[int] = None, job: Optional[Dict[str, Any]] = None):
        super().__init__(message)
        self.status = status
        self.job = job


class EngineUnavailable(EngineError, EngineUnreachable):
    """Nothing answers at the engine URL (not started, wrong port, or unreachable host).
    ``timed_out``: something took the connection but sent no answer in time."""

    kind = EngineUnreachable.kind
    timed_out = False


class NotAnEngineError(EngineError, NotAnEngine):
    """Something answers at the engine URL, but not as a clipasso engine (its message names
    the URL and what came back)."""

    kind = NotAnEngine.kind


class JobFailed(EngineError):
    """A job ended as failed. ``kind``: the engine's error kind for it (``"weights"``,
    ``"image"``, ... as in ``clipasso_errors``; ``"internal"`` for an engine bug), ``detail``
    the facts the engine attached (e.g. ``{"missing": ["RN101.pt"], "folder": ...}``)."""

    def __init__(self, message: str, job: Dict[str, Any]):
        super().__init__(message, job=job)
        self.kind = str(job.get("error_kind") or "error")
        self.detail = dict(job.get("error_detail") or {})


def read_token(config_dir_path: Optional[str] = None) -> str:
    """The engine's access token: ``$CLIPASSO_TOKEN`` if set (e.g. for a remote engine), else
    the ``token`` file in ``config_dir_path`` (default :func:`config_dir`), which the engine
    writes on its first start.

    A token file that another user owns, or that other users may read, is refused (anyone
    could have read or chosen it), and so is one that is not a token; the message never
    repeats what the file holds."""
    env = os.environ.get("CLIPASSO_TOKEN")
    if env:
        if not valid_token(env.strip()):
            raise EngineError("CLIPASSO_TOKEN does not hold a valid engine token (one line of letters, digits and "
                              "-._~+/): set it to the contents of the engine's token file")
        return env.strip()
    path = os.path.join(config_dir_path or config_dir(), "token")
    try:
        with open(path, "rb") as f:
            unsafe = _unsafe_token_file(path, os.fstat(f.fileno()))
            raw = f.read(4096)
    except OSError:
        raise EngineError(
            "no engine token at {}: start the engine once (`clipasso serve`) to create it, "
            "or set CLIPASSO_TOKEN to the token of a remote engine".format(path)
        ) from None
    if unsafe:
        raise EngineError(unsafe)
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        token = "\n"
    if not token:
        raise EngineError("the engine token file {} is empty: delete it and restart the engine".format(path))
    if not valid_token(token):
        raise EngineError("the engine token file {} does not hold a valid token: delete it and restart the engine, "
                          "which makes a new one".format(path))
    return token


def valid_token(token: str) -> bool:
    """One bearer token (RFC 6750's characters), nothing that could break an HTTP header."""
    return re.fullmatch(r"[A-Za-z0-9\-._~+/]{1,1024}=*", token) is not None


def _unsafe_token_file(path: str, st: os.stat_result) -> Optional[str]:
    """Why the token file (POSIX) must not be trusted, or None."""
    if os.name != "posix":
        return None
    if st.st_uid != os.geteuid():
        return ("the engine token file {} belongs to another user of this computer, who could have chosen or read "
                "it: delete it (or set CLIPASSO_CONFIG_DIR to a folder of your own) and restart the engine".format(path))
    if st.st_mode & 0o077:
        return ("the engine token file {} can be read by other users of this computer (mode {:o}), so they could "
                "use the engine: run `chmod 600 {}` (the engine also does when it starts), or delete the file and "
                "restart the engine for a new token".format(path, st.st_mode & 0o777, path))
    return None


class EngineClient:
    """Talks to one engine. ``url``: its base URL; ``token``: default :func:`read_token`;
    ``timeout``: seconds per HTTP request (not per job: see :meth:`wait`)."""

    def __init__(self, url: str = DEFAULT_URL, token: Optional[str] = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.token = token if token is not None else read_token()
        if self.token and not valid_token(self.token):
            raise EngineError("the engine token given is not a valid token (one line of letters, digits and -._~+/)")
        self.timeout = timeout

    def health(self) -> Dict[str, Any]:
        """``{"status": "ok", "version", "device", "queued", "running", ...}``."""
        return self._request("GET", "/v1/health")

    def models(self) -> Dict[str, Any]:
        """``{"clip", "saliency_clip", "loaded", "weights", "missing", "weights_folder"}``:
        ``missing`` lists the weights files the engine's default models lack."""
        return self._request("GET", "/v1/models")

    def submit(
        self,
        image_bytes: bytes,
        settings: Optional[Dict[str, Any]] = None,
        init_strokes: Optional[Sequence[Dict[str, Any]]] = None,
        locked: Optional[Sequence[int]] = None,
        mask_bytes: Optional[bytes] = None,
    ) -> str:
        """Queue a sketch of an encoded image (PNG, JPEG, WebP); returns the job id. ``settings``:
        SketchSettings fields (unset ones take the engine's defaults); ``init_strokes``: strokes
        JSON to start from, ``locked``: indices of those that stay fixed; ``mask_bytes``: an
        encoded foreground mask for ``settings["mask"]``."""
        body = {"image": base64.b64encode(image_bytes).decode("ascii"), "settings": dict(settings or {})}
        if init_strokes is not None:
            body["init_strokes"] = list(init_strokes)
        if locked:
            body["locked"] = list(locked)
        if mask_bytes is not None:
            body["mask"] = base64.b64encode(mask_bytes).decode("ascii")
        size = len(body["image"]) + len(body.get("mask", "")) + len(json.dumps({k: v for k, v in body.items()
                                                                               if k not in ("image", "mask")}))
        if size > MAX_REQUEST_BYTES:
            # checked here: the engine refuses before reading, and the upload then breaks off mid-way
            raise EngineError(
                "the photo is too large to send to the engine: {:.1f} MB as base64{}, and the engine accepts up to "
                "{:.0f} MB (a photo file of about {:.0f} MB): scale it down or save it as JPEG".format(
                    size / 2**20, " with its mask" if mask_bytes is not None else "", MAX_REQUEST_BYTES / 2**20,
                    MAX_REQUEST_BYTES * 3 / 4 / 2**20), status=413)
        return self._request("POST", "/v1/jobs", body)["id"]

    def status(self, job_id: str, preview: bool = True) -> Dict[str, Any]:
        """The job's state, iteration, iterations, loss, eta_s, error and (with ``preview``) the
        SVG of its current strokes."""
        query = "" if preview else "?preview=false"
        return self._request("GET", "/v1/jobs/{}{}".format(job_id, query))

    def result(self, job_id: str) -> Dict[str, Any]:
        """The strokes JSON of a finished job (``width``, ``height``, ``levels``, ``seed``, ...)."""
        return self._request("GET", "/v1/jobs/{}/result".format(job_id))

    def cancel(self, job_id: str) -> Dict[str, Any]:
        """Cancel a job (a queued one at once, a running one within one iteration); its status."""
        return self._request("DELETE", "/v1/jobs/{}".format(job_id))

    def cancel_all(self) -> Dict[str, Any]:
        """Cancel every queued and running job (``DELETE /v1/jobs``); each keeps its best strokes so far."""
        return self._request("DELETE", "/v1/jobs")

    def shutdown(self) -> Dict[str, Any]:
        """Stop the engine (``POST /v1/shutdown``); its unfinished jobs resume at its next start."""
        return self._request("POST", "/v1/shutdown", {})

    def jobs(self) -> List[Dict[str, Any]]:
        """Every job the engine still remembers, newest first (no preview SVGs)."""
        return self._request("GET", "/v1/jobs")["jobs"]

    def wait(
        self,
        job_id: str,
        on_progress: Optional[Callable[[Dict[str, Any]], None]] = None,
        poll: float = 0.5,
        timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Poll until the job ends; return its strokes JSON. ``on_progress(status)`` gets each
        status seen. Raises :class:`EngineError` when the job failed or was cancelled (with the
        engine's message), or after ``timeout`` seconds (the job keeps running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(job_id, preview=False)
            if on_progress is not None:
                on_progress(status)
            if status["state"] in TERMINAL_STATES:
                return self._finished(job_id, status)
            if deadline is not None and time.monotonic() >= deadline:
                raise EngineError(
                    "job {} is still {} after {:.0f} s; it keeps running in the engine".format(job_id, status["state"], timeout),
                    job=status,
                )
            time.sleep(poll)

    def events(self, job_id: str) -> Iterator[Dict[str, Any]]:
        """The job's status as the engine pushes it (Server-Sent Events): one dict per change,
        the last one in a final state."""
        path = "/v1/jobs/{}/events".format(job_id)
        req = self._prepare("GET", path, None)
        req.add_header("Accept", "text/event-stream")
        with self._open(req) as resp:
            data: List[str] = []
            while True:
                with self._reading(path):
                    raw = resp.readline()
                    if not raw:
                        raise EngineUnavailable("the engine at {} ended the event stream of job {} before the job "
                                                "ended".format(self.url, job_id))
                    line = raw.decode("utf-8").rstrip("\r\n")
                    status = None
                    if line.startswith("data:"):
                        data.append(line[5:].lstrip(" "))
                    elif not line and data:
                        status = json.loads("\n".join(data))
                        data = []
                if status is not None:
                    yield status
                    if status.get("state") in TERMINAL_STATES:
                        return

    def _finished(self, job_id: str, status: Dict[str, Any]) -> Dict[str, Any]:
        if status["state"] == "done":
            return self.result(job_id)
        if status["state"] == "cancelled":
            raise EngineError("job {} was cancelled".format(job_id), job=status)
        raise JobFailed(status.get("error") or "job {} failed".format(job_id), status)

    def _request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        with self._open(self._prepare(method, path, body)) as resp:
            with self._reading(path):
                answer = json.loads(resp.read().decode("utf-8"))
                if not isinstance(answer, dict):
                    raise ValueError("not a JSON object")
                return answer

    @contextlib.contextmanager
    def _reading(self, path: str) -> Iterator[None]:
        """Reading and parsing an answer: a broken-off answer is :class:`EngineUnavailable`, one
        that is not the engine's JSON an :class:`EngineError` naming the URL."""
        try:
            yield
        except (http.client.HTTPException, OSError) as exc:  # timeouts and connection resets too
            raise EngineUnavailable(
                "the engine at {} stopped answering ({}): is it still running? (`clipasso serve`)".format(
                    self.url, str(exc) or type(exc).__name__)
            ) from None
        except ValueError:  # not JSON, or not UTF-8
            raise NotAnEngineError(
                "something other than a CLIPasso engine answers at {} (its answer to {} is not the engine's "
                "JSON)".format(self.url, path), status=200
            ) from None

    def _prepare(self, method: str, path: str, body: Optional[Dict[str, Any]]) -> urllib.request.Request:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        return req

    def _open(self, req: urllib.request.Request) -> Any:
        # No proxies: the engine is usually on loopback, and a system proxy would see the token.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _RefuseRedirects(self.url))
        try:
            return opener.open(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise EngineError(_error_detail(exc), status=exc.code) from None
        except (urllib.error.URLError, ConnectionError, socket.timeout) as exc:
            reason = getattr(exc, "reason", exc)
            unavailable = EngineUnavailable(
                "no clipasso engine answers at {} ({}): start it with `clipasso serve`".format(self.url, reason)
            )
            unavailable.timed_out = isinstance(reason, socket.timeout)
            raise unavailable from None
        except http.client.HTTPException as exc:  # an answer, but not HTTP (another kind of server)
            raise NotAnEngineError(
                "something other than a CLIPasso engine answers at {} (not an HTTP answer: {})".format(
                    self.url, type(exc).__name__)
            ) from None


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """The engine never redirects; following one would send the token elsewhere."""

    def __init__(self, url: str):
        self.url = url

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        fp.close()
        raise NotAnEngineError(
            "something other than a CLIPasso engine answers at {} (it redirects to {}; not followed, so the "
            "token stays here)".format(self.url, newurl),
            status=code,
        )


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """The engine's ``{"detail": "..."}`` message, else the HTTP status line."""
    try:
        detail = json.loads(exc.read().decode("utf-8")).get("detail")
    except (ValueError, AttributeError, OSError):
        detail = None
    if isinstance(detail, str) and detail:
        return detail
    return "the engine answered HTTP {} {}".format(exc.code, exc.reason)
