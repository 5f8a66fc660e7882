"""Remake docs/background-flow.png: the README's pictures of a background sketch in Inkscape.

Left: the document right after *Sketch from image* with "Keep working while it sketches": the
placeholder over the photo. Right: the same after *Insert finished sketches* (the photo faded for
the picture). Real headless Inkscape 1.2 (xvfb-run) runs the installed extension in a temporary
profile; the engine uses RANDOM tiny CLIP towers (no real weights here), so the strokes show the
machinery, not a real sketch.

    .venv/bin/python docs/make_background_pictures.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from lxml import etree
from skimage import data

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from extension_support import (  # noqa: E402
    installed_client, kill_engine, picture_workspace, run_inkscape, write_preferences,
)

NS = "{http://clipasso.org/ns/1.0}"
WIDTH = 480


def export_png(svg: Path, png: Path, env: dict) -> None:
    subprocess.run(["xvfb-run", "-a", "inkscape", "--export-type=png", f"--export-filename={png}",
                    f"--export-width={WIDTH}", "--export-background=white", "--export-background-opacity=1", str(svg)],
                   env=env, check=True, capture_output=True, timeout=300)


def main() -> None:
    setup, doc = picture_workspace(np.asarray(Image.fromarray(data.chelsea()).resize((300, 225))))
    root, profile, config, env = doc.parent, setup["profile"], setup["config"], setup["env"]
    try:
        write_preferences(profile, "org.clipasso.sketch", {"strokes": 16, "iterations": 60, "preset": "fast",
                                                           "seed": 3, "open_preview": "false", "background": "true"})
        pending = root / "pending.svg"
        run = run_inkscape(doc, f"select-by-id:img1;org.clipasso.sketch.noprefs;export-filename:{pending};export-do", env, root)
        assert run.returncode == 0, run.stderr
        export_png(pending, root / "pending.png", env)

        holder = next(el for el in etree.parse(str(pending)).getroot().iter() if el.get(NS + "job"))
        client = installed_client(setup)
        while client.status(holder.get(NS + "job"), preview=False)["state"] not in ("done", "failed", "cancelled"):
            time.sleep(1)
        inserted = root / "inserted.svg"
        write_preferences(profile, "org.clipasso.insert", {})
        run = run_inkscape(pending, f"org.clipasso.insert.noprefs;export-filename:{inserted};export-do", env, root)
        assert run.returncode == 0, run.stderr
        tree = etree.parse(str(inserted))
        tree.getroot().xpath("//*[@id='img1']")[0].set("opacity", "0.3")   # faded, for the picture only
        tree.write(str(inserted))
        export_png(inserted, root / "inserted.png", env)
        layer = next(el for el in tree.getroot().iter() if el.get("data-clipasso-image"))
        print(json.dumps({"placeholder": holder.get("{http://www.inkscape.org/namespaces/inkscape}label"),
                          "layer": layer.get("{http://www.inkscape.org/namespaces/inkscape}label")}, ensure_ascii=False))
    finally:
        kill_engine(config)
    left, right = Image.open(root / "pending.png").convert("RGB"), Image.open(root / "inserted.png").convert("RGB")
    both = Image.new("RGB", (left.width + right.width + 12, max(left.height, right.height)), "white")
    both.paste(left, (0, 0))
    both.paste(right, (left.width + 12, 0))
    both.save(REPO / "docs" / "background-flow.png", optimize=True)
    print("wrote", REPO / "docs" / "background-flow.png")


if __name__ == "__main__":
    main()
