"""Strokes ⇄ SVG documents (lxml).

Our output is one ``<path d="M x0 y0 C x1 y1 x2 y2 x3 y3">`` per stroke in image pixels, with
``viewBox="0 0 W H"``. Numbers are written in their shortest exact form, so reading our own
file back gives the very same strokes.

Reading (svgelements, a pure-Python SVG library, does the geometry and the style cascade)
accepts what a designer may leave after editing in Inkscape or by hand: ``<path>``, ``<line>``,
``<polyline>`` and ``<polygon>`` elements anywhere in the tree, any path data, ``transform`` on
the element and its ancestors, and stroke style given as attributes or in ``style``, inherited
from groups. An element with no stroke set anywhere counts as stroked in black (a hand-written
path usually says nothing about its stroke). Every drawn piece becomes one cubic stroke in
viewBox pixels (origin moved to the viewBox's top-left): lines and quadratics exactly, arcs in
pieces of at most 90°. svgelements reads bad data leniently, so the values it would skip or
guess (path data, transforms, stroke widths) are checked first, and the message names the element. Elements in ``<defs>``, ``<clipPath>``,
``<mask>``, ``<symbol>``, ``<marker>``, ``<pattern>`` and ``<metadata>`` are not drawn, so they
are skipped, and so is whatever is hidden (``display:none``, ``visibility:hidden``) or has
``stroke:none`` (a filled shape, not a stroke); other elements (images, text, rects…) are not
strokes and are ignored.
"""

from __future__ import annotations

import io
import math
import re
from typing import Iterable, Sequence

import svgelements as se
from lxml import etree

from .errors import SvgError
from .strokes import Point, Stroke

SVG_NS = "http://www.w3.org/2000/svg"
INKSCAPE_NS = "http://www.inkscape.org/namespaces/inkscape"
CLIPASSO_NS = "http://clipasso.org/ns/1.0"    # the extension's, extension/clipasso_ns.py
_NOT_DRAWN = {"defs", "clipPath", "mask", "symbol", "marker", "pattern", "metadata"}
_STROKE_SHAPES = (se.Path, se.SimpleLine, se.Polyline, se.Polygon)
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TRANSFORM = re.compile(rf"\s*(?:(?:matrix|translate|scale|rotate|skewX|skewY)\s*\(\s*(?:{NUMBER}[\s,]*)*\)[\s,]*)*")
Cubic = tuple[Point, Point, Point, Point]


def fmt(v: float) -> str:
    """Shortest decimal text that reads back as exactly ``v`` ("12", "3.5", "0.1")."""
    text = repr(float(v))
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def stroke_path_data(points: Sequence[tuple[float, float]]) -> str:
    """``"M x0 y0 C x1 y1 x2 y2 x3 y3"`` for 4 control points."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points
    return f"M {fmt(x0)} {fmt(y0)} C {fmt(x1)} {fmt(y1)} {fmt(x2)} {fmt(y2)} {fmt(x3)} {fmt(y3)}"


def strokes_to_svg(
    strokes: Iterable[Stroke],
    width: float,
    height: float,
    *,
    title: str | None = None,
    description: str | None = None,
) -> str:
    """An SVG document of the strokes on a canvas of ``width × height`` image pixels.

    ``title``/``description`` go into ``<title>``/``<desc>`` (e.g. seed, loss, whether the CLIP
    weights were random). Returns the document as text with an XML declaration.
    """
    root = new_document(width, height, title=title, description=description)
    for i, s in enumerate(strokes):
        add_stroke_path(root, s, f"stroke{i}")
    return to_text(root)


def new_document(width: float, height: float, *, title: str | None = None, description: str | None = None) -> etree._Element:
    """An empty ``<svg>`` of ``width × height`` image pixels (viewBox ``0 0 W H``), with the
    Inkscape namespace declared for layers, and optional ``<title>``/``<desc>``."""
    root = etree.Element(
        f"{{{SVG_NS}}}svg",
        nsmap={None: SVG_NS, "inkscape": INKSCAPE_NS},
        attrib={"width": fmt(width), "height": fmt(height), "viewBox": f"0 0 {fmt(width)} {fmt(height)}"},
    )
    if title:
        etree.SubElement(root, f"{{{SVG_NS}}}title").text = title
    if description:
        etree.SubElement(root, f"{{{SVG_NS}}}desc").text = description
    return root


def to_text(root: etree._Element) -> str:
    """The document as UTF-8 text with an XML declaration."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode("utf-8")


