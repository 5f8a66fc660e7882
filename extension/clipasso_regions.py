"""Shapes the designer drew over the photo, as the engine's regions (docs/method.md §9).

Each selected shape (path, rect, circle, ellipse, polygon, and those inside selected groups)
becomes one region: its outline mapped into the photo's pixels through the inverse of the
photo's placement (``clipasso_placement``: every transform of the shape, the photo and their
ancestors) and flattened to a polygon that stays within ``TOLERANCE`` photo pixels of the curves.
The shapes themselves are only read: the document does not change.

A shape with several subpaths (a ring, a letter O) becomes one polygon that walks each subpath
and returns to the first one's start along the same segment; the engine fills polygons with the
even-odd rule, so the there-and-back segments cancel and inner subpaths are holes.

What a shape means: its label (Object ▸ Object Properties, or the Layers and Objects dialog)
when that is ``subject``, ``detail`` or ``avoid`` (on the shape or a group holding it), else the
dialog's choice.
"""

import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import inkex

from clipasso_limits import MAX_REGIONS, MAX_VERTICES, REGION_ROLES
from clipasso_placement import composed_transform, pixels_to_document

TOLERANCE = 0.5          # photo pixels between a curve and its polygon
MIN_AREA = 0.01          # squared photo pixels: a subpath enclosing less (a line) marks nothing
SHAPES = (inkex.PathElement, inkex.Rectangle, inkex.Circle, inkex.Ellipse, inkex.Polygon)
Point = Tuple[float, float]


def label_role(element: inkex.BaseElement) -> Optional[str]:
    """``subject``, ``detail`` or ``avoid`` when the element or a group above it is labelled so
    (the nearest label that names a role wins), else None."""
    node = element
    while node is not None:
        label = (node.get("inkscape:label") or "").strip().lower()
        if label in REGION_ROLES:
            return label
        node = node.getparent()
    return None


def is_closed(shape: inkex.BaseElement) -> bool:
    """A rect, circle, ellipse or polygon, or a path whose every subpath ends with Z."""
    if not isinstance(shape, inkex.PathElement):
        return True
    letters = [seg.letter for seg in shape.path]
    moves = sum(1 for letter in letters if letter in "Mm")
    return moves > 0 and sum(1 for letter in letters if letter in "Zz") >= moves


def region_shapes(selected: Iterable[inkex.BaseElement]) -> List[inkex.BaseElement]:
    """The shapes among ``selected`` (groups entered), in document order, each once; hidden
    helpers in ``<defs>`` and clip paths are not drawn shapes and are skipped."""
    found, seen = [], set()
    for element in selected:
        for node in element.iter():
            if isinstance(node, SHAPES) and id(node) not in seen and not _in_defs(node):
                seen.add(id(node))
                found.append(node)
    return found


def marking_shapes(selected: Iterable[inkex.BaseElement]) -> List[inkex.BaseElement]:
    """The selected shapes that mark regions: closed ones, and any labelled with a role."""
    return [s for s in region_shapes(selected) if is_closed(s) or label_role(s)]


def _in_defs(node: inkex.BaseElement) -> bool:
    return any(isinstance(a, (inkex.Defs, inkex.ClipPath)) for a in node.iterancestors())


def flatten_cubic(p0: Point, p1: Point, p2: Point, p3: Point, tolerance: float = TOLERANCE) -> List[Point]:
    """Points along a cubic Bézier (without ``p0``, ending at ``p3``), evenly spaced in t, enough
    of them that the polyline stays within ``tolerance`` of the curve: for n pieces the distance
    is at most max|B''|/(8 n²) and |B''| <= 6·(largest second difference of the control points)."""
    d = max(math.hypot(p0[0] - 2 * p1[0] + p2[0], p0[1] - 2 * p1[1] + p2[1]),
            math.hypot(p1[0] - 2 * p2[0] + p3[0], p1[1] - 2 * p2[1] + p3[1]))
    n = max(1, int(math.ceil(math.sqrt(6.0 * d / (8.0 * tolerance)))))
    out = []
    for i in range(1, n + 1):
        t = i / n
        u = 1.0 - t
        a, b, c, e = u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t
        out.append((a * p0[0] + b * p1[0] + c * p2[0] + e * p3[0], a * p0[1] + b * p1[1] + c * p2[1] + e * p3[1]))
    return out


