"""Background jobs in the document: the placeholder layer a background Sketch or Refine leaves
where its result will go, what it keeps for Insert finished sketches, and its label.

A placeholder is a locked layer with a dashed frame and a note over the photo (Sketch) or
around the edited strokes (Refine), so a designer sees at once that something is on its way
and how to get it. Everything Insert needs is in ``clipasso:*`` attributes (``clipasso_ns``):
the job, the engine, the settings and seed sent, the photo's id and, should the photo be
deleted meanwhile, where its pixels were (``clipasso:placement``: photo pixels → root user space).
"""

import re
from typing import Any, Dict, List, Optional, Sequence

import inkex

import clipasso_ns
from clipasso_placement import composed_transform
from clipasso_strokes import fmt, layer_anchor

INSERT_MENU = "Extensions ▸ CLIPasso ▸ Insert finished sketches"
HINT_COLOR = "#d45500"
HINT_CLASS = "clipasso-hint"  # the frame and note inside a placeholder
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what an engine's job id looks like (it goes into a URL path)


def valid_job_id(job: Optional[str]) -> bool:
    return bool(job and JOB_ID.match(job))


def strokes_text(settings: Dict[str, Any]) -> str:
    """``16 strokes`` or ``4, 8, 16 strokes`` (abstraction levels)."""
    levels = settings.get("levels")
    if levels:
        return "{} strokes".format(", ".join(str(n) for n in sorted(levels)))
    return "{} strokes".format(settings.get("strokes", 16))


def what(element: inkex.BaseElement) -> str:
    """What the placeholder stands for, for labels and messages: ``sketch of 16 strokes``."""
    if clipasso_ns.get(element, clipasso_ns.PLACEHOLDER) == "refine":
        count = len((clipasso_ns.get(element, clipasso_ns.REPLACES) or "").split())
        return "refinement of {} path{}".format(count, "" if count == 1 else "s")
    return "sketch of {}".format(strokes_text(clipasso_ns.settings_of(element)))


def doing(element: inkex.BaseElement) -> str:
    """What the engine is doing for the placeholder: ``sketching 16 strokes``."""
    if clipasso_ns.get(element, clipasso_ns.PLACEHOLDER) == "refine":
        return "refining " + what(element).split(" of ", 1)[1]
    return "sketching " + strokes_text(clipasso_ns.settings_of(element))


def pending_note(element: inkex.BaseElement, progress: str = "") -> str:
    """``CLIPasso: sketching 16 strokes… 35 %, about 2 minutes left``: the note on the canvas."""
    return "CLIPasso: {}…".format(doing(element)) + (" " + progress if progress else "")


def pending_label(element: inkex.BaseElement, progress: str = "") -> str:
    """``CLIPasso: sketching 16 strokes… 35 %, about 2 minutes left (Extensions ▸ …)``."""
    return "{} ({})".format(pending_note(element, progress), INSERT_MENU)


def progress_text(status: Dict[str, Any]) -> str:
    """``waiting (2 ahead)`` or ``35 %, about 2 minutes left`` from a job's status."""
    if status.get("state") == "queued":
        ahead = status.get("queue_position")
        return "waiting for the engine" + (" ({} ahead)".format(ahead) if ahead else "")
    text = "{:.0f} %".format(100 * float(status.get("progress") or 0.0))
    eta = status.get("eta_s")
    if eta is not None:
        text += ", about {} left".format(rough_duration(float(eta)))
    return text


def rough_duration(seconds: float) -> str:
    """``20 s``, ``3 minutes``, ``2 hours``: how long, as a designer would say it."""
    if seconds < 90:
        return "{:.0f} s".format(max(seconds, 1))
    if seconds < 90 * 60:
        return "{:.0f} minutes".format(seconds / 60)
    return "{:.1f} hours".format(seconds / 3600)


def set_label(element: inkex.BaseElement, label: str, note: Optional[str] = None) -> None:
    """The placeholder's label in the Layers panel, and the note drawn on the canvas."""
    element.set("inkscape:label", label)
    if note is not None:
        for text in element.iter("{http://www.w3.org/2000/svg}text"):
            if text.get("class") == HINT_CLASS:
                text.text = note
                break


