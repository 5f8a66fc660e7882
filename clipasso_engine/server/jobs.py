"""The job queue: jobs wait in order and one worker thread runs them on the engine's device.

One worker, because one device: a sketch already fills the GPU (or every CPU core) with all its
seeds and levels in one batch, and CLIP models are cached per device name (``get_clip``), so a
second job on the same device would only slow the first. The worker is a plain thread calling
``sketch()``; HTTP handlers read job state under one lock and are woken through asyncio events
when it changes.

With a ``JobStore`` every job is also kept on disk (``store.py``): its request when queued, its
state when it changes, a checkpoint of the optimizer every ``checkpoint_seconds`` while it runs,
its result when it ends. A new queue reads them back: finished jobs answer again, queued and
interrupted ones run again in their order, each from its last checkpoint. A failed write (disk
full) costs that write only: the job and the engine go on, the files keep the previous state.

Finished jobs stay for ``keep_seconds`` (7 days), at most ``keep_jobs`` of them and ``max_bytes``
on disk (oldest out first; queued and running jobs are never removed); results are also cached
by a hash of (image, mask, settings, start strokes, locks), so asking again answers at once, and
an identical job still queued or running is not run twice: its submitters share it.
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
from typing import Any, Callable, Iterator, Optional

import torch

from ..api import sketch
from ..errors import ClipassoError
from ..optimize import LoopState
from ..result import SketchResult, finite_or_none
from ..settings import SketchSettings
from ..strokes import Stroke
from ..svg import strokes_to_svg
from .store import Damaged, JobStore, Stored

log = logging.getLogger("clipasso.server")

TERMINAL = frozenset({"done", "failed", "cancelled"})
OOM_MESSAGE = ("the {device} ran out of memory: lower seeds, levels, strokes or augmentations, "
               "or send a smaller image (or run the engine with --device cpu)")
DAY = 86400.0


class QueueFull(Exception):
    """The queue holds ``max_queued`` waiting jobs already."""


class JobNotFound(KeyError):
    """No job with that id (never existed, or finished long enough ago to be forgotten)."""


class JobNotSaved(Exception):
    """A new job could not be written to disk (full?): refused rather than kept where a restart loses it."""


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

    def to_record(self) -> dict[str, Any]:
        """Everything but the photo and mask bytes, as JSON (``request.json``)."""
        return {"settings": self.settings.model_dump(mode="json"), "width": self.width, "height": self.height,
                "init_strokes": [s.to_json() for s in self.init_strokes] if self.init_strokes else None,
                "locked": list(self.locked), "mask": self.mask is not None}

    @classmethod
    def from_record(cls, record: dict[str, Any], image: bytes, mask: Optional[bytes]) -> "Work":
        """Raises ``ValueError`` (pydantic's included) for a record this engine cannot use."""
        init = record.get("init_strokes")
        return cls(image=image, settings=SketchSettings.model_validate(record["settings"]),
                   width=int(record["width"]), height=int(record["height"]),
                   init_strokes=[Stroke.from_json(s) for s in init] if init else None,
                   locked=tuple(int(i) for i in record.get("locked", ())), mask=mask)


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
    images: int = 1                          # CLIP images per step: groups (levels × seeds) × (1 + augmentations)
    state: str = "queued"
    created: float = field(default_factory=time.time)
    started: Optional[float] = None
    finished: Optional[float] = None
    iteration: int = 0
    loss: Optional[float] = None
    eta_s: Optional[float] = None
    preview_svg: Optional[str] = None
    regions: list[dict[str, Any]] = field(default_factory=list)   # the drawn regions (photo px), for the preview
    error: Optional[str] = None
    error_kind: Optional[str] = None         # ClipassoError.kind of the failure; "internal" for a bug
    error_detail: Optional[dict[str, Any]] = None   # its facts for clients (e.g. the missing weights files)
    result: Optional[dict[str, Any]] = None  # done, or cancelled with the best strokes so far
    cached: bool = False
    resumed_from: Optional[int] = None       # the step a job interrupted by a restart went on from
    disk_bytes: Optional[int] = None         # size of its folder, once it ended (it no longer changes)
    cancel: threading.Event = field(default_factory=threading.Event)
    listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=set)
    # pace of the optimization loop, for the ETA: (monotonic time, iteration) at its first step
    # (that step warms up and is slower, so the pace is measured from its end)
    first_step: Optional[tuple[float, int]] = None
    last_preview: float = 0.0

    def record(self) -> dict[str, Any]:
        """The fields that change, as JSON (``state.json``)."""
        return {"state": self.state, "created": self.created, "started": self.started, "finished": self.finished,
                "iteration": self.iteration, "loss": self.loss, "error": self.error, "cached": self.cached,
                "resumed_from": self.resumed_from, "error_kind": self.error_kind, "error_detail": self.error_detail}


