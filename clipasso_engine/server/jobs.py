"""The job queue: jobs wait in order and one worker thread runs them on the engine's device.

One worker, because one device: a sketch already fills the GPU (or every CPU core) with all its
seeds and levels in one batch, and CLIP models are cached per device name (``get_clip``), so a
second job on the same device would only slow the first. The worker is a plain thread calling
``sketch()``; HTTP handlers read job state under one lock and are woken through asyncio events
when it changes.

Finished jobs stay for ``keep_seconds`` (at most ``keep_jobs`` of them); results are also cached
by a hash of (image, mask, settings, start strokes, locks), so asking again answers at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import torch

from ..api import sketch
from ..clip_models import WeightsMissingError
from ..image import ImageError
from ..result import SketchResult, finite_or_none
from ..settings import SketchSettings
from ..strokes import Stroke
from ..svg import strokes_to_svg

log = logging.getLogger("clipasso.server")

TERMINAL = frozenset({"done", "failed", "cancelled"})
OOM_MESSAGE = ("the {device} ran out of memory: lower seeds, levels, strokes or augmentations, "
               "or send a smaller image (or run the engine with --device cpu)")


class QueueFull(Exception):
    """The queue holds ``max_queued`` waiting jobs already."""


class JobNotFound(KeyError):
    """No job with that id (never existed, or finished long enough ago to be forgotten)."""


@dataclass(frozen=True)
class Work:
    """What a job computes: encoded photo (and mask) bytes as uploaded, already checked."""

    image: bytes
    settings: SketchSettings
    width: int
    height: int
    init_strokes: Optional[list[Stroke]] = None
    locked: tuple[int, ...] = ()
    mask: Optional[bytes] = None

    def key(self) -> str:
        """Cache key: equal for requests that must give the same result."""
        h = hashlib.sha256()
        for part in (self.image, self.mask or b""):
            h.update(hashlib.sha256(part).digest())
        extra = {
            "settings": self.settings.model_dump(mode="json"),
            "init": [s.to_json() for s in self.init_strokes] if self.init_strokes else None,
            "locked": sorted(self.locked),
        }
        h.update(json.dumps(extra, sort_keys=True).encode("utf-8"))
        return h.hexdigest()


@dataclass(eq=False)                 # a job is itself: the queue finds it by identity
class Job:
    """A job and its live state; mutated by the worker, read by handlers (under the queue's lock)."""

    id: str
    work: Optional[Work]                     # dropped once finished, to free the photo's bytes
    key: str                                 # ``work.key()``: hashing the photo once is enough
    width: int
    height: int
    stroke_counts: list[int]
    clip: str
    iterations: int
    state: str = "queued"
    created: float = field(default_factory=time.time)
    started: Optional[float] = None
    finished: Optional[float] = None
    iteration: int = 0
    loss: Optional[float] = None
    eta_s: Optional[float] = None
    preview_svg: Optional[str] = None
    error: Optional[str] = None
    result: Optional[dict[str, Any]] = None
    cached: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)
    listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=set)
    # pace of the optimization loop, for the ETA: (monotonic time, iteration) at its first step
    first_step: Optional[tuple[float, int]] = None
    last_preview: float = 0.0


