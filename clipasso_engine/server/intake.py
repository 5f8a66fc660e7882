"""Check an uploaded job before it is queued: decode the base64 photo (and mask), refuse what
would fail later, and turn the request into the queue's ``Work``.

Refusing here answers at once with a 4xx the caller can act on, instead of a job that fails
after waiting in line. The photo is fully decoded once (``load_image`` reads the header first,
so a decompression bomb costs nothing) and then dropped: the queue keeps the smaller encoded
bytes. Decoding a photo near the pixel limit takes up to ~1 GB, so at most ``DECODERS`` uploads
decode at a time (requests run in a thread pool of dozens); the others wait their turn.
"""

from __future__ import annotations

import base64
import binascii
import threading

from fastapi import HTTPException
from PIL import Image

from ..image import ImageError, load_image
from ..strokes import Stroke
from .jobs import Work
from .models import JobRequest

UNPROCESSABLE = 422
DECODERS = 2                         # uploads decoded at the same time
MAX_BATCH_STROKES = 1024             # strokes optimized together: sum of the levels × seeds
_decoding = threading.BoundedSemaphore(DECODERS)


def work_from_request(body: JobRequest) -> Work:
    """The queue's ``Work`` for a validated request body; raises ``HTTPException`` (422) naming
    the field and the problem."""
    _check_batch(body)
    image, photo = _decode(body.image, "image")
    mask = None
    if body.mask is not None:
        mask, mask_img = _decode(body.mask, "mask")
        if mask_img.size != photo.size:
            raise HTTPException(UNPROCESSABLE, f"mask: it is {mask_img.width}×{mask_img.height} but the image is "
                                               f"{photo.width}×{photo.height}; send a mask of the image's size")
    if body.settings.mask and mask is None:
        raise HTTPException(UNPROCESSABLE, "settings.mask is on but no mask was sent: add 'mask' (white = keep) "
                                           "or turn settings.mask off")
    init = None
    if body.init_strokes:
        try:
            init = [Stroke(points=tuple(s.points), width=s.width, color=s.color, opacity=s.opacity)  # type: ignore[arg-type]
                    for s in body.init_strokes]
        except ValueError as exc:
            raise HTTPException(UNPROCESSABLE, f"init_strokes: {exc}") from None
    n = len(init or ())
    bad = [i for i in body.locked if not 0 <= i < n]
    if bad:
        raise HTTPException(UNPROCESSABLE, f"locked: indices {bad} do not name any of the {n} init_strokes")
    return Work(image=image, settings=body.settings, width=photo.width, height=photo.height,
                init_strokes=init, locked=tuple(body.locked), mask=mask)


def _check_batch(body: JobRequest) -> None:
    """Refuse a job whose one batch (every level of every seed) is too big to be worth queueing:
    its memory and time grow with the stroke count of that batch."""
    s = body.settings
    counts = [len(body.init_strokes)] if body.init_strokes else s.stroke_counts
    total = sum(counts) * int(s.seeds)  # type: ignore[arg-type]
    if total > MAX_BATCH_STROKES:
        what = f"levels {counts}" if len(counts) > 1 else f"{counts[0]} strokes"
        raise HTTPException(UNPROCESSABLE, f"settings: {what} × {s.seeds} seeds is {total} strokes optimized together; "
                                           f"the engine takes up to {MAX_BATCH_STROKES}: use fewer seeds, levels or strokes")


def _decode(text: str, field: str) -> tuple[bytes, Image.Image]:
    """Encoded bytes and the decoded image of a base64 field (a ``data:`` URI prefix is allowed)."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(UNPROCESSABLE, f"{field}: not valid base64; send the image file's bytes base64-encoded") from None
    try:
        with _decoding:
            return data, load_image(data)
    except ImageError as exc:
        raise HTTPException(UNPROCESSABLE, f"{field}: {exc}") from None
