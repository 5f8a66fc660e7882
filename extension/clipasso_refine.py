#!/usr/bin/env python3
"""Extensions ▸ CLIPasso ▸ Refine selected strokes: optimize strokes the designer edited.

The selected paths, converted to the photo's pixels, are the engine's starting strokes (each
cubic segment one stroke). On request the other paths of their layers come along as fixed
strokes: they shape the result but do not move. When the job is done every selected path is
redrawn in place (same element, id, style and transform), each segment now a separate
one-segment piece of it; nothing else changes.

Closed shapes selected with the strokes (``clipasso_regions``) are not refined: they mark the
subject, places for more detail or zones to keep empty (the default: "keep this corner empty").

In the background (the default) the paths stay as they are: the run leaves a placeholder layer
on top of their layer, and Insert finished sketches redraws them once the job is done.
"""

import warnings
from typing import List, Sequence, Tuple

import inkex

warnings.simplefilter("ignore")  # inkex turns warnings on; any stderr output opens a dialog in Inkscape

import clipasso_ns  # noqa: E402
from clipasso_common import (  # noqa: E402
    Config, EngineExtension, add_engine_arguments, check_result_size, common_settings, connect, submit_job,
    wait_for_result,
)
from clipasso_jobs import new_placeholder, place_hint  # noqa: E402
from clipasso_limits import MAX_STROKES, PRESET_NAMES, REGION_ROLES  # noqa: E402
from clipasso_placement import pixels_to_document, pixels_to_local  # noqa: E402
from clipasso_regions import marking_shapes, regions_from_shapes  # noqa: E402
from clipasso_strokes import SOURCE_ATTRIBUTE, is_layer, path_strokes, replace_path_strokes  # noqa: E402

LOCK_CHOICES = ("none", "locked", "unselected")


def layer_of(element: inkex.BaseElement) -> inkex.BaseElement:
    """The nearest layer holding ``element``, or the root when it is in none."""
    parent = element.getparent()
    while parent.getparent() is not None and not is_layer(parent):
        parent = parent.getparent()
    return parent


def is_locked(path: inkex.BaseElement, layer: inkex.BaseElement) -> bool:
    """Locked in Inkscape (Object ▸ Lock, or the padlock), itself or through a group in ``layer``."""
    element = path
    while element is not None and element is not layer:
        if element.get("sodipodi:insensitive") == "true":
            return True
        element = element.getparent()
    return False


def fixed_paths(selected: Sequence[inkex.PathElement], lock: str) -> List[inkex.PathElement]:
    """The paths that go along unmoved: none, the locked ones, or all the unselected ones of
    the selected paths' layers (not counting sublayers)."""
    if lock == "none":
        return []
    chosen = set(selected)
    found = []
    for layer in {layer_of(p) for p in selected}:
        for path in layer.iterdescendants("{http://www.w3.org/2000/svg}path"):
            if path in chosen or layer_of(path) is not layer:
                continue
            if lock == "unselected" or is_locked(path, layer):
                found.append(path)
    return found


def source_image(svg: inkex.SvgDocumentElement, paths: Sequence[inkex.PathElement]) -> inkex.Image:
    """The photo the strokes belong to: one selected along with them, else the one their
    layer was sketched from, else the document's only image."""
    images = list(svg.selection.get(inkex.Image))
    if len(images) > 1:
        raise inkex.AbortExtension("Several images are selected. Select the strokes and at most the one photo they belong to.")
    if images:
        return images[0]
    sources = {layer_of(p).get(SOURCE_ATTRIBUTE) for p in paths} - {None}
    if len(sources) == 1:
        image = svg.getElementById(sources.pop())
        if isinstance(image, inkex.Image):
            return image
    images = list(svg.xpath("//svg:image"))
    if len(images) == 1:
        return images[0]
    raise inkex.AbortExtension("Which photo do these strokes belong to? Shift+click the photo to add it to the selection, then try again.")


