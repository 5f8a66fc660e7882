"""Load and check photos, and place them on CLIP's square canvas.

The canvas (docs/method.md §1, "ours: aspect ratio") is the photo scaled so its long side is
``CANVAS`` (224) pixels, centred on a white square. Strokes are optimized in canvas pixels and
returned in the photo's own pixels; ``Canvas`` converts between the two.

Photos come from anywhere (uploads to the engine, files given to the CLI), so decoding trusts
nothing in them (docs/security.md):

- only the raster formats in ``FORMATS`` are opened, recognised from their first bytes before
  Pillow sees them; Pillow itself is restricted to those plugins. PostScript/EPS (which Pillow
  hands to Ghostscript, a full interpreter), PDF, ICO and the rest never reach a decoder;
- the pixel count is checked from the header, before decoding (``MAX_PIXELS``);
- a photo is decoded to at most ``MAX_DECODED_PIXELS`` (JPEG decodes at 1/2, 1/4 or 1/8 size
  directly; other formats are reduced right after decoding): the sketch is made on a 224-pixel
  canvas, so more pixels only cost memory. The photo's own size is kept (``photo_size``), and
  strokes come back in the original photo's pixels;
- decodes running at the same time share a budget of ``DECODE_BUDGET_PIXELS``, so many
  uploads at once cannot exhaust the memory.
"""

from __future__ import annotations

import io
import math
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import ImageError
from .limits import MAX_DECODED_PIXELS, MAX_FILE_BYTES, MAX_PIXELS, MIN_SIDE

CANVAS = 224
DECODE_BUDGET_PIXELS = 128_000_000   # pixels of all decodes in progress together (~4 bytes each, twice over while converting)

# The accepted formats: Pillow's name, which is also the MIME subtype in capitals (image/png,
# image/jpeg, …) → (what the user is told, tests of the file's first bytes).
FORMATS: dict[str, tuple[str, tuple[bytes, ...]]] = {
    "PNG": ("PNG", (b"\x89PNG\r\n\x1a\n",)),
    "JPEG": ("JPEG", (b"\xff\xd8\xff",)),
    "WEBP": ("WebP", (b"RIFF",)),                       # and "WEBP" at offset 8, checked below
    "GIF": ("GIF (first frame)", (b"GIF87a", b"GIF89a")),
    "BMP": ("BMP", (b"BM",)),
    "TIFF": ("TIFF", (b"II*\x00", b"MM\x00*")),
}
ALLOWED_FORMATS = ", ".join(label for label, _ in FORMATS.values())
_SIZE_KEY = "clipasso.photo_size"                     # Image.info entry: the photo's size before reduction

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]


def load_image(src: ImageInput, *, max_pixels: int = MAX_PIXELS,
               max_decoded: int = MAX_DECODED_PIXELS) -> Image.Image:
    """Open a photo (path, encoded bytes, PIL image or HxWx3/HxWx4 uint8 array) as RGB, turned
    upright by its EXIF orientation, at most ``max_decoded`` pixels large.

    The returned image may be smaller than the photo: ``photo_size(img)`` is the photo's own
    size (upright), the size strokes are measured in. Transparent pixels are composited on
    white; 16-bit greyscale is scaled to 8 bits. Raises ``ImageError`` for a missing,
    unreadable, corrupt, too small or too large image, or one not in ``FORMATS`` (the format
    and size are checked from the header, before the pixels are decoded, so decompression
    bombs and PostScript cost nothing).
    """
    if isinstance(src, Image.Image) and _SIZE_KEY in src.info:
        return src                                          # made by load_image already
    if isinstance(src, np.ndarray):
        img, size, orientation = _from_array(src), None, 1
    elif isinstance(src, Image.Image):
        img, size, orientation = src, None, src.getexif().get(0x0112, 1)
    else:
        img, size, orientation = _open(src, max_pixels, max_decoded)
    size = size or img.size
    _check_size(*size, max_pixels)
    img = _reduce(img, max_decoded)
    # a phone's portrait photo is stored sideways with an EXIF Orientation tag: sketch it the
    # way every viewer (and Inkscape) shows it, so the strokes' pixels match what the user sees
    if orientation in _TURNS:
        img = img.transpose(_TURNS[orientation])
        if orientation in (5, 6, 7, 8):                     # a quarter turn: width and height swap
            size = (size[1], size[0])
    out = _flatten_alpha(img)
    out.info = {_SIZE_KEY: tuple(size)}
    return out


# EXIF orientation → the transposition that makes the photo upright (as ImageOps.exif_transpose)
_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
          5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_90}


def photo_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of the photo ``img`` was loaded from by ``load_image``, in its own pixels;
    ``img.size`` for any other image."""
    w, h = img.info.get(_SIZE_KEY, img.size)
    return int(w), int(h)


def sniff_format(data: bytes) -> Optional[str]:
    """Pillow's name of the accepted format ``data`` starts with (``FORMATS``), else None."""
    for name, (_, magics) in FORMATS.items():
        if data.startswith(magics) and (name != "WEBP" or data[8:12] == b"WEBP"):
            return name
    return None


class _PixelBudget:
    """Pixels of the decodes in progress, bounded: ``take(n)`` waits until ``n`` more fit (a
    decode larger than the whole budget runs when it is alone)."""

    def __init__(self, pixels: int) -> None:
        self.total, self.used = pixels, 0
        self._free = threading.Condition()

    @contextmanager
    def take(self, n: int) -> Iterator[None]:
        n = min(n, self.total)
        with self._free:
            while self.used and self.used + n > self.total:
                self._free.wait()
            self.used += n
        try:
            yield
        finally:
            with self._free:
                self.used -= n
                self._free.notify_all()


_budget = _PixelBudget(DECODE_BUDGET_PIXELS)