def shape_rings(shape: inkex.BaseElement, to_pixels: inkex.Transform) -> List[List[Point]]:
    """The shape's subpaths as polygons in photo pixels (``to_pixels``: its local space → photo
    pixels; affine, so mapping the control points maps the curves exactly)."""
    rings = []
    for sub in shape.path.to_superpath():
        pts = [[tuple(to_pixels.apply_to_point(p)) for p in triple] for triple in sub]
        if not pts:
            continue
        ring = [pts[0][1]]
        for a, b in zip(pts, pts[1:]):
            ring += flatten_cubic(a[1], a[2], b[0], b[1])
        if len(ring) > 1 and math.hypot(ring[-1][0] - ring[0][0], ring[-1][1] - ring[0][1]) < 1e-9:
            ring.pop()                      # closed: the engine closes every polygon itself
        if len(ring) >= 3 and abs(ring_area(ring)) > MIN_AREA:
            rings.append(ring)
    return rings


def ring_area(ring: Sequence[Point]) -> float:
    """Signed area (shoelace) of a closed ring, in squared photo pixels."""
    return 0.5 * sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(ring, list(ring[1:]) + [ring[0]]))


def join_rings(rings: Sequence[List[Point]]) -> List[Point]:
    """One even-odd polygon of several rings: each ring is walked closed and left from, and
    returned to, the first ring's start along the same segment (which therefore cancels)."""
    start = rings[0][0]
    out = list(rings[0]) + [start]
    for ring in rings[1:]:
        out += list(ring) + [ring[0], start]
    return out


def clip_to_box(polygon: Sequence[Point], x0: float, y0: float, x1: float, y1: float) -> List[Point]:
    """``polygon`` cut to the box (Sutherland–Hodgman, one side at a time): what lies outside is
    replaced by pieces of the box's edges, which keeps the even-odd inside of every point in the
    box. Shapes reaching far beyond the photo then stay within the engine's bounds."""
    def cut(points, inside, cross):
        out = []
        for i, cur in enumerate(points):
            prev = points[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
        return out

    def at_x(x):
        return lambda a, b: (x, a[1] + (b[1] - a[1]) * (x - a[0]) / (b[0] - a[0]))

    def at_y(y):
        return lambda a, b: (a[0] + (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]), y)

    points = list(polygon)
    for inside, cross in ((lambda p: p[0] >= x0, at_x(x0)), (lambda p: p[0] <= x1, at_x(x1)),
                          (lambda p: p[1] >= y0, at_y(y0)), (lambda p: p[1] <= y1, at_y(y1))):
        points = cut(points, inside, cross) if points else points
    return points


def shape_name(shape: inkex.BaseElement) -> str:
    """How the designer finds the shape: its label, or its id when the label is only a role."""
    label = (shape.get("inkscape:label") or "").strip()
    if label.lower() in REGION_ROLES:
        label = ""
    return "'{}'".format(label or shape.get("id") or shape.TAG)


def regions_from_shapes(
    shapes: Sequence[inkex.BaseElement], image: inkex.BaseElement, width: int, height: int, default_role: str
) -> List[Dict[str, object]]:
    """The engine's ``regions`` for ``shapes`` drawn over ``image`` (``width``×``height`` photo
    pixels). Raises ``inkex.AbortExtension`` naming the shape for one that has no area, lies
    beside the photo or has too many points after flattening."""
    if len(shapes) > MAX_REGIONS:
        raise inkex.AbortExtension(
            "{} shapes are selected besides the photo; up to {} can mark regions. Combine some (Path ▸ Combine).".format(
                len(shapes), MAX_REGIONS))
    to_document = pixels_to_document(image, width, height)
    regions = []
    for shape in shapes:
        to_pixels = -to_document @ composed_transform(shape)
        rings = shape_rings(shape, to_pixels)
        if not rings:
            raise inkex.AbortExtension("The shape {} encloses no area, so it cannot mark a region of the photo. "
                                       "Deselect it, or draw a closed shape.".format(shape_name(shape)))
        margin = 0.05 * max(width, height)
        polygon = clip_to_box(join_rings(rings), -margin, -margin, width + margin, height + margin)
        xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
        if len(polygon) < 3 or max(xs) <= 0 or max(ys) <= 0 or min(xs) >= width or min(ys) >= height:
            raise inkex.AbortExtension("The shape {} does not overlap the photo, so it cannot mark a region of it. "
                                       "Move it over the photo, or deselect it.".format(shape_name(shape)))
        if len(polygon) > MAX_VERTICES:
            raise inkex.AbortExtension("The shape {} has too much detail ({} points once its curves are flattened; up to "
                                       "{}). Simplify it (Path ▸ Simplify) and try again.".format(
                                           shape_name(shape), len(polygon), MAX_VERTICES))
        role = label_role(shape) or default_role
        regions.append({"role": role, "polygon": [[round(x, 3), round(y, 3)] for x, y in polygon]})
    return regions
