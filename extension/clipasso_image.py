"""The pixels of an ``<image>`` element, read with the standard library only.

Inkscape's own Python may have no PIL, so the encoded bytes go to the engine as they are and
the raster's size in pixels is read from the file header (PNG IHDR, JPEG SOFn, GIF, WebP, BMP),
turned as shown by a JPEG's EXIF orientation.
"""

import base64
import binascii
import os
import struct
import urllib.parse
import urllib.request
from typing import List, Optional, Tuple

import inkex

XLINK_HREF = "{http://www.w3.org/1999/xlink}href"


class ImageReadError(ValueError):
    """An image whose pixels cannot be had; the message says what to do."""


def image_href(image: inkex.BaseElement) -> str:
    """The ``xlink:href`` (SVG 1.1) or ``href`` (SVG 2) of an ``<image>``; '' when absent.

    (``image.href`` is of no use here: inkex looks that up as an element id.)"""
    return (image.get(XLINK_HREF) or image.get("href") or "").strip()


def decode_data_uri(href: str) -> bytes:
    """The bytes of a ``data:`` URI. Base64 text may be wrapped across lines (Inkscape does)."""
    header, sep, payload = href[5:].partition(",")
    if not sep:
        raise ImageReadError("The embedded image is damaged (its data URI has no ','). Re-embed or re-import the photo.")
    if header.endswith(";base64"):
        try:
            return base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ImageReadError("The embedded image is damaged (invalid base64 data). Re-import the photo.") from None
    return urllib.parse.unquote_to_bytes(payload)


def candidate_paths(href: str, input_file: Optional[str], document_path: Optional[str], absref: Optional[str]) -> List[str]:
    """Where a linked image may be, most trustworthy first.

    Inside Inkscape the script reads a temporary copy of the document with relative hrefs
    rebased onto it, so the copy's folder comes first, then the saved document's folder
    (``DOCUMENT_PATH``), then Inkscape's remembered absolute path ``sodipodi:absref``.
    """
    parsed = urllib.parse.urlparse(href)
    path = urllib.request.url2pathname(parsed.path) if parsed.scheme in ("", "file") else ""
    found = []  # type: List[str]
    if path and os.path.isabs(path):
        found.append(path)
    elif path:
        for folder_of in (input_file, document_path):
            if folder_of:
                found.append(os.path.join(os.path.dirname(os.path.abspath(folder_of)), path))
    if absref:
        found.append(absref)
    # normalized ("work/../work/cat.png" is "work/cat.png") and each path once
    return list(dict.fromkeys(os.path.normpath(p) for p in found))


def designer_path(candidates: List[str], document_path: Optional[str]) -> str:
    """The one place to name when a linked photo is missing: where the designer's saved
    document points (beside it, or Inkscape's remembered path), not the temporary copy's folder."""
    if document_path:
        folder = os.path.dirname(os.path.abspath(document_path))
        for path in candidates:
            if path.startswith(folder + os.sep):
                return path
    return candidates[-1]


def read_image_bytes(image: inkex.BaseElement, input_file: Optional[str]) -> Tuple[bytes, str]:
    """The encoded bytes of an embedded or linked ``<image>`` and a short name of where they came from."""
    href = image_href(image)
    if not href:
        raise ImageReadError("The selected image has no picture data (no href). Import the photo again.")
    if href.startswith("data:"):
        return decode_data_uri(href), "embedded image"
    if urllib.parse.urlparse(href).scheme in ("http", "https"):
        raise ImageReadError(
            "The selected image is linked from the web. Download it and import the file (or embed it) first."
        )
    candidates = candidate_paths(href, input_file, os.environ.get("DOCUMENT_PATH"), image.get("sodipodi:absref"))
    for path in candidates:
        if os.path.isfile(path):
            try:
                with open(path, "rb") as handle:
                    return handle.read(), path
            except OSError as exc:  # a special file (/proc/...), no permission, a disk error
                raise ImageReadError("The linked image file {} cannot be read ({}). Relink or embed the photo, "
                                     "then try again.".format(path, exc.strerror or exc))
    missing = designer_path(candidates, os.environ.get("DOCUMENT_PATH")) if candidates else href
    raise ImageReadError(
        "The linked photo {} was not found. Relink or embed the photo, then try again.".format(missing)
    )


def pixel_size(data: bytes) -> Tuple[int, int, str]:
    """``(width, height, format)`` of an encoded raster from its header; ImageReadError otherwise."""
    for reader in (_png, _gif, _webp, _bmp, _jpeg):
        found = reader(data)
        if found is not None:
            width, height, kind = found
            if width <= 0 or height <= 0:
                raise ImageReadError("The image file is damaged (its header says it has no pixels). Re-export it.")
            return width, height, kind
    raise ImageReadError(
        "The selected image is not a PNG, JPEG, WebP, GIF or BMP picture (or is damaged). "
        "Convert it to PNG or JPEG and import it again."
    )


def _png(data: bytes) -> Optional[Tuple[int, int, str]]:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height, "png"


def _gif(data: bytes) -> Optional[Tuple[int, int, str]]:
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 10:
        return None
    width, height = struct.unpack("<HH", data[6:10])
    return width, height, "gif"


def _webp(data: bytes) -> Optional[Tuple[int, int, str]]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP" or len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy: key frame start code, 14-bit sizes
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF, "webp"
    if chunk == b"VP8L" and data[20] == 0x2F:  # lossless: 14 bits each of width-1 and height-1
        bits = struct.unpack("<I", data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, "webp"
    if chunk == b"VP8X":  # extended: 24-bit canvas width-1 and height-1
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1, "webp"
    return None


def _bmp(data: bytes) -> Optional[Tuple[int, int, str]]:
    if data[:2] != b"BM" or len(data) < 26:
        return None
    if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
    else:  # height < 0 marks a top-down bitmap
        width, height = struct.unpack("<ii", data[18:26])
    return width, abs(height), "bmp"


def display_size(data: bytes) -> Tuple[int, int]:
    """``(width, height)`` of the picture as shown: a JPEG whose EXIF orientation (5 to 8) says
    it is stored sideways is shown turned a quarter, by Inkscape and by the engine alike (whose
    strokes come in the upright picture's pixels)."""
    width, height, kind = pixel_size(data)
    if kind == "jpeg" and jpeg_orientation(data) in (5, 6, 7, 8):
        return height, width
    return width, height


def jpeg_orientation(data: bytes) -> int:
    """The EXIF Orientation (1 to 8) of a JPEG; 1 (upright) when it has none."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: the headers are over
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment[:6] == b"Exif\0\0":
            return _tiff_orientation(segment[6:])
        pos += 2 + length
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    """Tag 0x0112 of the first IFD of an EXIF (TIFF) block."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    (ifd,) = struct.unpack(order + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    for start in range(ifd + 2, min(ifd + 2 + 12 * count, len(tiff) - 11), 12):
        tag, kind = struct.unpack(order + "HH", tiff[start : start + 4])
        if tag == 0x0112 and kind == 3:  # SHORT
            (value,) = struct.unpack(order + "H", tiff[start + 8 : start + 10])
            return value if 1 <= value <= 8 else 1
    return 1


# Start-of-frame markers carry the size: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = set(range(0xD0, 0xDA)) | {0x01}


def _jpeg(data: bytes) -> Optional[Tuple[int, int, str]]:
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height, "jpeg"
        pos += 2 + length
    return None
