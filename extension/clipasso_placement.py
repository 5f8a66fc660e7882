"""Where the pixels of an ``<image>`` land in the document, and the way back.

Three coordinate systems meet here:

* image pixels: the raster's own grid, origin at its top-left corner, x right, y down. The
  engine works in these (strokes JSON).
* the image's user space: where the ``<image>``'s x/y/width/height are measured (its parent's
  coordinates after the image's own ``transform``). ``preserveAspectRatio`` decides how the
  raster sits inside that x/y/width/height box: inkex does not model it, so it is done here.
* an element's local space: the coordinates its own attributes (``d``) are written in, i.e.
  before its ``transform`` and those of all its ancestors (``composed_transform``).

Everything is an affine ``inkex.Transform``, so Bézier control points map exactly.

Transforms are read from the raw attributes: reading ``element.transform`` (or ``.style``)
through inkex rewrites the attribute's text in a normalized spelling, and the document outside
the new strokes must stay exactly as it was.
"""

import math
from typing import Optional, Tuple

import inkex
from inkex.units import convert_unit

ALIGN_FRACTIONS = {"Min": 0.0, "Mid": 0.5, "Max": 1.0}
DEFAULT_ASPECT = "xMidYMid meet"


def parse_aspect_ratio(value: Optional[str]) -> Tuple[Optional[Tuple[float, float]], bool]:
    """Read a ``preserveAspectRatio`` value.

    Returns ``((ax, ay), slice)``: the alignment as fractions (0 = min, 0.5 = mid, 1 = max) of
    the free space, or ``None`` for ``none`` (stretch to fill); ``slice`` is True for ``slice``
    (cover and crop) and False for ``meet`` (fit inside). A missing or invalid value means the
    SVG default ``xMidYMid meet``, as renderers treat it.
    """
    words = (value or "").split()
    if words[:1] == ["defer"]:  # only meaningful for images that reference SVG files
        words = words[1:]
    if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("meet", "slice")):
        words = DEFAULT_ASPECT.split()
    align, use_slice = words[0], len(words) == 2 and words[1] == "slice"
    if align == "none":
        return None, use_slice
    if len(align) != 8 or align[0] != "x" or align[4] != "Y":
        return parse_aspect_ratio(DEFAULT_ASPECT)
    ax, ay = ALIGN_FRACTIONS.get(align[1:4]), ALIGN_FRACTIONS.get(align[5:8])
    if ax is None or ay is None:
        return parse_aspect_ratio(DEFAULT_ASPECT)
    return (ax, ay), use_slice


def image_box(image: inkex.BaseElement, px_width: float, px_height: float) -> Tuple[float, float, float, float]:
    """The ``<image>``'s x, y, width, height in its user space.

    A missing (or ``auto``) width/height takes the raster's intrinsic size, one user unit per
    pixel, or follows the other side's aspect ratio when only one is given (SVG 2 sizing).
    """
    def length(name: str) -> Optional[float]:
        text = (image.get(name) or "").strip()
        return None if text in ("", "auto") else convert_unit(text, "px")

    width, height = length("width"), length("height")
    if width is None and height is None:
        width, height = px_width, px_height
    elif width is None:
        width = height * px_width / px_height
    elif height is None:
        height = width * px_height / px_width
    return length("x") or 0.0, length("y") or 0.0, width, height


def pixels_to_image_space(image: inkex.BaseElement, px_width: float, px_height: float) -> inkex.Transform:
    """Image pixels → the image's user space, honouring x/y/width/height and
    ``preserveAspectRatio`` (every alignment, ``meet``, ``slice`` and ``none``)."""
    x, y, width, height = image_box(image, px_width, px_height)
    align, use_slice = parse_aspect_ratio(image.get("preserveAspectRatio"))
    if align is None:
        return inkex.Transform(translate=(x, y)) @ inkex.Transform(scale=(width / px_width, height / px_height))
    fit = max if use_slice else min
    scale = fit(width / px_width, height / px_height)
    ax, ay = align
    offset_x = x + ax * (width - scale * px_width)
    offset_y = y + ay * (height - scale * px_height)
    return inkex.Transform(translate=(offset_x, offset_y)) @ inkex.Transform(scale=scale)


def composed_transform(element: inkex.BaseElement) -> inkex.Transform:
    """Local space of ``element`` → the root's user space: the product of the ``transform``
    attributes of the element and all its ancestors (inkex's ``composed_transform()``, without
    touching the attributes)."""
    total = inkex.Transform()
    for node in [element, *element.iterancestors()]:
        total = inkex.Transform(node.attrib.get("transform")) @ total
    return total


def pixels_to_local(
    image: inkex.BaseElement, px_width: float, px_height: float, element: inkex.BaseElement
) -> inkex.Transform:
    """Image pixels → ``element``'s local space (the one its ``d`` is written in).

    Goes up from the pixels through the image's placement, its own transform and every
    ancestor's, then down into ``element`` through the inverse of its composed transform.
    Both chains end at the same root, so whatever the root contributes cancels out.
    """
    return -composed_transform(element) @ pixels_to_document(image, px_width, px_height)


def pixels_to_document(image: inkex.BaseElement, px_width: float, px_height: float) -> inkex.Transform:
    """Image pixels → the root's user space: where the photo's pixels are in the document now.
    Kept with a background job, it places the strokes where the photo was should it be deleted."""
    return composed_transform(image) @ pixels_to_image_space(image, px_width, px_height)


def linear_scale(transform: inkex.Transform) -> float:
    """How much ``transform`` scales lengths on average: the square root of its area factor.

    Exact for rotations and uniform scales; for skews and unequal scales a stroke's width
    varies with direction, and this is the width of equal area.
    """
    return math.sqrt(abs(transform.a * transform.d - transform.b * transform.c))
