"""Remake docs/regions.png: the README's picture of a drawn subject region.

Left: the photo. Middle: an ellipse drawn over it in Inkscape, inside a rotated group, selected
with the photo ("Selected shapes mean: Subject"). Right: the sketch layer that Sketch from image
made (the photo faded, the outline dashed, for the picture only). Real headless Inkscape 1.2
(xvfb-run) runs the installed extension in a temporary profile, blocking mode; the three panels
are drawn from the resulting document by cairosvg. The engine uses RANDOM tiny CLIP towers (no
real weights here): the strokes show where regions put them, not what a real sketch looks like.

    .venv/bin/python docs/make_region_pictures.py
"""

from __future__ import annotations

import copy
import io
import json
import sys
from pathlib import Path

import cairosvg
import numpy as np
from PIL import Image
from lxml import etree
from skimage import data

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from extension_support import (  # noqa: E402
    kill_engine, picture_workspace, run_inkscape, write_preferences,
)

WIDTH = 360                      # pixels of each panel
GAP = 12
ELLIPSE = '<g id="grp" transform="rotate(-20 150 95)"><ellipse id="subject" cx="150" cy="95" rx="78" ry="62" ' \
          'style="fill:none;stroke:#1a7f37;stroke-width:3"/></g>'


def render(tree: etree._ElementTree) -> Image.Image:
    png = cairosvg.svg2png(bytestring=etree.tostring(tree), output_width=WIDTH, background_color="white")
    return Image.open(io.BytesIO(png)).convert("RGB")


def variant(tree: etree._ElementTree, *, outline: bool, sketch: bool, photo_opacity: float = 1.0) -> Image.Image:
    t = copy.deepcopy(tree)
    root = t.getroot()
    for el in list(root.iter()):
        if not isinstance(el.tag, str):
            continue
        if el.get("data-clipasso-image") and not sketch:
            el.getparent().remove(el)
        elif el.get("id") == "grp" and not outline:
            el.getparent().remove(el)
        elif el.get("data-clipasso-image") and sketch:
            el.attrib.pop("style", None)                   # the most detailed level is shown anyway
    root.xpath("//*[@id='img1']")[0].set("opacity", str(photo_opacity))
    if sketch and outline:
        root.xpath("//*[@id='subject']")[0].set("style", "fill:none;stroke:#1a7f37;stroke-width:2;stroke-dasharray:6 4")
    return render(t)


def main() -> None:
    setup, doc = picture_workspace(np.asarray(Image.fromarray(data.chelsea()).resize((300, 200))), ELLIPSE)
    root, profile, config, env = doc.parent, setup["profile"], setup["config"], setup["env"]
    try:
        write_preferences(profile, "org.clipasso.sketch", {"strokes": 16, "iterations": 80, "preset": "fast", "seed": 5,
                                                           "open_preview": "false", "background": "false",
                                                           "region_role": "subject"})
        done = root / "done.svg"
        run = run_inkscape(doc, f"select-by-id:img1;select-by-id:grp;org.clipasso.sketch.noprefs;"
                                f"export-filename:{done};export-do", env, root)
        assert run.returncode == 0, run.stderr
    finally:
        kill_engine(config)
    tree = etree.parse(str(done))
    layer = next(el for el in tree.getroot().iter() if isinstance(el.tag, str) and el.get("data-clipasso-image"))
    print(json.dumps({"layer": layer.get("{http://www.inkscape.org/namespaces/inkscape}label")}, ensure_ascii=False))
    panels = [variant(tree, outline=False, sketch=False), variant(tree, outline=True, sketch=False),
              variant(tree, outline=True, sketch=True, photo_opacity=0.25)]
    out_img = Image.new("RGB", (sum(p.width for p in panels) + GAP * 2, max(p.height for p in panels)), "white")
    x = 0
    for p in panels:
        out_img.paste(p, (x, 0))
        x += p.width + GAP
    out_img.save(REPO / "docs" / "regions.png", optimize=True)
    print("wrote", REPO / "docs" / "regions.png")


if __name__ == "__main__":
    main()
