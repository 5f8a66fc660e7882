"""The FastAPI app: /v1 endpoints over a ``JobQueue``, the preview page at ``/``.

Endpoints stay thin: checking uploads is ``intake``, running jobs is ``jobs``, tokens and Host
checks are ``auth``. Every refusal is ``{"detail": "<what is wrong and what to do>"}``.

Middleware, outermost first: page headers on every response, the Host check, the token check
(before any body is read), the body size limit; then the routes.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Optional

from fastapi import APIRouter, BackgroundTasks, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..clip_weights import WeightsMissingError, available_models, check_present, weights_folder
from ..image import sniff_format
from ..limits import MAX_REQUEST_BYTES
from ..settings import default_clip, default_saliency_clip
from .auth import HostCheck, TokenCheck
from .intake import Decoders, work_from_request
from .jobs import TERMINAL, Job, JobNotFound, JobNotSaved, JobQueue, QueueFull
from .models import Health, JobCreated, JobList, JobRequest, JobStatus, Models, ResultBody

MAX_BODY_BYTES = MAX_REQUEST_BYTES   # a ~22 MB image as base64, plus settings (the client checks it too)
BODY_IDLE_S = 30.0                   # a request body that stops arriving for this long is answered 408
SSE_KEEPALIVE_S = 15.0               # a comment line now and then keeps proxies and clients from timing out
SSE_MIN_INTERVAL_S = 0.2             # progress arrives every step; coalesce it for the stream
STATIC = Path(str(resources.files("clipasso_engine") / "server" / "static"))
PAGE_HEADERS = {
    # the page only talks to this engine and never runs scripts from elsewhere or from the SVGs
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",         # frame-ancestors for browsers without CSP level 2
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no token, or a wrong one"},
    404: {"description": "no such job (never existed, or cleaned up 7 days after it finished)"},
}


def create_app(queue: JobQueue, token: str, hosts: frozenset[str], *, max_body: int = MAX_BODY_BYTES,
               allow_model_paths: bool = False, shutdown: Optional[Callable[[], None]] = None) -> FastAPI:
    """The engine's ASGI app. ``queue`` starts and stops with the app; ``token`` guards /v1;
    ``hosts``: accepted Host header values (``auth.allowed_hosts``); ``allow_model_paths``: jobs
    may name weights files anywhere (else only in the weights folders); ``shutdown``: asks the
    server to stop (``POST /v1/shutdown``; None: that call answers 501)."""
    started = time.time()
    decoders = Decoders()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        queue.start()
        yield
        decoders.shutdown()
        await asyncio.to_thread(queue.stop)

    # no /docs or /redoc: they load scripts from a CDN on the origin whose localStorage holds the
    # token; /openapi.json stays
    app = FastAPI(title="clipasso engine", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Photo → abstract line sketch of a few Bézier strokes (CLIPasso). Every /v1 call "
                              "needs `Authorization: Bearer <token>` (the file `token` in the config folder).")
    api = APIRouter(prefix="/v1", responses=ERRORS)             # the token: TokenCheck, below
    # The routes other than submit only read or flip the queue's state under its lock (never
    # for long): they are `async def`, so they answer on the event loop itself and need no
    # thread of the pool that slow work could fill. Submit's slow part runs in `decoders`.

    @api.post("/jobs", status_code=202, response_model=JobCreated,
              responses={413: {"description": "upload too large"}, 422: {"description": "bad image or settings"},
                         429: {"description": "queue full"}, 503: {"description": "busy or out of memory: retry"},
                         507: {"description": "no room on disk for the job"}})
    async def submit(body: JobRequest) -> JobCreated:
        """Queue a sketch (answered at once, from the cache, when the same job ran before). The
        job is kept on disk: it survives an engine restart. An identical job still queued or
        running is computed once: its id is returned again (``cached`` false)."""
        job = await decoders.run(lambda: queue.submit(work_from_request(body, allow_model_paths=allow_model_paths)))
        return JobCreated(id=job.id, state=job.state, cached=job.cached)  # type: ignore[arg-type]

    @api.get("/jobs", response_model=JobList)
    async def list_jobs() -> JobList:
        """Every job still remembered (finished ones for 7 days), newest first (for the preview page)."""
        return JobList(jobs=[JobStatus(**queue.snapshot(j, preview=False)) for j in queue.jobs()])

    @api.delete("/jobs", response_model=JobList)
    def cancel_all() -> JobList:
        """Cancel every queued and running job (as ``DELETE /v1/jobs/{id}``); lists the jobs it cancelled."""
        return JobList(jobs=[JobStatus(**queue.snapshot(j, preview=False)) for j in queue.cancel_all()])

    @api.get("/jobs/{job_id}", response_model=JobStatus)
    async def job_status(job_id: str, preview: bool = True) -> JobStatus:
        """State, progress, loss, ETA and (unless ``preview=false``) the SVG of the current strokes."""
        return JobStatus(**queue.snapshot(queue.get(job_id), preview=preview))

    @api.get("/jobs/{job_id}/result", responses={200: {"model": ResultBody}, 409: {"description": "no result"}})
    async def job_result(job_id: str) -> JSONResponse:
        """The strokes JSON (``SketchResult.to_json()``) of a done job, or of a cancelled one: its
        best strokes so far, with ``engine.stopped == "cancelled"`` (``has_result`` says which have one)."""
        job = queue.get(job_id)
        if job.result is None:
            why = f": {job.error}" if job.error else ""
            if job.state == "cancelled":
                why = " before its first step, so it has no strokes"
            raise HTTPException(409, f"job {job_id} is {job.state}{why}; a result exists once it is done "
                                     "(or cancelled after it started)")
        return JSONResponse(job.result)

    @api.get("/jobs/{job_id}/image", response_class=Response,
             responses={200: {"description": "the photo as uploaded"}, 409: {"description": "the job has ended"}})
    async def job_image(job_id: str) -> Response:
        """The job's photo as uploaded, while the job waits or runs (the live preview draws the
        strokes and regions over it); an ended job no longer holds it."""
        work = queue.get(job_id).work
        if work is None or not work.image:
            raise HTTPException(409, f"job {job_id} has ended: its photo is no longer kept")
        fmt = sniff_format(work.image[:16]) or "PNG"
        return Response(work.image, media_type="image/" + fmt.lower(), headers={"Cache-Control": "no-store"})   # + PAGE_HEADERS

    @api.get("/jobs/{job_id}/events", response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}, "description": "`event: status` with JobStatus data"}})
    async def job_events(job_id: str) -> StreamingResponse:
        """Server-Sent Events: the job's status (as ``GET /v1/jobs/{id}``) whenever it changes,
        at most every 0.2 s, until it ends."""
        job = queue.get(job_id)
        return StreamingResponse(_events(queue, job), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @api.delete("/jobs/{job_id}", response_model=JobStatus)
    async def cancel(job_id: str) -> JobStatus:
        """Cancel: a queued job at once, a running one before its next step (its best strokes so far
        stay fetchable from /result). Finished jobs stay as they are."""
        return JobStatus(**queue.snapshot(queue.cancel(job_id), preview=False))

    @api.post("/shutdown", status_code=202, responses={501: {"description": "not stoppable over HTTP"}})
    def shutdown_engine(background: BackgroundTasks) -> dict[str, str]:
        """Stop the engine once this answer is sent: the running job is checkpointed and queued jobs
        stay queued on disk; the next engine started goes on with them."""
        if shutdown is None:
            raise HTTPException(501, "this engine cannot be stopped over HTTP; stop its process")
        background.add_task(shutdown)
        return {"detail": "the engine is stopping; its jobs go on when it is started again"}

    @api.get("/health", response_model=Health)
    async def health() -> Health:
        waiting, running = queue.counts()
        decoding, _ = decoders.counts()
        return Health(version=__version__, device=queue.device, queued=waiting, running=running, decoding=decoding,
                      max_queued=queue.max_queued, clip=default_clip(), saliency_clip=default_saliency_clip(),
                      uptime_s=round(time.time() - started, 1), pid=os.getpid())

    @api.get("/models", response_model=Models)
    def models() -> Models:
        """Default models, models in memory, and which OpenAI weights files are present."""
        try:
            check_present([("clip", default_clip()), ("saliency_clip", default_saliency_clip())])
            missing: list[str] = []
        except WeightsMissingError as exc:
            missing = exc.detail["missing"]
        return Models(clip=default_clip(), saliency_clip=default_saliency_clip(), loaded=queue.loaded_models(),
                      weights=available_models(), missing=missing, weights_folder=str(weights_folder()))

    app.include_router(api)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(JobNotFound)
    async def not_found(_: Request, exc: JobNotFound) -> JSONResponse:
        return JSONResponse({"detail": exc.args[0]}, 404)

    @app.exception_handler(JobNotSaved)
    async def not_saved(_: Request, exc: JobNotSaved) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 507)

    @app.exception_handler(QueueFull)
    async def queue_full(_: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 429, headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc.errors())}, 422)

    # the last added runs first
    app.add_middleware(BodyLimit, max_bytes=max_body)
    app.add_middleware(TokenCheck, token=token)
    app.add_middleware(HostCheck, allowed=hosts)
    app.add_middleware(PageHeaders)
    return app


def validation_message(errors: Any) -> str:
    """pydantic's error list as one line: ``settings.strokes: Input should be ... ; ...``."""
    parts = []
    for err in errors:
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        where = ".".join(loc) or "request body"
        msg = err.get("msg", "invalid")
        if err.get("type") == "json_invalid":
            where, msg = "request body", f"not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts) + " (the request format is in /openapi.json)"


