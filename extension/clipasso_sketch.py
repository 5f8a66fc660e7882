#!/usr/bin/env python3
"""Extensions ▸ CLIPasso ▸ Sketch from image: the selected photo becomes a few Bézier strokes.

The photo's encoded bytes go to the engine as they are; the strokes come back in the photo's
pixels and are placed over the photo (x/y/width/height, preserveAspectRatio, every transform),
one new layer per abstraction level. Nothing else in the document changes.

Closed shapes selected with the photo mark regions of it (``clipasso_regions``): the subject,
places for more detail, zones to keep empty. They are read, never changed.

In the background (the default) the run only submits the job and leaves a placeholder layer
above the photo (``clipasso_jobs``); Insert finished sketches puts the strokes in later.

An engine started here that runs other models than ``config.json`` names and has nothing to do
is restarted with them before the photo goes out (``clipasso_common.with_configured_models``).
"""

import warnings
from typing import Any, Dict, List, Optional

import inkex

warnings.simplefilter("ignore")  # inkex turns warnings on; any stderr output opens a dialog in Inkscape

from clipasso_common import (  # noqa: E402
    Config, EngineExtension, add_engine_arguments, check_result_size, common_settings, connect, submit_job,
    wait_for_result, with_configured_models,
)
from clipasso_jobs import add_sketch_placeholder, new_placeholder  # noqa: E402
from clipasso_limits import PRESET_NAMES, REGION_ROLES  # noqa: E402
from clipasso_placement import pixels_to_document  # noqa: E402
from clipasso_regions import marking_shapes, regions_from_shapes  # noqa: E402
from clipasso_strokes import add_level_layers  # noqa: E402


def parse_levels(text: str) -> Optional[List[int]]:
    """``"4,8,16,32"`` → [4, 8, 16, 32]; blank → None (one sketch of ``strokes`` strokes)."""
    items = [part.strip() for part in (text or "").replace(";", ",").split(",") if part.strip()]
    if not items:
        return None
    try:
        return [int(part) for part in items]
    except ValueError:
        raise inkex.AbortExtension(
            "Abstraction levels must be stroke counts separated by commas, like 4,8,16,32 (got '{}').".format(text)
        )


def sketch_settings(options: Any) -> Dict[str, Any]:
    """The dialog's choices as engine settings; 0 iterations or seeds means the preset's, seed 0
    a new random seed (``clipasso_common.common_settings``)."""
    settings = common_settings(options)
    settings["width"] = options.width
    levels = parse_levels(options.levels)
    if levels:
        settings["levels"] = levels
    else:
        settings["strokes"] = options.strokes
    if options.seeds > 0:
        settings["seeds"] = options.seeds
    return settings


def selected_image(svg: inkex.SvgDocumentElement) -> inkex.Image:
    """The one ``<image>`` among the selection (or inside selected groups)."""
    images = list(svg.selection.get(inkex.Image))
    if not images:
        raise inkex.AbortExtension("Select a photo (an imported image) first, then run Sketch from image again.")
    if len(images) > 1:
        raise inkex.AbortExtension(
            "{} images are selected. Select just one photo to sketch.".format(len(images))
        )
    return images[0]


class Sketch(EngineExtension):
    """Sketch the selected image with the CLIPasso engine."""

    def add_arguments(self, pars):
        super().add_arguments(pars)
        pars.add_argument("--tab", default="sketch", help="the dialog tab that was open (Inkscape sends it; unused)")
        pars.add_argument("--strokes", type=int, default=16, help="number of strokes")
        pars.add_argument("--levels", default="", help="several stroke counts, e.g. 4,8,16,32 (one layer each)")
        add_engine_arguments(pars, "auto", PRESET_NAMES)
        pars.add_argument("--seeds", type=int, default=0, help="random starts, best kept; 0 = the preset's")
        pars.add_argument("--width", type=float, default=3.0, help="stroke width in pixels of the 224-px canvas")
        pars.add_argument("--region_role", default="subject", choices=REGION_ROLES, help="what selected shapes mean")

    def effect(self):
        image = selected_image(self.svg)
        settings = sketch_settings(self.options)
        data, shown = self.read_photo(image)
        shapes = marking_shapes(self.svg.selection.values())
        if shapes:
            settings["regions"] = regions_from_shapes(shapes, image, shown[0], shown[1], self.options.region_role)
        config = Config.load()
        url = self.engine_url(config)
        client = with_configured_models(config, url, connect(config, url))
        job = submit_job(client, config, data, settings, open_preview=self.options.open_preview)
        if not self.options.background:
            result = wait_for_result(client, config, job)
            check_result_size(result, shown)
            add_level_layers(self.svg, image, result, settings)
            return
        placement = pixels_to_document(image, shown[0], shown[1])
        layer = new_placeholder(self.svg, "sketch", job, url, settings, image, shown, placement, (0, 0, shown[0], shown[1]))
        add_sketch_placeholder(image, layer, placement)


if __name__ == "__main__":
    Sketch().run()
