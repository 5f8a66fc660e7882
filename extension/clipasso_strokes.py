"""Strokes JSON ⇄ ``<path>`` elements of the document.

A stroke (engine, strokes JSON) is one cubic Bézier in image pixels:
``{"points": [[x, y] × 4], "width": w, "color": "#rrggbb", "opacity": o}``. In the document it
is ``M p0 C p1 p2 p3`` in the local space of its ``<path>``; ``clipasso_placement`` gives the
affine map between the two, and stroke widths scale by that map's ``linear_scale``.
"""

from typing import Dict, Iterable, List, Optional, Sequence

import inkex
from inkex.units import convert_unit

import clipasso_ns
from clipasso_placement import composed_transform, linear_scale, pixels_to_document

Stroke = Dict[str, object]
SOURCE_ATTRIBUTE = "data-clipasso-image"  # on a sketch layer: the id of the <image> it was drawn from
RANDOM_NOTE = "RANDOM CLIP WEIGHTS: a test of the machinery, not a real sketch"


def fmt(value: float) -> str:
    """A coordinate as short text: 4 decimals of user units, no trailing zeros."""
    text = "{:.4f}".format(value).rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def strokes_path_data(strokes: Iterable[Stroke], transform: inkex.Transform) -> str:
    """Path data ``M p0 C p1 p2 p3`` (one subpath per stroke) with the points taken from image
    pixels into local space by ``transform``; an affine map keeps a cubic Bézier a cubic."""
    parts = []
    for stroke in strokes:
        pts = [transform.apply_to_point(p) for p in stroke["points"]]  # type: ignore[union-attr]
        coords = ["{} {}".format(fmt(p.x), fmt(p.y)) for p in pts]
        parts.append("M {} C {} {} {}".format(*coords))
    return " ".join(parts)


def stroke_style(stroke: Stroke, scale: float) -> inkex.Style:
    """An open, round-capped stroke; ``scale`` turns image pixels into local units."""
    return inkex.Style(
        [
            ("fill", "none"),
            ("stroke", str(stroke.get("color", "#000000"))),
            ("stroke-width", fmt(float(stroke.get("width", 1.0)) * scale)),  # type: ignore[arg-type]
            ("stroke-linecap", "round"),
            ("stroke-linejoin", "round"),
            ("stroke-opacity", fmt(float(stroke.get("opacity", 1.0)))),  # type: ignore[arg-type]
        ]
    )


def is_layer(element: inkex.BaseElement) -> bool:
    return element.get("inkscape:groupmode") == "layer"


def layer_anchor(image: inkex.BaseElement) -> inkex.BaseElement:
    """The element the new layers go right after: the image itself, or its outermost ancestor
    below the nearest layer (or the root), so that a layer never lands inside a plain group."""
    anchor = image
    parent = anchor.getparent()
    while parent is not None and parent.getparent() is not None and not is_layer(parent):
        anchor, parent = parent, parent.getparent()
    return anchor


def level_label(strokes: int, seed: object, random_weights: bool, cancelled: bool = False) -> str:
    """``16 strokes · seed 3 · CLIPasso`` (+ `` · cancelled``, `` · random weights``): the part
    that tells sketches apart first, as the Layers panel may cut the end off."""
    parts = ["{} strokes".format(strokes)]
    if seed is not None:
        parts.append("seed {}".format(seed))
    parts.append("CLIPasso")
    if cancelled:
        parts.append("cancelled")
    if random_weights:
        parts.append("random weights")
    return " · ".join(parts)


def score_text(score: object) -> Optional[str]:
    """A CLIP score as text with 4 decimals; None when the engine sent none (older engines,
    weights missing) or something that is not a number."""
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        return None
    return "{:.4f}".format(score)


def mark_sketch_layer(layer: inkex.BaseElement, result: Dict, settings: Dict, job: Optional[str]) -> None:
    """What a sketch layer keeps so it can be rerun or varied: the settings sent, the seed, the
    job, and the engine's version and models (``clipasso:*`` attributes)."""
    engine = result.get("engine") or {}
    clipasso_ns.put(layer, clipasso_ns.SETTINGS, settings)
    clipasso_ns.put(layer, clipasso_ns.SEED, settings.get("seed", result.get("seed")))
    clipasso_ns.put(layer, clipasso_ns.JOB, job)
    clipasso_ns.put(layer, clipasso_ns.ENGINE_VERSION, engine.get("version"))
    clipasso_ns.put(layer, clipasso_ns.CLIP, engine.get("clip"))
    clipasso_ns.put(layer, clipasso_ns.SALIENCY_CLIP, engine.get("saliency_clip"))
    if engine.get("stopped") == "cancelled":
        clipasso_ns.put(layer, clipasso_ns.STOPPED, "cancelled")