class JobQueue:
    """Jobs by id, the waiting line, the result cache and the worker thread.

    ``device``: where jobs whose settings say ``device="auto"`` run (a resolved name: cpu, cuda,
    mps). ``store``: where jobs are kept on disk (None: in memory only, lost with the process);
    its jobs are read back here. ``preview_interval``: seconds between preview SVGs of a running
    job. ``checkpoint_seconds``: between checkpoints of a running job. ``clock``: Unix time (tests
    age jobs with their own).
    """

    def __init__(
        self,
        device: str,
        *,
        store: Optional[JobStore] = None,
        max_queued: int = 32,
        keep_jobs: int = 2000,
        keep_seconds: float = 7 * DAY,
        max_bytes: int = 2**30,
        cache_size: int = 64,
        preview_interval: float = 0.25,
        checkpoint_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.device, self.store = device, store
        self.max_queued = max_queued
        self.keep_jobs, self.keep_seconds, self.max_bytes, self.cache_size = keep_jobs, keep_seconds, max_bytes, cache_size
        self.preview_interval, self.checkpoint_seconds, self.clock = preview_interval, checkpoint_seconds, clock
        self._loaded: set[str] = set()
        self._image_step_s: Optional[float] = None        # seconds per CLIP image per step, measured here
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._active: dict[str, Job] = {}                 # key → its queued or running job
        self._cache: OrderedDict[str, tuple[float, dict[str, Any], str]] = OrderedDict()  # key → (time, result, svg)
        self._lock = threading.Lock()
        self._submitting = threading.Lock()               # one submission at a time: dedupe, then disk, then queue
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._worker = threading.Thread(target=self._run_worker, name=f"clipasso-worker-{device}", daemon=True)
        if store is not None:
            self._load(store)

    # --- life -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker, waiting up to ``timeout`` s for the running job to notice (before its
        next step). With a store the jobs only pause: the running one is checkpointed and stays
        "running" on disk, the queued ones stay queued, and the next engine goes on with them.
        Without one, every queued and running job is cancelled."""
        ended = []
        with self._lock:
            self._stopping = True
            if self.store is None:
                for job in list(self._waiting):
                    self._finish_locked(job, "cancelled")
                    ended.append(job)
                self._waiting.clear()
                for job in self._jobs.values():
                    if job.state == "running":
                        job.cancel.set()
            self._wake.notify_all()
        self._worker.join(timeout)

    # --- what handlers call -----------------------------------------------------------------------
    def submit(self, work: Work) -> Job:
        """Queue ``work`` (its ``settings.device`` "auto" becomes this engine's device); answer at
        once from the cache when possible. When an identical job (same cache key) is queued or
        running, that job is returned, not a new one: it is computed once for both submitters,
        and a cancel of it cancels it for both (``cached`` stays false: nothing was ready yet).
        Raises ``QueueFull``, ``JobNotSaved``."""
        if work.settings.device == "auto":        # validated again: preset "auto" follows this engine's device
            given = work.settings.model_dump(mode="json", exclude_unset=True)
            work = dataclasses.replace(work, settings=SketchSettings.model_validate({**given, "device": self.device}))
        job = self._new_job(uuid.uuid4().hex, work, work.key(), self.clock())
        with self._submitting:
            with self._lock:
                self._prune_locked()
                same = self._active.get(job.key)
                if same is not None and not same.cancel.is_set():
                    return same
                hit = self._cache.get(job.key)
                if hit is not None:
                    self._cache.move_to_end(job.key)
                    _, result, svg = hit
                    job.cached, job.result, job.preview_svg = True, result, svg
                    job.iteration, job.loss = int(result["engine"].get("iterations", 0)), result.get("loss")
                    job.state, job.started, job.finished, job.work = "done", job.created, job.created, None
                elif len(self._waiting) >= self.max_queued:
                    raise QueueFull(f"the engine already has {self.max_queued} jobs waiting: "
                                    "try again when some have finished, or cancel some")
            if self.store is not None:
                try:
                    self.store.create(job.id, dict(work.to_record(), key=job.key), job.record(), result=job.result,
                                      image=None if job.cached else work.image, mask=None if job.cached else work.mask)
                except OSError as exc:
                    log.warning("job not saved: %s", exc)
                    raise JobNotSaved(f"the engine could not save the job on disk ({exc.strerror or exc}): "
                                      f"free some space in {self.store.folder} and try again") from None
            with self._lock:
                self._jobs[job.id] = job
                if not job.cached:
                    self._waiting.append(job)
                    self._active[job.key] = job
                    self._wake.notify()
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id} here: it never existed on this engine, or it finished more than "
                              f"{_span(self.keep_seconds)} ago and was cleaned up")
        return job

    def cancel(self, job_id: str) -> Job:
        """A queued job is cancelled at once; a running one stops before its next step and keeps
        its best strokes so far as its result."""
        job = self.get(job_id)
        with self._lock:
            if job.state == "queued":
                self._waiting.remove(job)
                self._finish_locked(job, "cancelled")
            elif job.state == "running":
                job.cancel.set()
                self._changed_locked(job)
            else:
                return job
        if job.state == "cancelled":
            self._save_end(job)
        return job

    def cancel_all(self) -> list[Job]:
        """Cancel every queued and running job (as ``cancel``); the jobs it cancelled."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.state in ("queued", "running")]
        return [self.cancel(j.id) for j in jobs]

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
            now = self.clock()
            end = job.finished or now
            return {
                "id": job.id, "state": job.state, "created": job.created, "started": job.started,
                "finished": job.finished,
                "queue_position": self._waiting.index(job) if job.state == "queued" else None,
                "iteration": job.iteration, "iterations": job.iterations,
                "progress": 1.0 if job.state == "done" else min(1.0, job.iteration / max(1, job.iterations)),
                "loss": job.loss, "clip_score": (job.result or {}).get("engine", {}).get("clip_score"),
                "eta_s": self._eta_locked(job),
                "elapsed_s": round(end - job.started, 3) if job.started else None,
                "width": job.width, "height": job.height, "strokes": job.stroke_counts, "clip": job.clip,
                "cached": job.cached, "cancel_requested": job.cancel.is_set(), "error": job.error,
                "error_kind": job.error_kind, "error_detail": job.error_detail,
                "has_result": job.result is not None, "resumed_from": job.resumed_from,
                "preview_svg": job.preview_svg if preview else None,
                "regions": job.regions if preview else [],
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
                job.state, job.started = "running", job.started or self.clock()
                self._changed_locked(job)
            self._run(job)

    def _run(self, job: Job) -> None:
        work = job.work
        assert work is not None
        resume = self._resume_state(job)
        self._save(job, "state", lambda: self.store.write_state(job.id, job.record()))  # type: ignore[union-attr]
        log.info("job %s %s: %s strokes, %s iterations, %s on %s", job.id,
                 "started" if resume is None else f"resumed at step {resume.iteration}", job.stroke_counts,
                 job.iterations, job.clip, work.settings.device)
        try:
            result = sketch(
                work.image, work.settings,
                on_progress=lambda it, loss, strokes: self._progress(job, it, loss, strokes),
                should_stop=lambda: job.cancel.is_set() or self._stopping,
                init_strokes=work.init_strokes, locked=work.locked, mask=work.mask,
                on_checkpoint=(lambda state: self._checkpoint(job, state)) if self.store is not None else None,
                checkpoint_seconds=self.checkpoint_seconds, resume=resume,
            )
            self._done(job, result)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            self._fail(job, OOM_MESSAGE.format(device="GPU"), "memory")
        except MemoryError:
            self._fail(job, OOM_MESSAGE.format(device="computer"), "memory")
        except ClipassoError as exc:           # the user's to fix: photo, settings, weights, device
            self._fail(job, str(exc), exc.kind, exc.detail)
        except OSError as exc:                 # the system's word on a file (disk full, permissions)
            self._fail(job, f"the engine could not read or write a file: {exc}", "os")
        except Exception as exc:  # a bug must cost one job, never the engine
            log.exception("job %s failed", job.id)
            self._fail(job, f"internal error ({type(exc).__name__}), see the engine log", "internal")

    def _resume_state(self, job: Job) -> Optional[LoopState]:
        """The job's last checkpoint, if an earlier engine ran it; an unreadable one is logged
        and the job starts over."""
        data = self.store.read_checkpoint(job.id) if self.store is not None else None
        if data is None:
            return None
        try:
            state = LoopState.from_bytes(data)
        except ValueError as exc:
            log.warning("job %s: its checkpoint is damaged (%s): it starts over", job.id, exc)
            state = None
        with self._lock:
            job.resumed_from = job.iteration = state.iteration if state is not None else 0
            self._changed_locked(job)
        return state

    def _checkpoint(self, job: Job, state: LoopState) -> None:
        data = state.to_bytes()
        if self._save(job, f"checkpoint at step {state.iteration}", lambda: self.store.write_checkpoint(job.id, data)):  # type: ignore[union-attr]
            record = dict(job.record(), iteration=state.iteration)
            self._save(job, "state", lambda: self.store.write_state(job.id, record))  # type: ignore[union-attr]

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
                self._image_step_s = per_step / job.images         # the next jobs' first estimate
            if svg is not None:
                job.preview_svg = svg
            self._changed_locked(job)

    def _done(self, job: Job, result: SketchResult) -> None:
        stopped = result.engine.get("stopped")
        if stopped == "cancelled" and not job.cancel.is_set() and self.store is not None:
            log.info("job %s paused at step %s: it goes on when the engine starts again", job.id, job.iteration)
            return                                   # the engine stops; on disk the job is "running"
        data, svg = result.to_json(), result.to_svg()
        with self._lock:
            self._loaded.update(filter(None, (result.engine.get("clip"), result.engine.get("saliency_clip"))))
            job.result, job.preview_svg, job.loss = data, svg, result.loss
            job.iteration = int(result.engine.get("iterations", job.iteration))
            if stopped != "cancelled":
                self._cache[job.key] = (self.clock(), data, svg)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            self._finish_locked(job, "cancelled" if stopped == "cancelled" else "done")
        self._save_end(job)
        log.info("job %s %s: %s iterations (%s) in %.1f s", job.id, job.state, job.iteration, stopped,
                 job.finished - (job.started or job.finished))

    def _fail(self, job: Job, message: str, kind: str = "error", detail: Optional[dict[str, Any]] = None) -> None:
        log.warning("job %s failed: %s", job.id, message)
        with self._lock:
            job.error, job.error_kind, job.error_detail = message, kind, detail or None
            self._finish_locked(job, "failed")
        self._save_end(job)

    # --- on disk ------------------------------------------------------------------------------------
    def _save(self, job: Job, what: str, write: Callable[[], None]) -> bool:
        """One write of ``job``'s files; a failure (disk full) is logged and costs that write only."""
        if self.store is None:
            return True
        try:
            write()
            return True
        except OSError as exc:
            log.warning("job %s: its %s was not saved (%s); it goes on, its files keep the previous one",
                        job.id, what, exc)
            return False

    def _save_end(self, job: Job) -> None:
        """An ended job's result, then its state; then its photo and checkpoint go."""
        store = self.store
        if store is None:
            return
        if job.result is not None and not self._save(job, "result", lambda: store.write_result(job.id, job.result)):  # type: ignore[arg-type]
            return                                   # "running" on disk: a restart computes it again
        if self._save(job, "state", lambda: store.write_state(job.id, job.record())):
            self._save(job, "cleanup", lambda: store.ended(job.id))
        job.disk_bytes = None                    # measured again, without the photo
        with self._lock:
            self._prune_locked()

    def _load(self, store: JobStore) -> None:
        """Read back the jobs of an earlier engine: finished ones answer again (and fill the cache),
        queued and interrupted ones wait again in their order. A damaged folder is listed as a
        failed job saying so (it goes when it is old enough), never raised."""
        pending = []
        for item in store.load():
            try:
                if isinstance(item, Damaged):
                    raise ValueError(item.error)
                job = self._stored_job(item)
            except (ValueError, KeyError, TypeError) as exc:      # pydantic's ValidationError is a ValueError
                mtime = item.mtime if isinstance(item, Damaged) else self.clock()
                log.warning("job folder %s is damaged (%s): listed as failed", store.path(item.id), exc)
                job = Job(id=item.id, work=None, key="", width=0, height=0, stroke_counts=[], clip="", iterations=0,
                          state="failed", created=mtime, finished=mtime,
                          error=f"this job's files on disk are damaged ({exc}); submit it again")
            self._jobs[job.id] = job
            if job.state == "queued":
                pending.append(job)
            elif job.state == "done" and job.result is not None and job.preview_svg is not None:
                self._cache[job.key] = (job.finished or job.created, job.result, job.preview_svg)
        for job in sorted(pending, key=lambda j: j.created):
            self._waiting.append(job)
            self._active.setdefault(job.key, job)
        for key in sorted(self._cache, key=lambda k: self._cache[k][0])[: max(0, len(self._cache) - self.cache_size)]:
            del self._cache[key]
        self._cache = OrderedDict(sorted(self._cache.items(), key=lambda kv: kv[1][0]))
        with self._lock:
            self._prune_locked()
        if self._jobs:
            log.info("%d jobs read back from %s, %d to run", len(self._jobs), store.folder, len(self._waiting))

    def _stored_job(self, item: Stored) -> Job:
        rec, st = item.request, item.state
        work = Work.from_record(rec, item.image if item.image is not None else b"", item.mask)
        job = self._new_job(item.id, work, str(rec["key"]), float(st["created"]))
        job.state = "queued" if st["state"] in ("queued", "running") else st["state"]   # running: interrupted
        job.started, job.finished = st.get("started"), st.get("finished")
        job.iteration, job.loss, job.error = int(st.get("iteration") or 0), st.get("loss"), st.get("error")
        job.cached, job.resumed_from = bool(st.get("cached")), st.get("resumed_from")
        job.error_kind, job.error_detail = st.get("error_kind"), st.get("error_detail")
        if job.state in TERMINAL:
            job.work, job.result = None, item.result
            if item.result is not None:
                job.preview_svg = SketchResult.from_json(item.result).to_svg()
        return job

    def _new_job(self, job_id: str, work: Work, key: str, created: float) -> Job:
        s = work.settings
        groups = 1 if work.init_strokes else len(s.stroke_counts) * s.seeds
        return Job(
            id=job_id, work=work, key=key, width=work.width, height=work.height,
            stroke_counts=[len(work.init_strokes)] if work.init_strokes else s.stroke_counts,
            clip=s.clip, iterations=s.iterations, created=created,
            images=groups * (s.augmentations + 1),
            regions=[r.model_dump(mode="json") for r in s.regions],
        )

    def _eta_locked(self, job: Job) -> Optional[float]:
        """Seconds until ``job`` ends at the pace measured on this engine: a running job's own pace
        once it has taken two steps, else the pace per image of earlier jobs times its images per
        step; a queued job adds what runs and waits ahead of it. None until any pace is known.
        Early stopping may end a job sooner."""
        if job.state == "running" and job.eta_s is not None:
            return job.eta_s
        if job.state not in ("queued", "running") or self._image_step_s is None:
            return None

        def left(j: Job) -> float:
            if j.state == "running" and j.eta_s is not None:
                return j.eta_s
            return (j.iterations - j.iteration) * j.images * self._image_step_s  # type: ignore[operator]

        ahead = []
        if job.state == "queued":
            ahead = [j for j in self._jobs.values() if j.state == "running"]
            ahead += list(self._waiting)[: self._waiting.index(job)]
        return round(sum(left(j) for j in ahead) + left(job), 2)

    # --- bookkeeping (caller holds the lock) ----------------------------------------------------------
    def _finish_locked(self, job: Job, state: str) -> None:
        job.state, job.finished, job.work = state, self.clock(), None
        if self._active.get(job.key) is job:
            del self._active[job.key]
        self._changed_locked(job)

    def _changed_locked(self, job: Job) -> None:
        for loop, event in list(job.listeners):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:                 # that loop is closed: its listener is gone
                job.listeners.discard((loop, event))

    def _prune_locked(self) -> None:
        """Forget ended jobs older than ``keep_seconds``, beyond ``keep_jobs``, or (oldest first)
        while the job folders hold more than ``max_bytes``; expire cached results as old."""
        now = self.clock()
        ended = sorted((j for j in self._jobs.values() if j.state in TERMINAL), key=lambda j: j.finished or 0)
        excess = len(ended) - self.keep_jobs
        gone = {j.id: j for i, j in enumerate(ended) if i < excess or now - (j.finished or now) > self.keep_seconds}
        if self.store is not None:
            total = sum(self._disk_bytes(j) for j in self._jobs.values() if j.id not in gone)
            for job in ended:
                if total <= self.max_bytes:
                    break
                if job.id not in gone:
                    gone[job.id] = job
                    total -= self._disk_bytes(job)
        for job in gone.values():
            del self._jobs[job.id]
            if self.store is not None:
                self.store.remove(job.id)
        for key, (made, _, _) in list(self._cache.items()):
            if now - made > self.keep_seconds:
                del self._cache[key]

    def _disk_bytes(self, job: Job) -> int:
        assert self.store is not None
        try:
            size = self.store.size(job.id)
        except OSError:                          # a folder someone else removed
            return 0
        if job.state in TERMINAL:
            job.disk_bytes = size if job.disk_bytes is None else job.disk_bytes
            return job.disk_bytes
        return size


def _span(seconds: float) -> str:
    """``7 days``, ``60 min``, ``30 s``."""
    if seconds >= DAY:
        return f"{seconds / DAY:g} days"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