def add_stroke_path(parent: etree._Element, stroke: Stroke, ident: str) -> etree._Element:
    """Append one stroke as a ``<path>`` (no fill, round caps and joins) to ``parent``."""
    attrib = {
        "id": ident,
        "d": stroke_path_data(stroke.points),
        "fill": "none",
        "stroke": stroke.color,
        "stroke-width": fmt(stroke.width),
        "stroke-linecap": "round",
        "stroke-linejoin": "round",
    }
    if stroke.opacity != 1.0:
        attrib["stroke-opacity"] = fmt(stroke.opacity)
    return etree.SubElement(parent, f"{{{SVG_NS}}}path", attrib=attrib)


def svg_to_strokes(text: str | bytes) -> tuple[list[Stroke], float, float]:
    """Read strokes back from an SVG document.

    Returns ``(strokes, width, height)``: cubic strokes in viewBox pixels (origin at the
    viewBox's top-left) and the canvas size from the viewBox, else from ``width``/``height``.
    Raises ``SvgError`` naming the element when something cannot be read.
    """
    root = _parse(text)
    origin, width, height = _canvas(root)
    _check(root)
    # the viewport is the viewBox itself (strokes are in viewBox pixels, whatever the document's
    # printed size), and a stroke no one set is black rather than SVG's none
    root.set("viewBox", f"{fmt(origin[0])} {fmt(origin[1])} {fmt(width)} {fmt(height)}")
    root.set("width", fmt(width))
    root.set("height", fmt(height))
    if root.get("stroke") is None:
        root.set("stroke", "#000000")
    doc = se.SVG.parse(io.BytesIO(etree.tostring(root)), reify=True)
    strokes: list[Stroke] = []
    for el in doc.elements():
        if not isinstance(el, _STROKE_SHAPES) or el.values.get("visibility", "visible") != "visible":
            continue
        if el.stroke is None or el.stroke.value is None:          # stroke:none: a filled shape
            continue
        opacity = float(el.values.get("stroke-opacity", 1)) * float(el.values.get("opacity", 1))
        color = f"#{el.stroke.red:02x}{el.stroke.green:02x}{el.stroke.blue:02x}"
        width_px = float(el.stroke_width) if el.stroke_width is not None else 1.0
        strokes += [Stroke(points=c, width=width_px, color=color, opacity=min(1.0, opacity))
                    for c in _cubics(se.Path(el))]
    return strokes, width, height


def _cubics(path: se.Path) -> list[Cubic]:
    """Every drawn segment of ``path`` (already transformed) as one or more cubics."""
    out: list[Cubic] = []
    for seg in path.segments():
        p0 = (seg.start.x, seg.start.y) if seg.start is not None else None
        p3 = (seg.end.x, seg.end.y) if seg.end is not None else None
        if isinstance(seg, se.Move) or p0 is None or p3 is None:
            continue
        if isinstance(seg, (se.Line, se.Close)):
            if isinstance(seg, se.Close) and p0 == p3:
                continue                                           # already back at the start
            out.append((p0, _lerp(p0, p3, 1 / 3), _lerp(p0, p3, 2 / 3), p3))
        elif isinstance(seg, se.QuadraticBezier):
            q = (seg.control.x, seg.control.y)
            out.append((p0, _lerp(p0, q, 2 / 3), _lerp(p3, q, 2 / 3), p3))
        elif isinstance(seg, se.CubicBezier):
            out.append((p0, (seg.control1.x, seg.control1.y), (seg.control2.x, seg.control2.y), p3))
        elif isinstance(seg, se.Arc):
            out += _arc_cubics(seg)
    return out


