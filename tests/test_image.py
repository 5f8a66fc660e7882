"""Loading photos: formats, alpha, bad files; placing them on the CLIP canvas."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from clipasso_engine.image import CANVAS, ImageError, load_image, make_canvas


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height but which holds almost no data (a pixel bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_sources_load_as_rgb(tmp_path):
    arr = np.zeros((20, 30, 3), np.uint8)
    arr[:, :, 0] = 200
    path = tmp_path / "red.png"
    Image.fromarray(arr).save(path)
    for src in (path, str(path), path.read_bytes(), Image.fromarray(arr), arr):
        img = load_image(src)
        assert img.mode == "RGB" and img.size == (30, 20)
        assert img.getpixel((5, 5)) == (200, 0, 0)


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:8, :, 3] = 255                  # top half opaque black, bottom half transparent
    img = load_image(rgba)
    assert img.getpixel((3, 3)) == (0, 0, 0)
    assert img.getpixel((3, 12)) == (255, 255, 255)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p / "nope.png", "not found"),
        (lambda p: (p / "bad.png").write_bytes(b"not an image at all") and p / "bad.png", "not a readable image"),
        (lambda p: Image.new("RGB", (1, 1)).save(p / "dot.png") or p / "dot.png", "1×1 pixels"),
        (lambda p: (p / "bomb.png").write_bytes(_png_header_only(60000, 60000)) and p / "bomb.png", "megapixels"),
        (lambda p: Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(p / "clear.png") or p / "clear.png", "fully transparent"),
        (lambda p: p, "not a file"),
    ],
)
def test_bad_images_are_refused_clearly(tmp_path, make, message):
    with pytest.raises(ImageError, match=message):
        load_image(make(tmp_path))


def test_truncated_jpeg_is_refused(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buf, format="JPEG")
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(buf.getvalue()[:200])


def test_canvas_keeps_aspect_and_maps_back():
    img = Image.new("RGB", (300, 150), (0, 0, 0))
    c = make_canvas(img)
    assert c.pixels.shape == (1, 3, CANVAS, CANVAS)
    assert c.valid.sum() == 224 * 112
    assert c.valid[56:168].all() and not c.valid[:56].any()          # centred vertically
    assert c.pixels[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]           # white padding
    assert c.pixels[0, :, 112, 112].tolist() == [0.0, 0.0, 0.0]       # the photo
    p = torch.tensor([[0.0, 0.0], [300.0, 150.0], [123.4, 56.7]])
    assert torch.allclose(c.to_photo(c.to_canvas(p)), p, atol=1e-4)
    assert c.to_canvas(torch.tensor([0.0, 0.0])).tolist() == [0.0, 56.0]


def test_exif_orientation_is_applied():
    """A JPEG stored 80×40 with Orientation 6 (rotate 90° clockwise to view) loads as 40×80,
    the red band that is on the left when stored lands at the top, as viewers show it."""
    stored = np.full((40, 80, 3), 255, np.uint8)
    stored[:, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format="JPEG", exif=exif, quality=95)
    img = load_image(buf.getvalue())
    assert img.size == (40, 80)
    r, g, b = img.getpixel((20, 3))
    assert r > 200 and g < 60 and b < 60


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 32).reshape(32, 64)).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    img = load_image(path)
    values = np.asarray(img)[..., 0]
    assert values.min() == 0 and values.max() == 255
    assert 100 < np.median(values) < 155          # a ramp, not a white sheet


def test_tall_photo_maps_its_corners_exactly():
    """Long side vertical and not divisible: the canvas's photo area maps back to (0, 0)-(w, h)."""
    c = make_canvas(Image.new("RGB", (95, 1000)))
    assert c.valid.sum(0).max() == 224                                   # full height
    ys, xs = torch.nonzero(c.valid, as_tuple=True)
    top_left = c.to_photo(torch.tensor([float(xs.min()), float(ys.min())]))
    bottom = c.to_photo(torch.tensor([0.0, float(ys.max() + 1)]))
    assert top_left[1].item() == pytest.approx(0.0, abs=1e-4)
    assert bottom[1].item() == pytest.approx(1000.0, abs=1e-3)
    assert abs(top_left[0].item()) < c.scale / 2 + 1e-4                  # short side within half a canvas pixel