def frame_around(strokes: Sequence[dict], width: int, height: int) -> Tuple[float, float, float, float]:
    """x0, y0, x1, y1 (photo pixels) around the strokes' control points, a little wider,
    within the photo: what a Refine placeholder outlines."""
    xs = [p[0] for s in strokes for p in s["points"]]
    ys = [p[1] for s in strokes for p in s["points"]]
    pad = 0.03 * max(width, height)
    if not xs:
        return 0.0, 0.0, float(width), float(height)
    x0, x1 = max(min(xs) - pad, 0.0), min(max(xs) + pad, float(width))
    y0, y1 = max(min(ys) - pad, 0.0), min(max(ys) + pad, float(height))
    if x1 - x0 < pad or y1 - y0 < pad:  # strokes off the photo: outline all of it
        return 0.0, 0.0, float(width), float(height)
    return x0, y0, x1, y1


class Refine(EngineExtension):
    """Refine the selected strokes against their photo with the CLIPasso engine."""

    def add_arguments(self, pars):
        super().add_arguments(pars)
        pars.add_argument("--tab", default="refine", help="the dialog tab that was open (Inkscape sends it; unused)")
        add_engine_arguments(pars, "auto", PRESET_NAMES)
        pars.add_argument("--lock", default="none", choices=LOCK_CHOICES, help="which other strokes stay fixed")
        pars.add_argument("--region_role", default="avoid", choices=REGION_ROLES, help="what selected closed shapes mean")

    def effect(self):
        shapes = marking_shapes(self.svg.selection.values())
        moving = [p for p in self.svg.selection.get(inkex.PathElement) if p not in shapes]
        if not moving:
            raise inkex.AbortExtension("Select the strokes (paths) to refine first, then run Refine selected strokes again.")
        image = source_image(self.svg, moving)
        data, (width, height) = self.read_photo(image)

        fixed = [p for p in fixed_paths(moving, self.options.lock) if p not in shapes]
        strokes, owners = [], []
        for path in moving + fixed:
            found = path_strokes(path, -pixels_to_local(image, width, height, path))
            strokes += found
            owners += [path] * len(found)
        if not strokes:
            raise inkex.AbortExtension("The selected paths have no segments to refine.")
        if len(strokes) > MAX_STROKES:
            raise inkex.AbortExtension(
                "That is {} strokes (each curve segment counts); the engine takes up to {}. Select fewer.".format(len(strokes), MAX_STROKES)
            )
        locked = [i for i, owner in enumerate(owners) if owner in fixed]

        settings = common_settings(self.options)
        if shapes:
            settings["regions"] = regions_from_shapes(shapes, image, width, height, self.options.region_role)
        config = Config.load()
        url = self.engine_url(config)
        client = connect(config, url)
        job = submit_job(client, config, data, settings, strokes, locked, open_preview=self.options.open_preview)
        if not self.options.background:
            result = wait_for_result(client, config, job)
            check_result_size(result, (width, height))
            (refined,) = result["levels"].values()
            for path in moving:
                mine = [stroke for stroke, owner in zip(refined, owners) if owner is path]
                if mine:
                    replace_path_strokes(path, mine, pixels_to_local(image, result["width"], result["height"], path))
            return

        replaced = [path for path in moving if path in owners]
        placement = pixels_to_document(image, width, height)
        mapping = {
            clipasso_ns.REPLACES: " ".join(path.get_id() for path in replaced),
            clipasso_ns.COUNTS: " ".join(str(owners.count(path)) for path in replaced),
        }
        layer = new_placeholder(self.svg, "refine", job, url, settings, image, (width, height), placement,
                                frame_around(strokes[: len(owners) - len(locked)], width, height), mapping)
        layer_of(moving[-1]).append(layer)  # on top of the edited strokes' layer
        place_hint(layer, placement)


if __name__ == "__main__":
    Refine().run()
