"""Strokes ⇄ SVG documents (lxml).

Our output is one ``<path d="M x0 y0 C x1 y1 x2 y2 x3 y3">`` per stroke in image pixels, with
``viewBox="0 0 W H"``. Numbers are written in their shortest exact form, so reading our own
file back gives the very same strokes.

Reading accepts what a designer may leave after editing in Inkscape or by hand: ``<path>``,
``<line>``, ``<polyline>`` and ``<polygon>`` elements anywhere in the tree, any path data
(see ``svg_path``), ``transform`` on the element and its ancestors, and stroke style given as
attributes or in ``style``, inherited from groups. Every drawn piece becomes one cubic stroke in
viewBox pixels (origin moved to the viewBox's top-left). Elements in ``<defs>``, ``<clipPath>``,
``<mask>``, ``<symbol>``, ``<marker>``, ``<pattern>`` and ``<metadata>`` are not drawn, so they
are skipped, and so is whatever is hidden (``display:none``, ``visibility:hidden``) or has
``stroke:none`` (a filled shape, not a stroke); other elements (images, text, rects…) are not
strokes and are ignored.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from lxml import etree

from . import svg_path
from .strokes import Stroke

SVG_NS = "http://www.w3.org/2000/svg"
INKSCAPE_NS = "http://www.inkscape.org/namespaces/inkscape"
CLIPASSO_NS = "http://clipasso.org/ns/1.0"    # the extension's, extension/clipasso_ns.py
_NOT_DRAWN = {"defs", "clipPath", "mask", "symbol", "marker", "pattern", "metadata"}
_STROKE_TAGS = {"path", "line", "polyline", "polygon"}
_INHERITED = ("stroke", "stroke-width", "stroke-opacity", "visibility")


class SvgError(ValueError):
    """An SVG that cannot be read as strokes; the message names the element and the problem."""


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
    strokes: list[Stroke] = []
    _walk(root, (1.0, 0.0, 0.0, 1.0, -origin[0], -origin[1]), {}, strokes)
    return strokes, width, height


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
    m = re.fullmatch(rf"\s*({svg_path.NUMBER})\s*(px)?\s*", value or "")
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


def _style(el: etree._Element, inherited: dict[str, str]) -> dict[str, str]:
    """Stroke properties in effect on ``el``: inherited, then attributes, then ``style``."""
    props = dict(inherited)
    props.pop("display", None)                      # display is not inherited (a hidden parent hides all)
    for name in _INHERITED + ("opacity", "display"):
        if el.get(name) is not None:
            props[name] = el.get(name).strip()
    for decl in (el.get("style") or "").split(";"):
        if ":" in decl:
            name, value = (s.strip() for s in decl.split(":", 1))
            if name in _INHERITED or name in ("opacity", "display"):
                props[name] = value
    # opacity multiplies down the tree instead of being inherited
    own = props.pop("opacity", None)
    if own is not None:
        props["_opacity"] = str(float(inherited.get("_opacity", "1")) * _number(own, "opacity"))
    return props


def _describe(el: etree._Element) -> str:
    tag = etree.QName(el).localname
    ident = el.get("id")
    return f"<{tag} id={ident!r}>" if ident else f"<{tag}> on line {el.sourceline}"


def _walk(el: etree._Element, matrix: svg_path.Matrix, inherited: dict[str, str], out: list[Stroke]) -> None:
    if not isinstance(el.tag, str):
        return
    tag = etree.QName(el).localname
    if tag in _NOT_DRAWN:
        return
    try:
        m = svg_path.multiply(matrix, svg_path.parse_transform(el.get("transform")))
        props = _style(el, inherited)
        if props.get("display") == "none":           # hidden layers and groups draw nothing
            return
        drawn = props.get("visibility", "visible") == "visible" and props.get("stroke", "") != "none"
        if tag in _STROKE_TAGS and drawn:
            out.extend(_element_strokes(el, tag, m, props))
    except (svg_path.PathDataError, SvgError, ValueError) as exc:
        raise SvgError(f"{_describe(el)}: {exc}") from None
    for child in el:
        _walk(child, m, props, out)


def _element_strokes(el: etree._Element, tag: str, m: svg_path.Matrix, props: dict[str, str]) -> list[Stroke]:
    if tag == "path":
        cubics = svg_path.parse_path(el.get("d") or "")
    elif tag == "line":
        p0 = (_number(el.get("x1", "0"), "x1"), _number(el.get("y1", "0"), "y1"))
        p1 = (_number(el.get("x2", "0"), "x2"), _number(el.get("y2", "0"), "y2"))
        cubics = svg_path.parse_path(f"M {p0[0]} {p0[1]} L {p1[0]} {p1[1]}")
    else:
        pts = el.get("points") or ""
        cubics = svg_path.parse_path(f"M {pts}" + (" Z" if tag == "polygon" else "")) if pts.strip() else []
    width = _number(props.get("stroke-width", "1"), "stroke-width") * svg_path.width_scale(m)
    color = _color(props.get("stroke", "#000000"))
    opacity = float(props.get("_opacity", "1")) * _number(props.get("stroke-opacity", "1"), "stroke-opacity")
    return [
        Stroke(points=tuple(svg_path.apply(m, p) for p in c), width=width, color=color, opacity=min(1.0, opacity))  # type: ignore[arg-type]
        for c in cubics
    ]


def _color(value: str) -> str:
    """``#rrggbb`` for hex colours (``#rgb`` expanded); anything else (none, names, urls) → black."""
    v = value.strip().lower()
    if re.fullmatch(r"#[0-9a-f]{6}", v):
        return v
    if re.fullmatch(r"#[0-9a-f]{3}", v):
        return "#" + "".join(c * 2 for c in v[1:])
    return "#000000"