def _open(src: str | os.PathLike | bytes, max_pixels: int,
          max_decoded: int) -> tuple[Image.Image, tuple[int, int], int]:
    """The decoded (already reduced) image of a file or its bytes, its size in the file's
    header and its EXIF orientation."""
    if isinstance(src, bytes):
        data, name = src, "the image data"
    else:
        path = Path(src)
        name = str(path)
        if not path.exists():
            raise ImageError(f"image file not found: {name}")
        if not path.is_file():
            raise ImageError(f"not a file: {name}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImageError(f"{name} is {path.stat().st_size / 2**20:.0f} MiB; images up to {MAX_FILE_BYTES // 2**20} MiB are accepted")
        data = path.read_bytes()
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise ImageError(f"{name} is not a readable image: its format is not one of the accepted ones "
                         f"({ALLOWED_FORMATS}); convert it to PNG or JPEG first")
    try:
        img = Image.open(io.BytesIO(data), formats=[fmt])   # reads the header only
        size = img.size
        _check_size(*size, max_pixels)                      # nothing decoded yet
        orientation = img.getexif().get(0x0112, 1)
        if img.format in ("JPEG", "MPO"):                   # decode at 1/2, 1/4 or 1/8 size when that is enough
            k = math.sqrt(max_decoded / (size[0] * size[1]))
            if k < 1:
                img.draft("RGB" if img.mode == "RGB" else None, (max(1, int(size[0] * k)), max(1, int(size[1] * k))))
        with _budget.take(img.width * img.height):
            img.load()
            img = _reduce(img, max_decoded)                 # the full-size pixels go at once
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:             # Pillow's own header check, far above ours
        raise ImageError(f"{name}: the image is too large ({exc}); the limit is {max_pixels / 1e6:.0f} megapixels — scale it down first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        detail = "not a known image format" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise ImageError(f"{name} is not a readable image ({ALLOWED_FORMATS}): {detail}") from None
    return img, size, orientation


def _reduce(img: Image.Image, max_decoded: int) -> Image.Image:
    """``img`` shrunk by a whole factor (box filter) to at most ``max_decoded`` pixels."""
    factor = math.ceil(math.sqrt(img.width * img.height / max_decoded))
    if factor <= 1:
        return img
    if img.mode == "1":                                     # modes Image.reduce cannot average
        img = img.convert("L")
    elif img.mode in ("P", "PA"):
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    elif img.mode.startswith("I;16"):
        img = img.convert("I")
    return img.reduce(factor)


def _from_array(a: np.ndarray) -> Image.Image:
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ImageError(f"an image array must be H×W×3 (RGB) or H×W×4 (RGBA), got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ImageError(f"an image array must be uint8 (0-255), got {a.dtype}")
    return Image.fromarray(a, "RGBA" if a.shape[2] == 4 else "RGB")


def _check_size(w: int, h: int, max_pixels: int) -> None:
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"the image is {w}×{h} pixels; it needs at least {MIN_SIDE} pixels on each side")
    if w * h > max_pixels:
        raise ImageError(f"the image is {w}×{h} = {w * h / 1e6:.0f} megapixels; the limit is {max_pixels / 1e6:.0f} — scale it down first")


def _flatten_alpha(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # 16-bit / 32-bit greyscale: convert("RGB") would clip, not scale; stretch to 8 bits
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        img = Image.fromarray(np.round(255 * (a - lo) / max(hi - lo, 1e-12)).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        if rgba.getextrema()[3][1] == 0:
            raise ImageError("the image is fully transparent: there is nothing to sketch")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


@dataclass(frozen=True)
class Canvas:
    """A photo on the square CLIP canvas.

    ``pixels``: ``(1, 3, CANVAS, CANVAS)`` float32 RGB in [0, 1], photo centred on white.
    ``valid``: ``(CANVAS, CANVAS)`` bool, True where the photo is.
    ``scale``: photo pixels per canvas pixel. ``offset``: canvas position (x, y) of the photo's
    top-left corner. ``width``/``height``: the photo's size in its own pixels.
    """

    pixels: torch.Tensor
    valid: torch.Tensor
    scale: float
    offset: tuple[float, float]
    width: int
    height: int

    def to_photo(self, points: torch.Tensor) -> torch.Tensor:
        """Canvas pixels → photo pixels (any ``(..., 2)`` xy tensor)."""
        return (points - points.new_tensor(self.offset)) * self.scale

    def to_canvas(self, points: torch.Tensor) -> torch.Tensor:
        """Photo pixels → canvas pixels (any ``(..., 2)`` xy tensor)."""
        return points / self.scale + points.new_tensor(self.offset)


def make_canvas(img: Image.Image, size: int = CANVAS) -> Canvas:
    """Scale ``img`` so its long side is ``size`` and centre it on a white ``size``² square. The
    canvas maps to the photo's own pixels (``photo_size``), also when ``img`` was decoded smaller."""
    w, h = photo_size(img)
    scale = max(w, h) / size
    cw, ch = max(1, round(w / scale)), max(1, round(h / scale))
    small = img.resize((cw, ch), Image.Resampling.BICUBIC, reducing_gap=3.0)
    ox, oy = (size - cw) // 2, (size - ch) // 2
    board = Image.new("RGB", (size, size), (255, 255, 255))
    board.paste(small, (ox, oy))
    pixels = torch.from_numpy(np.asarray(board, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    valid = torch.zeros(size, size, dtype=torch.bool)
    valid[oy : oy + ch, ox : ox + cw] = True
    # one scale for both axes (the long side is exactly `size` canvas pixels); the short side's
    # rounding only moves the photo's edge by under half a canvas pixel
    return Canvas(pixels=pixels.contiguous(), valid=valid, scale=scale, offset=(float(ox), float(oy)), width=w, height=h)