def _arc_cubics(arc: se.Arc) -> list[Cubic]:
    """An elliptical arc (any affine image of a circular one) as cubics of at most 90° each,
    handles ``4/3·tan(Δ/4)`` times the tangent: within ~3e-4 of the radius per quarter.
    (svgelements' own ``as_cubic_curves`` is about 1e-3 off.)"""
    n = max(1, math.ceil(abs(arc.sweep) / (math.pi / 2) - 1e-9))
    k = 4 / 3 * math.tan(arc.sweep / n / 4)
    h = 1e-6

    def at(t: float) -> Point:
        p = arc.point(t)
        return (p.x, p.y)

    def tangent(t: float) -> Point:          # d point / d angle: the ellipse's own parametrization
        a, b = at(t - h), at(t + h)
        return ((b[0] - a[0]) / (2 * h * arc.sweep), (b[1] - a[1]) / (2 * h * arc.sweep))

    out: list[Cubic] = []
    for i in range(n):
        t0, t1 = i / n, (i + 1) / n
        p0, p3, d0, d3 = at(t0), at(t1), tangent(t0), tangent(t1)
        out.append((p0, (p0[0] + k * d0[0], p0[1] + k * d0[1]), (p3[0] - k * d3[0], p3[1] - k * d3[1]), p3))
    first, last = (arc.start.x, arc.start.y), (arc.end.x, arc.end.y)   # the exact ends, not recomputed
    out[0] = (first, *out[0][1:])
    out[-1] = (*out[-1][:3], last)
    return out


def _lerp(a: Point, b: Point, t: float) -> Point:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _parse(text: str | bytes) -> etree._Element:
    data = text.encode("utf-8") if isinstance(text, str) else text
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise SvgError(f"not a readable SVG file: {exc}") from None
    if etree.QName(root).localname != "svg":
        raise SvgError(f"not an SVG document: the root element is <{etree.QName(root).localname}>, not <svg>")
    return root


def _number(value: str, what: str) -> float:
    m = re.fullmatch(rf"\s*({NUMBER})\s*(px)?\s*", value or "")
    if not m:
        raise SvgError(f"cannot read {what} {value!r} as a length in pixels")
    return float(m.group(1))


def _canvas(root: etree._Element) -> tuple[tuple[float, float], float, float]:
    """Origin and size of the drawing in user units: the viewBox, else width/height."""
    vb = root.get("viewBox")
    if vb:
        parts = re.split(r"[\s,]+", vb.strip())
        if len(parts) != 4:
            raise SvgError(f"<svg> viewBox {vb!r} must have 4 numbers")
        x, y, w, h = (_number(p, "<svg> viewBox number") for p in parts)
    else:
        if root.get("width") is None or root.get("height") is None:
            raise SvgError("<svg> has neither a viewBox nor width and height: its size is unknown")
        x, y = 0.0, 0.0
        w, h = _number(root.get("width"), "<svg> width"), _number(root.get("height"), "<svg> height")
    if w <= 0 or h <= 0:
        raise SvgError(f"<svg> size must be positive, got {w}×{h}")
    return (x, y), w, h


def _describe(el: etree._Element) -> str:
    tag = etree.QName(el).localname
    ident = el.get("id")
    return f"<{tag} id={ident!r}>" if ident else f"<{tag}> on line {el.sourceline}"


def _check(el: etree._Element) -> None:
    """What svgelements would skip or guess in silence, refused with the element named: a
    transform, path data or a stroke width it cannot read."""
    if not isinstance(el.tag, str) or etree.QName(el).localname in _NOT_DRAWN:
        return
    tag = etree.QName(el).localname
    transform = el.get("transform")
    if transform is not None and not _TRANSFORM.fullmatch(transform):
        raise SvgError(f"{_describe(el)}: cannot read transform {transform!r}")
    widths = [el.get("stroke-width")] + re.findall(r"stroke-width\s*:\s*([^;]*)", el.get("style") or "")
    for w in filter(None, widths):
        _number(w, f"{_describe(el)}: stroke-width")
    if tag == "path":
        d = (el.get("d") or "").strip()
        if d and d[0] not in "Mm":
            raise SvgError(f"{_describe(el)}: path data must start with M (moveto), got {d[:20]!r}")
        try:
            se.Path(d)
        except (ValueError, IndexError) as exc:
            raise SvgError(f"{_describe(el)}: cannot read path data {d[:60]!r} {exc}".rstrip()) from None
    for child in el:
        _check(child)