def add_level_layers(
    svg: inkex.SvgDocumentElement,
    image: Optional[inkex.BaseElement],
    result: Dict,
    settings: Optional[Dict] = None,
    job: Optional[str] = None,
    to_document: Optional[inkex.Transform] = None,
    anchor: Optional[inkex.BaseElement] = None,
    image_id: Optional[str] = None,
) -> List[inkex.Layer]:
    """One new layer per abstraction level right above ``image``, one ``<path>`` per stroke.

    ``result`` is the engine's strokes JSON (points in the photo's pixels, ``width``/``height``
    its size); ``settings`` the settings sent (kept on each layer with ``job``). The most
    detailed level ends on top and is the only one left visible, so the levels do not draw
    over each other; the others are a click away in the Layers panel.

    A photo deleted meanwhile (``image`` None): ``to_document`` (photo pixels → root user
    space, as it was) places the strokes and the layers go right after ``anchor``.
    Returns the layers from bottom to top.
    """
    engine = result.get("engine") or {}
    random_weights = bool(engine.get("random_weights"))
    cancelled = engine.get("stopped") == "cancelled"
    sent = settings if settings is not None else engine.get("settings") or {}
    levels = sorted(result["levels"].items(), key=lambda item: int(item[0]))
    if image is not None:
        anchor = layer_anchor(image)
        to_document = pixels_to_document(image, result["width"], result["height"])
        image_id = image.get_id()
    layers = []
    for count, strokes in reversed(levels):  # each addnext lands just above the anchor
        info = (result.get("level_info") or {}).get(count) or {"seed": result.get("seed"), "loss": result.get("loss")}
        layer = inkex.Layer.new(level_label(int(count), sent.get("seed", info.get("seed")), random_weights, cancelled))
        layer.set("id", svg.get_unique_id("clipasso{}-".format(count)))
        layer.set(SOURCE_ATTRIBUTE, image_id)
        mark_sketch_layer(layer, result, sent, job)
        score = score_text(info.get("clip_score"))
        clipasso_ns.put(layer, clipasso_ns.SCORE, score)
        description = "CLIPasso sketch of #{}: {} strokes, best seed {}, loss {}".format(
            image_id, count, info.get("seed"), info.get("loss")
        )
        if score is not None:
            description += ", CLIP score " + score
        if cancelled:
            description += "; cancelled: the best strokes so far"
        layer.desc = description + ("; " + RANDOM_NOTE if random_weights else "")
        if layers:
            layer.style["display"] = "none"
        anchor.addnext(layer)
        to_local = -composed_transform(layer) @ to_document
        for stroke in strokes:
            path = inkex.PathElement()
            path.set("id", svg.get_unique_id("clipasso{}-stroke".format(count)))
            path.set("d", strokes_path_data([stroke], to_local))
            path.style = stroke_style(stroke, linear_scale(to_local))
            layer.append(path)
        layers.append(layer)
    return layers[::-1]


def segments(path: inkex.PathElement) -> List[List[List[float]]]:
    """The cubic segments of a path in its local space, each as 4 control points; lines, arcs
    and quadratics are converted to cubics, and a closed subpath gets its closing segment."""
    found = []
    for sub in inkex.CubicSuperPath(path.path):
        for start, end in zip(sub, sub[1:]):
            found.append([list(start[1]), list(start[2]), list(end[0]), list(end[1])])
    return found


def stroke_color(value: Optional[str]) -> str:
    """``#rrggbb`` of a CSS colour; the engine draws black where paint is not a plain colour."""
    try:
        return str(inkex.Color(value).to_rgb()) if value and value != "none" else "#000000"
    except (inkex.colors.ColorError, ValueError, TypeError):
        return "#000000"


def own_value(node: inkex.BaseElement, key: str) -> Optional[str]:
    """A property from the node's own ``style`` or presentation attribute, read from the raw
    attributes (inkex's ``.style`` would rewrite them; CSS classes are not consulted)."""
    return inkex.Style(node.attrib.get("style", "")).get(key) or node.attrib.get(key)


def style_value(element: inkex.BaseElement, key: str) -> Optional[str]:
    """An inherited stroke property as it applies to ``element``: its own, else that of the
    nearest ancestor that sets it."""
    for node in [element, *element.iterancestors()]:
        value = own_value(node, key)
        if value and value != "inherit":
            return value
    return None


def opacity_of(element: inkex.BaseElement) -> float:
    """Stroke opacity times the ``opacity`` of the element and of every group around it."""
    total = 1.0
    values = [style_value(element, "stroke-opacity")] + [own_value(n, "opacity") for n in [element, *element.iterancestors()]]
    for value in values:
        try:
            total *= float(value) if value else 1.0
        except ValueError:
            pass
    return min(1.0, max(0.0, total))


def path_strokes(path: inkex.PathElement, to_pixels: inkex.Transform) -> List[Stroke]:
    """The strokes of a ``<path>`` in image pixels (``to_pixels``: local space → pixels), with
    the path's stroke width, colour and opacity as the engine's stroke fields."""
    width = convert_unit(style_value(path, "stroke-width") or "1", "px") * linear_scale(to_pixels)
    color = stroke_color(style_value(path, "stroke"))
    opacity = opacity_of(path)
    return [
        {"points": [list(to_pixels.apply_to_point(p)) for p in points], "width": width, "color": color, "opacity": opacity}
        for points in segments(path)
    ]


def replace_path_strokes(path: inkex.PathElement, strokes: Sequence[Stroke], from_pixels: inkex.Transform) -> None:
    """Redraw ``path`` as ``strokes`` (image pixels), keeping its id, style and transform.

    Refine returns each piece of a path as its own stroke: a path of several segments comes
    back as as many separate one-segment pieces (one ``M … C …`` subpath each), no longer joined."""
    path.set("d", strokes_path_data(strokes, from_pixels))
