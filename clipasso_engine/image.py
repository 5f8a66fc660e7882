"""Load and check photos, and place them on CLIP's square canvas.

The canvas (METHOD.md, "ours — aspect ratio") is the photo scaled so its long side is
``CANVAS`` (224) pixels, centred on a white square. Strokes are optimized in canvas pixels and
returned in the photo's own pixels; ``Canvas`` converts between the two.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

CANVAS = 224
MIN_SIDE = 8                     # smaller photos have nothing to sketch
MAX_PIXELS = 64_000_000          # decoded pixels; larger files are refused before decoding
MAX_FILE_BYTES = 100 * 2**20

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]


class ImageError(ValueError):
    """A photo that cannot be used; the message says what is wrong and what to do."""


def load_image(src: ImageInput, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open a photo (path, encoded bytes, PIL image or HxWx3/HxWx4 uint8 array) as RGB, turned
    upright by its EXIF orientation.

    Transparent pixels are composited on white; 16-bit greyscale is scaled to 8 bits. Raises ``ImageError`` for a missing, unreadable,
    corrupt, too small or too large image (the size is checked from the header, before the
    pixels are decoded, so decompression bombs cost nothing).
    """
    if isinstance(src, np.ndarray):
        img = _from_array(src)
    elif isinstance(src, Image.Image):
        img = src
    else:
        img = _open(src, max_pixels)
    _check_size(img.width, img.height, max_pixels)
    # a phone's portrait photo is stored sideways with an EXIF Orientation tag: sketch it the
    # way every viewer (and Inkscape) shows it, so the strokes' pixels match what the user sees
    return _flatten_alpha(ImageOps.exif_transpose(img))


def _open(src: str | os.PathLike | bytes, max_pixels: int) -> Image.Image:
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
    try:
        img = Image.open(io.BytesIO(data))                  # reads the header only
        _check_size(img.width, img.height, max_pixels)     # nothing decoded yet
        img.load()
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:             # Pillow's own header check, far above ours
        raise ImageError(f"{name}: the image is too large ({exc}); the limit is {max_pixels / 1e6:.0f} megapixels — scale it down first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        detail = "not a known image format" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise ImageError(f"{name} is not a readable image (PNG, JPEG, WebP, …): {detail}") from None
    return img


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
    """Scale ``img`` so its long side is ``size`` and centre it on a white ``size``² square."""
    w, h = img.size
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
