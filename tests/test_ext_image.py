"""Reading an <image>'s bytes and pixel size the way the extension must (standard library
only): headers of every format Pillow writes here, data URIs, linked files."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageOps

from extension_support import data_uri, import_extension_modules, png_bytes

import_extension_modules()

import inkex  # noqa: E402

from clipasso_image import (  # noqa: E402
    ImageReadError, candidate_paths, decode_data_uri, display_size, jpeg_orientation, pixel_size, read_image_bytes,
)


def encoded(fmt: str, size=(37, 23), mode="RGB", **save) -> bytes:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], len(mode)), dtype=np.uint8), mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def exif_block() -> bytes:
    """An EXIF APP1 segment before the frame header, as cameras write it."""
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    return exif.tobytes()


@pytest.mark.parametrize(
    "data, kind",
    [
        (encoded("PNG"), "png"),
        (encoded("PNG", mode="RGBA"), "png"),
        (encoded("JPEG"), "jpeg"),
        (encoded("JPEG", progressive=True), "jpeg"),
        (encoded("JPEG", exif=exif_block()), "jpeg"),
        (encoded("GIF"), "gif"),
        (encoded("WEBP", quality=80), "webp"),
        (encoded("WEBP", lossless=True), "webp"),
        (encoded("WEBP", mode="RGBA", quality=80), "webp"),
        (encoded("BMP"), "bmp"),
    ],
    ids=["png", "png-alpha", "jpeg", "jpeg-progressive", "jpeg-exif", "gif", "webp-lossy", "webp-lossless", "webp-alpha", "bmp"],
)
def test_pixel_size_from_headers(data, kind):
    assert pixel_size(data) == (37, 23, kind)


def test_large_and_odd_sizes():
    assert pixel_size(encoded("PNG", size=(3001, 7)))[:2] == (3001, 7)
    assert pixel_size(encoded("JPEG", size=(1, 2049)))[:2] == (1, 2049)
    assert pixel_size(encoded("WEBP", size=(1000, 999), lossless=True))[:2] == (1000, 999)


@pytest.mark.parametrize("data", [b"", b"<svg/>", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"RIFF\x00\x00\x00\x00WEBPVP8 "])
def test_not_a_picture(data):
    with pytest.raises(ImageReadError, match="not a PNG, JPEG"):
        pixel_size(data)


def test_data_uris():
    png = png_bytes(np.zeros((4, 5, 3), np.uint8))
    assert decode_data_uri(data_uri(png, wrap=60)) == png           # Inkscape wraps base64 lines
    assert decode_data_uri(data_uri(png).replace("\n", "\r\n ")) == png
    assert decode_data_uri("data:image/png,%89PNG") == b"\x89PNG"
    with pytest.raises(ImageReadError, match="damaged"):
        decode_data_uri("data:image/png;base64")
    with pytest.raises(ImageReadError, match="damaged"):
        decode_data_uri("data:image/png;base64,###")


def test_linked_paths_are_tried_in_inkscape_s_order(tmp_path):
    tmp_copy, saved = str(tmp_path / "tmp" / "doc.svg"), str(tmp_path / "work" / "doc.svg")
    assert candidate_paths("img/cat%20one.png", tmp_copy, saved, "/abs/cat.png") == [
        str(tmp_path / "tmp" / "img" / "cat one.png"),
        str(tmp_path / "work" / "img" / "cat one.png"),
        "/abs/cat.png",
    ]
    assert candidate_paths("file:///photos/cat.png", tmp_copy, None, None) == ["/photos/cat.png"]
    # Inkscape rebases a relative href onto its temporary copy: the saved folder comes back in
    # the href, and the same file is named once, normalized
    rebased = "../work/img/cat.png"
    assert candidate_paths(rebased, tmp_copy, None, str(tmp_path / "work" / "img" / "cat.png")) == [
        str(tmp_path / "work" / "img" / "cat.png")]


def test_read_linked_and_embedded(tmp_path, monkeypatch):
    png = png_bytes(np.zeros((4, 5, 3), np.uint8))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "cat.png").write_bytes(png)
    image = inkex.Image()
    image.set("xlink:href", "cat.png")
    monkeypatch.setenv("DOCUMENT_PATH", str(tmp_path / "work" / "drawing.svg"))
    # the temporary copy's folder has no cat.png: found beside the saved document
    assert read_image_bytes(image, str(tmp_path / "elsewhere.svg")) == (png, str(tmp_path / "work" / "cat.png"))
    monkeypatch.delenv("DOCUMENT_PATH")
    image.set("sodipodi:absref", str(tmp_path / "work" / "cat.png"))
    assert read_image_bytes(image, str(tmp_path / "elsewhere.svg"))[0] == png
    image.set("sodipodi:absref", None)
    with pytest.raises(ImageReadError, match="not found"):
        read_image_bytes(image, str(tmp_path / "elsewhere.svg"))
    # the message names the one path the designer's document points at, once
    monkeypatch.setenv("DOCUMENT_PATH", str(tmp_path / "work" / "drawing.svg"))
    image.set("xlink:href", "gone.png")
    with pytest.raises(ImageReadError) as missing:
        read_image_bytes(image, str(tmp_path / "tmp" / "copy.svg"))
    assert str(missing.value) == (f"The linked photo {tmp_path / 'work' / 'gone.png'} was not found. "
                                  "Relink or embed the photo, then try again.")
    svg2 = inkex.Image()
    svg2.set("href", data_uri(png))     # SVG 2 plain href
    assert read_image_bytes(svg2, None) == (png, "embedded image")
    with pytest.raises(ImageReadError, match="no picture data"):
        read_image_bytes(inkex.Image(), None)


def oriented_jpeg(orientation: int, size=(37, 23), xmp: bool = False) -> bytes:
    """A JPEG stored ``size``, with EXIF Orientation ``orientation`` (and other tags), as a
    phone writes portrait photos; ``xmp``: an XMP APP1 segment before the EXIF one."""
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    exif[0x0112] = orientation
    exif[0x0131] = "Software"
    data = encoded("JPEG", size=size, exif=exif.tobytes())
    if xmp:
        payload = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>"
        data = data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]
    return data


@pytest.mark.parametrize("orientation", range(1, 9))
def test_display_size_turns_sideways_jpegs_as_pillow_does(orientation):
    for data in (oriented_jpeg(orientation), oriented_jpeg(orientation, xmp=True)):
        assert jpeg_orientation(data) == orientation
        assert pixel_size(data) == (37, 23, "jpeg")                          # as stored
        upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))      # what the engine sketches
        assert display_size(data) == upright.size == ((23, 37) if orientation >= 5 else (37, 23))


def test_display_size_without_orientation():
    assert display_size(encoded("JPEG", exif=exif_block())) == (37, 23)
    assert display_size(encoded("PNG")) == (37, 23)
    # big-endian ("MM") EXIF, as many cameras write it: orientation 8
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + struct.pack(">HHIHH", 0x0112, 3, 1, 8, 0) + b"\x00" * 4
    app1 = b"Exif\0\0" + tiff
    plain = encoded("JPEG")
    data = plain[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + plain[2:]
    assert jpeg_orientation(data) == 8 and display_size(data) == (23, 37)
    assert ImageOps.exif_transpose(Image.open(io.BytesIO(data))).size == (23, 37)
    # damaged EXIF: upright
    bad = plain[:2] + b"\xff\xe1\x00\x0aExif\0\0MM" + plain[2:]
    assert jpeg_orientation(bad) == 1 and display_size(bad) == (37, 23)
