"""Check an uploaded job before it is queued: decode the base64 photo (and mask), refuse what
would fail later, and turn the request into the queue's ``Work``.

Refusing here answers at once with a 4xx the caller can act on, instead of a job that fails
after waiting in line. The photo is fully decoded once (``load_image`` reads the header first,
so a decompression bomb costs nothing) and then dropped: the queue keeps the smaller encoded
bytes.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import HTTPException
from PIL import Image

from ..image import ImageError, load_image
from ..strokes import Stroke
from .jobs import Work
from .models import JobRequest

UNPROCESSABLE = 422


def work_from_request(body: JobRequest) -> Work:
    """The queue's ``Work`` for a validated request body; raises ``HTTPException`` (422) naming
    the field and the problem."""
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
