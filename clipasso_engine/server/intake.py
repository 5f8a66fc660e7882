"""Check an uploaded job before it is queued: decode the base64 photo (and mask), refuse what
would fail later, and turn the request into the queue's ``Work``.

Refusing here answers at once with a 4xx the caller can act on, instead of a job that fails
after waiting in line. The photo is fully decoded once (``load_image`` checks the format and
size from the header first, so PostScript and decompression bombs cost nothing, and bounds the
memory of decodes in progress) and then dropped: the queue keeps the smaller encoded bytes.

Decoding takes up to seconds, so it never runs on the event loop nor in the thread pool that
the other routes share: ``Decoders`` runs it on a few threads of its own, with a bounded line
of uploads waiting (503 beyond it) and a time limit (503 when a decode takes longer). Health,
status, list and cancel answer whatever the uploads do.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from fastapi import HTTPException
from PIL import Image

from ..clip_weights import names_a_file_elsewhere, weights_folders
from ..image import ImageError, load_image, make_canvas, photo_size
from ..limits import MAX_BATCH_STROKES
from ..regions import RegionError, canvas_masks
from .jobs import Work
from .models import JobRequest

UNPROCESSABLE = 422
UNAVAILABLE = 503
DECODERS = 4                         # threads checking uploads; their memory is bounded by image.DECODE_BUDGET_PIXELS
DECODE_WAITING = 16                  # uploads that may wait for one of them; more are refused with 503
DECODE_TIMEOUT_S = 30.0              # an upload not checked by then is answered 503 (its thread finishes on its own)
T = TypeVar("T")


class Decoders:
    """Runs the slow part of a request (decoding the upload, hashing it into the queue) on
    ``threads`` threads of its own, off the event loop, at most ``threads + waiting`` requests
    at a time and each for at most ``timeout_s`` seconds (``CLIPASSO_DECODE_TIMEOUT_S``).

    A thread cannot be stopped from outside: a request that times out is answered at once, and
    its thread keeps counting against the limit until it ends. The formats and the pixel budget
    of ``load_image`` bound how long that is."""

    def __init__(self, threads: int = DECODERS, waiting: int = DECODE_WAITING, timeout_s: float | None = None) -> None:
        self.limit = threads + waiting
        self.timeout_s = timeout_s if timeout_s is not None else float(os.environ.get("CLIPASSO_DECODE_TIMEOUT_S") or DECODE_TIMEOUT_S)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="clipasso-decode")
        self._lock = threading.Lock()
        self._pending = 0                    # requests given to the pool and not finished there
        self._running = 0                    # of those, the ones a thread is working on now

    def counts(self) -> tuple[int, int]:
        """(requests being decoded now, requests waiting for a thread)."""
        with self._lock:
            return self._running, self._pending - self._running

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a decoding thread; raises ``HTTPException`` 503 when too many wait or it
        takes longer than the time limit, and when the computer is out of memory."""
        with self._lock:
            if self._pending >= self.limit:
                raise HTTPException(UNAVAILABLE, f"the engine is checking {self._pending} uploads already: try again in "
                                                 "a few seconds", headers={"Retry-After": "2"})
            self._pending += 1
        try:
            future = self._pool.submit(self._call, fn)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(self._finished)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except asyncio.TimeoutError:
            raise HTTPException(UNAVAILABLE, f"the upload was not decoded within {self.timeout_s:g} s (the engine is busy, "
                                             "or the image is very large): try again, or send a smaller image") from None
        except MemoryError:
            raise HTTPException(UNAVAILABLE, "the engine ran out of memory decoding this image: try again when fewer "
                                             "jobs arrive at once, or send a smaller image") from None

    def _call(self, fn: Callable[[], T]) -> T:
        with self._lock:
            self._running += 1
        try:
            return fn()
        finally:
            with self._lock:
                self._running -= 1

    def _finished(self, _: object) -> None:
        with self._lock:
            self._pending -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def work_from_request(body: JobRequest, *, allow_model_paths: bool = False) -> Work:
    """The queue's ``Work`` for a validated request body; raises ``HTTPException`` (422) naming
    the field and the problem. Weights files outside the engine's weights folders are refused
    unless ``allow_model_paths`` (``clipasso serve --allow-model-paths``)."""
    _check_batch(body)
    if not allow_model_paths:
        _check_models(body)
    image, photo = _decode(body.image, "image")
    mask = None
    if body.mask is not None:
        mask, mask_img = _decode(body.mask, "mask")
        if photo_size(mask_img) != photo_size(photo):
            raise HTTPException(UNPROCESSABLE, "mask: it is {}×{} but the image is {}×{}; send a mask of the image's "
                                               "size".format(*photo_size(mask_img), *photo_size(photo)))
    if body.settings.mask and mask is None:
        raise HTTPException(UNPROCESSABLE, "settings.mask is on but no mask was sent: add 'mask' (white = keep) "
                                           "or turn settings.mask off")
    if body.settings.regions:
        try:                                       # a polygon that misses the photo fails now, not after the queue
            canvas_masks(body.settings.regions, make_canvas(photo))
        except RegionError as exc:
            raise HTTPException(UNPROCESSABLE, f"settings.{exc}") from None
    init = body.init_strokes or None
    n = len(init or ())
    bad = [i for i in body.locked if not 0 <= i < n]
    if bad:
        raise HTTPException(UNPROCESSABLE, f"locked: indices {bad} do not name any of the {n} init_strokes")
    width, height = photo_size(photo)
    return Work(image=image, settings=body.settings, width=width, height=height,
                init_strokes=init, locked=tuple(body.locked), mask=mask)


def _check_batch(body: JobRequest) -> None:
    """Refuse a job whose one batch (every level of every seed) is too big to be worth queueing:
    its memory and time grow with the stroke count of that batch."""
    s = body.settings
    counts = [len(body.init_strokes)] if body.init_strokes else s.stroke_counts
    total = sum(counts) * s.seeds
    if total > MAX_BATCH_STROKES:
        what = f"levels {counts}" if len(counts) > 1 else f"{counts[0]} strokes"
        raise HTTPException(UNPROCESSABLE, f"settings: {what} × {s.seeds} seeds is {total} strokes optimized together; "
                                           f"the engine takes up to {MAX_BATCH_STROKES}: use fewer seeds, levels or strokes")


def _check_models(body: JobRequest) -> None:
    """A job names CLIP models by name, or weights files inside the weights folders only: the
    engine must not read (or say anything about) other files of the machine it runs on."""
    s = body.settings
    for field, spec in (("clip", s.clip), ("saliency_clip", s.saliency_clip)):
        if names_a_file_elsewhere(spec):
            folders = ", ".join(str(f) for f in weights_folders())
            raise HTTPException(UNPROCESSABLE, f"settings.{field}: {spec!r} is neither a CLIP model name (RN101, "
                                               f"ViT-B-32, ...) nor a weights file in the engine's weights folders "
                                               f"({folders}); put the file there, or start the engine with "
                                               "--allow-model-paths to let jobs name any file")


def _decode(text: str, field: str) -> tuple[bytes, Image.Image]:
    """Encoded bytes and the decoded image of a base64 field (a ``data:`` URI prefix is allowed)."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(UNPROCESSABLE, f"{field}: not valid base64; send the image file's bytes base64-encoded") from None
    try:
        return data, load_image(data)
    except ImageError as exc:
        raise HTTPException(UNPROCESSABLE, f"{field}: {exc}") from None