def json_text(value: Any) -> str:
    """Strict JSON: NaN and infinities (which ``json.dumps`` writes as bare words no JSON parser
    takes) become null."""
    def finite(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [finite(x) for x in v]
        return v

    return json.dumps(finite(value), allow_nan=False)


async def _events(queue: JobQueue, job: Job) -> AsyncIterator[str]:
    with queue.listen(job) as changed:
        while True:
            changed.clear()
            status = queue.snapshot(job)
            sent = time.monotonic()
            yield f"event: status\ndata: {json_text(status)}\n\n"
            if status["state"] in TERMINAL:
                return
            while True:
                try:
                    await asyncio.wait_for(changed.wait(), SSE_KEEPALIVE_S)
                    break
                except asyncio.TimeoutError:
                    yield ": keepalive\n\n"
            # coalesce progress, but never hold back the end of the job
            while job.state not in TERMINAL and time.monotonic() < sent + SSE_MIN_INTERVAL_S:
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), sent + SSE_MIN_INTERVAL_S - time.monotonic())
                except asyncio.TimeoutError:
                    break


class PageHeaders:
    """ASGI middleware: every response carries ``PAGE_HEADERS`` (CSP, no framing, no referrer,
    no sniffing) unless it set its own value: the preview page, its static files, refusals
    and the API alike, so no new page or file can be served without them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in PAGE_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in self.extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413, by Content-Length
    before reading anything, else while reading (chunked uploads), and bodies that stall for
    ``idle_s`` seconds with 408 (a client trickling its body would hold a connection forever);
    the app then gets the body from a buffer. Our own, since FastAPI's body limit exists only
    in recent releases."""

    def __init__(self, app: ASGIApp, max_bytes: int, idle_s: float = BODY_IDLE_S) -> None:
        self.app, self.max_bytes, self.idle_s = app, max_bytes, idle_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(int(declared), scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            try:
                message = await asyncio.wait_for(receive(), self.idle_s)
            except asyncio.TimeoutError:
                detail = f"the request body stopped arriving for {self.idle_s:g} s; send it again"
                await JSONResponse({"detail": detail}, 408, headers={"Connection": "close"})(scope, receive, send)
                return
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._refuse(size, scope, receive, send)
                return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()             # after the body: wait for the disconnect
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, size: int, scope: Scope, receive: Receive, send: Send) -> None:
        detail = (f"the request is {size / 2**20:.1f} MB (or more); the engine accepts up to "
                  f"{self.max_bytes / 2**20:.0f} MB of base64: send a smaller or more compressed image (JPEG)")
        # Connection: close, as the unread rest of the body must not be taken for a next request
        await JSONResponse({"detail": detail}, 413, headers={"Connection": "close"})(scope, receive, send)
