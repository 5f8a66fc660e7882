"""Drawn regions in the extension (docs/method.md §9, docs/inkscape.md §3): selected shapes → polygons in the photo's pixels,
and the whole way through Debian's Inkscape 1.2 with the engine (tiny random CLIP towers).

The e2e test draws an ellipse inside a rotated group over a photo in a translated layer, selects
both, runs Sketch from image with "Selected shapes mean: subject", and checks in document
coordinates that every stroke lies inside the ellipse, and that the ellipse and the photo are
exactly as they were.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from lxml import etree

from clipasso_engine.regions import inside_even_odd
from extension_support import (
    ABORT_STATUS, data_uri, import_extension_modules, install_for_tests, installed_client, kill_engine,
    needs_inkscape, needs_inkscape_python, png_bytes, run_inkscape, small_photo, svg_document, write_preferences,
)
from test_ext_inkscape import fast, path_points, sketch_args

import_extension_modules()

import inkex  # noqa: E402

from clipasso_placement import composed_transform, pixels_to_document  # noqa: E402
from clipasso_regions import (  # noqa: E402
    clip_to_box,
    flatten_cubic,
    region_shapes,
    regions_from_shapes,
)

SVG = "{http://www.w3.org/2000/svg}"
PHOTO_W, PHOTO_H = 64, 48
# the photo at x=20, y=30, 160×120 user units in a translated layer; the ellipse in a rotated group
ELLIPSE = dict(cx=100, cy=90, rx=45, ry=28)
GROUP_TRANSFORM = "rotate(30 100 90)"


def photo() -> np.ndarray:
    return small_photo(PHOTO_W, PHOTO_H)


def document(extra: str = "") -> str:
    e = ELLIPSE
    return svg_document(
        '<g id="layer1" inkscape:groupmode="layer" inkscape:label="Photo" transform="translate(5 7)">'
        f'<image id="img1" x="20" y="30" width="160" height="120" xlink:href="{data_uri(png_bytes(photo()))}"/>'
        f'<g id="grp" transform="{GROUP_TRANSFORM}"><ellipse id="ell" cx="{e["cx"]}" cy="{e["cy"]}" rx="{e["rx"]}" '
        f'ry="{e["ry"]}" style="fill:none;stroke:#f00"/></g>{extra}</g>'
    )


def ap(transform: inkex.Transform, point) -> tuple:
    """``transform`` applied to one point, as plain floats."""
    v = transform.apply_to_point((float(point[0]), float(point[1])))
    return (v.x, v.y)


def load(text: str) -> inkex.SvgDocumentElement:
    return inkex.load_svg(text.encode()).getroot()


def inside_ellipse(doc_points: np.ndarray, ellipse_to_doc: inkex.Transform, grow: float = 0.0) -> np.ndarray:
    """Whether document points lie inside the ellipse (its radii grown by ``grow`` user units)."""
    back = -ellipse_to_doc
    e = ELLIPSE
    out = []
    for x, y in doc_points:
        lx, ly = ap(back, (x, y))
        out.append(((lx - e["cx"]) / (e["rx"] + grow)) ** 2 + ((ly - e["cy"]) / (e["ry"] + grow)) ** 2 <= 1.0)
    return np.array(out)


# --- the mapping, without Inkscape -------------------------------------------------------------

def test_ellipse_under_a_rotated_group_maps_into_photo_pixels_within_half_a_pixel():
    svg = load(document())
    image, shape = svg.getElementById("img1"), svg.getElementById("ell")
    (region,) = regions_from_shapes(region_shapes([svg.getElementById("grp")]), image, PHOTO_W, PHOTO_H, "subject")
    assert region["role"] == "subject"
    poly = np.array(region["polygon"])
    assert 12 <= len(poly) <= 400
    # every vertex lies on the true ellipse: map it back to the ellipse's own space
    to_doc = pixels_to_document(image, PHOTO_W, PHOTO_H)
    doc = np.array([ap(to_doc, p) for p in poly])
    back = -composed_transform(shape)
    e = ELLIPSE
    scale = PHOTO_W / 160.0                                  # photo px per user unit
    for x, y in doc:
        lx, ly = ap(back, (x, y))
        t = math.atan2((ly - e["cy"]) / e["ry"], (lx - e["cx"]) / e["rx"])
        on = (e["cx"] + e["rx"] * math.cos(t), e["cy"] + e["ry"] * math.sin(t))
        assert math.hypot(lx - on[0], ly - on[1]) * scale < 0.05
    # and the chords between them stay within 0.5 photo px of the curve: check their midpoints
    mids = (poly + np.roll(poly, -1, axis=0)) / 2
    for x, y in mids:
        lx, ly = ap(back, ap(to_doc, (x, y)))
        r = math.hypot((lx - e["cx"]) / e["rx"], (ly - e["cy"]) / e["ry"])
        assert (1 - r) * e["ry"] * scale < 0.5
    # the ellipse's centre, rotated with it, is inside the polygon (even-odd, as the engine reads
    # it), and the photo's corner pixel is not
    cx, cy = ap(-to_doc, ap(composed_transform(shape), (e["cx"], e["cy"])))
    inside = inside_even_odd(poly, np.array([cx, 0.5]), np.array([cy, 0.5]))
    assert 0 < cx < PHOTO_W and 0 < cy < PHOTO_H
    assert (bool(inside[0, 0]), bool(inside[1, 1])) == (True, False)


def test_labels_override_the_dialog_and_holes_survive():
    hole = ('<path id="ring" inkscape:label="avoid" d="M 30 40 H 170 V 140 H 30 Z M 60 60 H 140 V 120 H 60 Z"/>'
            '<rect id="box" x="40" y="50" width="20" height="20"/>')
    svg = load(document(hole))
    shapes = region_shapes([svg.getElementById("ring"), svg.getElementById("box")])
    regions = regions_from_shapes(shapes, svg.getElementById("img1"), PHOTO_W, PHOTO_H, "detail")
    assert [r["role"] for r in regions] == ["avoid", "detail"]
    ring = np.array(regions[0]["polygon"])
    # two rings joined there and back: the outer start appears again after the inner ring
    assert (ring == ring[0]).all(1).sum() >= 2


def test_flattening_and_clipping():
    pts = flatten_cubic((0, 0), (0, 100), (100, 100), (100, 0), tolerance=0.5)
    curve = [(3 * t * (1 - t) ** 2 * 0 + 3 * t * t * (1 - t) * 100 + t ** 3 * 100,
              3 * t * (1 - t) ** 2 * 100 + 3 * t * t * (1 - t) * 100) for t in np.linspace(0, 1, 2001)]
    poly = np.array([(0, 0), *pts])
    dist = [min(_segment_distance(c, poly[i], poly[i + 1]) for i in range(len(poly) - 1)) for c in curve[::10]]
    assert max(dist) <= 0.5 and len(pts) < 40
    square = [(-50, -50), (150, -50), (150, 150), (-50, 150)]
    assert sorted(clip_to_box(square, 0, 0, 100, 100)) == [(0, 0), (0, 100), (100, 0), (100, 100)]


def _segment_distance(p, a, b) -> float:
    p, a, b = np.asarray(p, float), np.asarray(a, float), np.asarray(b, float)
    t = np.clip(np.dot(p - a, b - a) / max(np.dot(b - a, b - a), 1e-12), 0, 1)
    return float(np.linalg.norm(p - (a + t * (b - a))))


def test_a_shape_beside_the_photo_is_named():
    svg = load(document('<rect id="far" x="400" y="400" width="20" height="20"/>'))
    with pytest.raises(inkex.AbortExtension, match="'far' does not overlap the photo"):
        regions_from_shapes([svg.getElementById("far")], svg.getElementById("img1"), PHOTO_W, PHOTO_H, "subject")


# --- Inkscape 1.2, end to end ------------------------------------------------------------------

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("regions-e2e")
    setup = install_for_tests(root)
    yield setup
    kill_engine(setup["config"])


def element_snapshot(path, ids) -> dict:
    root = etree.parse(str(path)).getroot()
    return {i: dict(root.xpath(f"//*[@id='{i}']")[0].attrib) for i in ids}


@needs_inkscape
@needs_inkscape_python
def test_ellipse_under_a_rotated_group_as_subject_gives_strokes_only_inside_it(setup, tmp_path):
    in_svg, out_svg = tmp_path / "in.svg", tmp_path / "out.svg"
    in_svg.write_text(document())
    write_preferences(setup["profile"], "org.clipasso.sketch",
                      {"strokes": 6, "iterations": 4, "preset": "fast", "open_preview": "false", "background": "false",
                       "region_role": "subject", "mask": "true"})   # mask: an earlier version's box, now ignored
    out = run_inkscape(in_svg, f"select-by-id:img1;select-by-id:grp;org.clipasso.sketch.noprefs;"
                               f"export-filename:{out_svg};export-do", setup["env"], tmp_path)
    assert out.returncode == 0, out.stderr
    root = etree.parse(str(out_svg)).getroot()
    layers = [g for g in root.iter(SVG + "g") if g.get("data-clipasso-image")]
    assert len(layers) == 1
    paths = layers[0].findall(SVG + "path")
    assert len(paths) == 6
    # stroke points (M x y C …) in the layer's space → document: through the layer chain's transforms
    doc = inkex.load_svg(str(out_svg)).getroot()
    layer = doc.getElementById(layers[0].get("id"))
    to_doc = composed_transform(layer)
    pts = [ap(to_doc, xy) for xy in path_points(layers[0])]
    ellipse_to_doc = composed_transform(doc.getElementById("ell"))
    # the control points (whose hull holds each curve) inside the ellipse, with a stroke's half
    # width of slack (3 canvas px on a 224-px canvas of the 160-unit photo ≈ 2 units, so 1.5)
    assert inside_ellipse(np.array(pts), ellipse_to_doc, grow=1.5).all(), pts
    # the ellipse, its group and the photo are exactly as they were
    assert element_snapshot(out_svg, ["ell", "grp", "img1", "layer1"]) == element_snapshot(in_svg, ["ell", "grp", "img1", "layer1"])
    assert any('"regions"' in v and '"subject"' in v for v in layers[0].attrib.values())   # the settings sent


@needs_inkscape_python
def test_a_shape_without_area_is_one_message(setup, tmp_path):
    doc = tmp_path / "in.svg"
    text = document('<path id="open" d="M 30 40 L 50 60" inkscape:label="avoid"/>')
    doc.write_text(text)
    out = fast(setup, "clipasso_sketch.py", ["--id=img1", "--id=open", *sketch_args()], doc, tmp_path)
    assert out.returncode == ABORT_STATUS, out.stderr
    assert "'open' encloses no area" in out.stderr
    assert not (tmp_path / "out.svg").exists() and doc.read_text() == text


@needs_inkscape_python
def test_refine_reads_a_selected_closed_shape_as_a_zone_to_keep_empty(setup, tmp_path):
    """Refine with strokes and a rectangle selected: the rectangle is not refined (it stays as it
    was), and the job the engine got carries it as an avoid region in the photo's pixels."""
    doc = tmp_path / "in.svg"
    strokes = ('<path id="s1" d="M 60 60 C 70 70 80 60 90 70" style="fill:none;stroke:#000"/>'
               '<path id="s2" d="M 120 100 C 130 110 140 100 150 110" style="fill:none;stroke:#000"/>'
               '<rect id="corner" x="20" y="30" width="40" height="30" style="fill:none;stroke:#c00"/>')
    doc.write_text(document(strokes))
    args = ["--id=s1", "--id=s2", "--id=corner", "--id=img1", "--iterations=3", "--preset=fast",
            "--open_preview=false", "--background=false"]
    out = fast(setup, "clipasso_refine.py", args, doc, tmp_path)
    assert out.returncode == 0, out.stderr
    after = element_snapshot(tmp_path / "out.svg", ["corner", "img1"])
    assert after == element_snapshot(doc, ["corner", "img1"])
    refined = etree.parse(str(tmp_path / "out.svg")).getroot()
    assert refined.xpath("//*[@id='s1']")[0].get("d") != "M 60 60 C 70 70 80 60 90 70"

    engine = installed_client(setup)
    status = engine.status(engine.jobs()[0]["id"])                                  # newest first
    (region,) = status["regions"]
    assert region["role"] == "avoid"
    # the rect (20, 30, 40×30 user units in a layer moved by (5, 7)) over the photo at (20, 30),
    # 160 units for 64 px: pixels x 0..16, y 0..12
    poly = np.array(region["polygon"])
    assert np.allclose(poly.min(0), [0, 0], atol=1e-6) and np.allclose(poly.max(0), [16, 12], atol=1e-6)