class JobQueue:
    """Jobs by id, the waiting line, the result cache and the worker thread.

    ``device``: where jobs whose settings say ``device="auto"`` run (a resolved name: cpu, cuda,
    mps). ``preview_interval``: seconds between preview SVGs of a running job.
    """

    def __init__(
        self,
        device: str,
        *,
        max_queued: int = 32,
        keep_jobs: int = 200,
        keep_seconds: float = 3600.0,
        cache_size: int = 64,
        preview_interval: float = 0.25,
    ) -> None:
        self.device = device
        self.max_queued = max_queued
        self.keep_jobs, self.keep_seconds, self.cache_size = keep_jobs, keep_seconds, cache_size
        self.preview_interval = preview_interval
        self._loaded: set[str] = set()
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._cache: OrderedDict[str, tuple[float, dict[str, Any], str]] = OrderedDict()  # key → (time, result, svg)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._worker = threading.Thread(target=self._run_worker, name=f"clipasso-worker-{device}", daemon=True)

    # --- life -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every job and wait (up to ``timeout`` s) for the running one to notice."""
        with self._lock:
            self._stopping = True
            for job in list(self._waiting):
                self._finish_locked(job, "cancelled")
            self._waiting.clear()
            for job in self._jobs.values():
                if job.state == "running":
                    job.cancel.set()
            self._wake.notify_all()
        self._worker.join(timeout)

    # --- what handlers call -----------------------------------------------------------------------
    def submit(self, work: Work) -> Job:
        """Queue ``work`` (its ``settings.device`` "auto" becomes this engine's device); answer at
        once from the cache when possible. Raises ``QueueFull``."""
        if work.settings.device == "auto":
            work = dataclasses.replace(work, settings=work.settings.model_copy(update={"device": self.device}))
        key = work.key()
        s = work.settings
        job = Job(
            id=uuid.uuid4().hex, work=work, key=key, width=work.width, height=work.height,
            stroke_counts=[len(work.init_strokes)] if work.init_strokes else s.stroke_counts,
            clip=s.clip, iterations=int(s.iterations),  # type: ignore[arg-type]
        )
        with self._lock:
            self._prune_locked()
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                _, result, svg = hit
                job.cached, job.result, job.preview_svg = True, result, svg
                job.iteration, job.loss = int(result["engine"].get("iterations", 0)), result.get("loss")
                job.started = job.created
                self._jobs[job.id] = job
                self._finish_locked(job, "done")
                return job
            if len(self._waiting) >= self.max_queued:
                raise QueueFull(f"the engine already has {self.max_queued} jobs waiting: "
                                "try again when some have finished, or cancel some")
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._wake.notify()
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r} here: finished jobs are kept for {self.keep_seconds / 60:.0f} min")
        return job

    def cancel(self, job_id: str) -> Job:
        """A queued job is cancelled at once; a running one stops before its next step."""
        job = self.get(job_id)
        with self._lock:
            if job.state == "queued":
                self._waiting.remove(job)
                self._finish_locked(job, "cancelled")
            elif job.state == "running":
                job.cancel.set()
                self._changed_locked(job)
        return job

    def jobs(self) -> list[Job]:
        """Every remembered job, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def loaded_models(self) -> list[str]:
        """CLIP specs that finished jobs used: ``get_clip`` keeps them in memory."""
        with self._lock:
            return sorted(self._loaded)

    def counts(self) -> tuple[int, int]:
        """(jobs waiting, jobs running)."""
        with self._lock:
            return len(self._waiting), sum(j.state == "running" for j in self._jobs.values())

    def snapshot(self, job: Job, preview: bool = True) -> dict[str, Any]:
        """The job's status fields (``models.JobStatus``), consistent at one instant."""
        with self._lock:
            now = time.time()
            end = job.finished or now
            return {
                "id": job.id, "state": job.state, "created": job.created, "started": job.started,
                "finished": job.finished,
                "queue_position": self._waiting.index(job) if job.state == "queued" else None,
                "iteration": job.iteration, "iterations": job.iterations,
                "progress": 1.0 if job.state == "done" else min(1.0, job.iteration / max(1, job.iterations)),
                "loss": job.loss, "eta_s": job.eta_s if job.state == "running" else None,
                "elapsed_s": round(end - job.started, 3) if job.started else None,
                "width": job.width, "height": job.height, "strokes": job.stroke_counts, "clip": job.clip,
                "cached": job.cached, "cancel_requested": job.cancel.is_set(), "error": job.error,
                "preview_svg": job.preview_svg if preview else None,
            }

    @contextmanager
    def listen(self, job: Job) -> Iterator[asyncio.Event]:
        """An asyncio event (of the running loop) set whenever ``job`` changes; clear it after use."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            job.listeners.add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                job.listeners.discard(entry)

    # --- the worker -------------------------------------------------------------------------------
    def _run_worker(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                job = self._waiting.popleft()
                job.state, job.started = "running", time.time()
                self._changed_locked(job)
            self._run(job)

    def _run(self, job: Job) -> None:
        work = job.work
        assert work is not None
        log.info("job %s started: %s strokes, %s iterations, %s on %s", job.id, job.stroke_counts, job.iterations,
                 job.clip, work.settings.device)
        try:
            result = sketch(
                work.image, work.settings,
                on_progress=lambda it, loss, strokes: self._progress(job, it, loss, strokes),
                should_stop=job.cancel.is_set,
                init_strokes=work.init_strokes, locked=work.locked, mask=work.mask,
            )
            self._done(job, result)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            self._fail(job, OOM_MESSAGE.format(device="GPU"))
        except MemoryError:
            self._fail(job, OOM_MESSAGE.format(device="computer"))
        except (ImageError, WeightsMissingError, ValueError) as exc:
            self._fail(job, str(exc))
        except Exception as exc:  # a bug must cost one job, never the engine
            log.exception("job %s failed", job.id)
            self._fail(job, f"internal error ({type(exc).__name__}: {exc}); the engine log has the details")

    def _progress(self, job: Job, it: int, loss: float, strokes: list[Stroke]) -> None:
        now = time.monotonic()
        svg = None
        if now - job.last_preview >= self.preview_interval:
            job.last_preview = now
            svg = strokes_to_svg(strokes, job.width, job.height)
        with self._lock:
            job.iteration, job.loss = it + 1, finite_or_none(loss)      # NaN/inf: no number to show (JSON has none)
            if job.first_step is None:
                job.first_step = (now, job.iteration)
            else:
                t0, i0 = job.first_step
                per_step = (now - t0) / (job.iteration - i0)
                job.eta_s = round(per_step * (job.iterations - job.iteration), 2)
            if svg is not None:
                job.preview_svg = svg
            self._changed_locked(job)

    def _done(self, job: Job, result: SketchResult) -> None:
        if result.engine.get("stopped") == "cancelled":
            with self._lock:
                self._finish_locked(job, "cancelled")
            log.info("job %s cancelled after %s iterations", job.id, job.iteration)
            return
        data, svg = result.to_json(), result.to_svg()
        with self._lock:
            self._loaded.update(filter(None, (result.engine.get("clip"), result.engine.get("saliency_clip"))))
            job.result, job.preview_svg, job.loss = data, svg, result.loss
            job.iteration = int(result.engine.get("iterations", job.iteration))
            self._cache[job.key] = (time.time(), data, svg)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            self._finish_locked(job, "done")
        log.info("job %s done: %s iterations (%s) in %.1f s", job.id, job.iteration, result.engine.get("stopped"),
                 job.finished - (job.started or job.finished))

    def _fail(self, job: Job, message: str) -> None:
        log.warning("job %s failed: %s", job.id, message)
        with self._lock:
            job.error = message
            self._finish_locked(job, "failed")

    # --- bookkeeping (caller holds the lock) ----------------------------------------------------------
    def _finish_locked(self, job: Job, state: str) -> None:
        job.state, job.finished, job.work = state, time.time(), None
        self._changed_locked(job)

    def _changed_locked(self, job: Job) -> None:
        for loop, event in list(job.listeners):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:                 # that loop is closed: its listener is gone
                job.listeners.discard((loop, event))

    def _prune_locked(self) -> None:
        now = time.time()
        finished = sorted((j for j in self._jobs.values() if j.state in TERMINAL), key=lambda j: j.finished or 0)
        excess = len(finished) - self.keep_jobs
        for i, job in enumerate(finished):
            if i < excess or now - (job.finished or now) > self.keep_seconds:
                del self._jobs[job.id]
        for key, (made, _, _) in list(self._cache.items()):
            if now - made > self.keep_seconds:
                del self._cache[key]