def new_placeholder(
    svg: inkex.SvgDocumentElement,
    kind: str,
    job: str,
    engine_url: str,
    settings: Dict[str, Any],
    image: inkex.BaseElement,
    size: Sequence[int],
    placement: inkex.Transform,
    frame: Sequence[float],
    extra: Optional[Dict[str, Any]] = None,
) -> inkex.Layer:
    """A locked placeholder layer for ``job`` with what Insert needs; the caller puts it in place.

    ``size``: the photo's pixels as sent; ``placement``: photo pixels → root user space;
    ``frame``: x0, y0, x1, y1 in photo pixels, the part the dashed frame outlines; ``extra``:
    more ``clipasso:*`` attributes (Refine's)."""
    layer = inkex.Layer.new("")
    layer.set("id", svg.get_unique_id("clipasso-pending-"))
    layer.set("sodipodi:insensitive", "true")  # not selectable: it is a marker, not artwork
    clipasso_ns.put(layer, clipasso_ns.PLACEHOLDER, kind)
    clipasso_ns.put(layer, clipasso_ns.JOB, job)
    clipasso_ns.put(layer, clipasso_ns.ENGINE, engine_url)
    clipasso_ns.put(layer, clipasso_ns.SETTINGS, settings)
    clipasso_ns.put(layer, clipasso_ns.SEED, settings.get("seed"))
    clipasso_ns.put(layer, clipasso_ns.IMAGE, image.get_id())
    clipasso_ns.put(layer, clipasso_ns.SIZE, "{} {}".format(int(size[0]), int(size[1])))
    clipasso_ns.put(layer, clipasso_ns.PLACEMENT, str(placement))
    for name, value in (extra or {}).items():
        clipasso_ns.put(layer, name, value)
    layer.desc = "Placeholder of a CLIPasso {} still being made (job {}). {} replaces it by the result; delete it to " \
                 "drop the result.".format(what(layer), job, INSERT_MENU)
    set_label(layer, pending_label(layer))
    layer.append(hint(frame, pending_note(layer), "Then: {}".format(INSERT_MENU)))
    return layer


def hint(frame: Sequence[float], note: str, second: str) -> inkex.Group:
    """A dashed frame and two lines of text in photo pixels (``frame``: x0, y0, x1, y1); the
    group's transform is set once the placeholder is in the document (:func:`place_hint`)."""
    x0, y0, x1, y1 = frame
    side = max(x1 - x0, y1 - y0, 1.0)
    group = inkex.Group()
    rect = inkex.Rectangle.new(x0, y0, x1 - x0, y1 - y0)
    rect.set("class", HINT_CLASS)
    rect.set("style", "fill:#ffffff;fill-opacity:0.25;stroke:{};stroke-width:{};stroke-dasharray:{},{}".format(
        HINT_COLOR, fmt(side / 150), fmt(side / 40), fmt(side / 60)))
    group.append(rect)
    size = max(min(x1 - x0, y1 - y0) / 16, 1.0)
    band = inkex.Rectangle.new(x0, y0, x1 - x0, min(size * 3.4, y1 - y0))  # keeps the note readable on any photo
    band.set("style", "fill:#ffffff;fill-opacity:0.8;stroke:none")
    group.append(band)
    for row, line in enumerate((note, second)):
        # a sans-serif letter is about 0.55 em wide: the line fits the frame's width
        fitted = min(size * (1 if row == 0 else 0.75), 0.9 * (x1 - x0) / (0.55 * max(len(line), 1)))
        text = inkex.TextElement()
        text.set("x", fmt(x0 + size * 0.6))
        text.set("y", fmt(y0 + size * (1.5 + 1.3 * row)))
        text.set("style", "font-family:sans-serif;font-size:{};font-weight:{};fill:{}".format(
            fmt(fitted), "bold" if row == 0 else "normal", HINT_COLOR))
        if row == 0:
            text.set("class", HINT_CLASS)
        text.text = line
        group.append(text)
    return group


def place_hint(layer: inkex.BaseElement, placement: inkex.Transform) -> None:
    """Set the frame's transform so that its photo pixels land where the photo is."""
    group = layer.find("{http://www.w3.org/2000/svg}g")
    if group is not None:
        group.set("transform", str(-composed_transform(layer) @ placement))


def add_sketch_placeholder(image, layer: inkex.Layer, placement: inkex.Transform) -> None:
    """Put a Sketch placeholder right above the photo (where the sketch layers will go)."""
    layer_anchor(image).addnext(layer)
    place_hint(layer, placement)


def placeholders(svg: inkex.SvgDocumentElement) -> List[inkex.BaseElement]:
    """Every placeholder in the document, in document order."""
    key = clipasso_ns.qname(clipasso_ns.PLACEHOLDER)
    return [el for el in svg.iter() if isinstance(el.tag, str) and el.get(key) is not None]


def photo_size(element: inkex.BaseElement) -> Optional[List[int]]:
    """``clipasso:size`` as [width, height] pixels, or None when missing or unreadable."""
    try:
        width, height = [int(v) for v in (clipasso_ns.get(element, clipasso_ns.SIZE) or "").split()]
    except ValueError:
        return None
    return [width, height]
