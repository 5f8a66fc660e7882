"""The extension's placement math, checked by an independent renderer: coloured marks at known
pixels of a generated photo, strokes mapped onto those pixels, the document drawn by cairosvg,
and the strokes must land where the marks are drawn, through every preserveAspectRatio mode,
rotations, skews, nested groups and a scaled viewBox."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from extension_support import data_uri, import_extension_modules, png_bytes, svg_document

import_extension_modules()

import inkex  # noqa: E402

from clipasso_placement import (  # noqa: E402
    composed_transform,
    linear_scale,
    parse_aspect_ratio,
    pixels_to_image_space,
    pixels_to_local,
)
from clipasso_strokes import add_level_layers, path_strokes, replace_path_strokes  # noqa: E402

PHOTO_W, PHOTO_H = 40, 30
# 3×3-pixel marks: colour → top-left pixel. Centres lie inside what every slice keeps.
MARKS = {(255, 0, 0): (9, 6), (0, 160, 0): (28, 11), (0, 0, 255): (15, 21)}
RENDER = 200
ALIGNS = [f"x{a}Y{b}" for a in ("Min", "Mid", "Max") for b in ("Min", "Mid", "Max")]
ASPECTS = ["none", None] + [f"{a} meet" for a in ALIGNS] + [f"{a} slice" for a in ALIGNS]
# Chains of transforms from the root down to the image: (group transforms, image transform, root viewBox)
CHAINS = {
    "plain": ([], "", "0 0 200 200"),
    "rotated": (["rotate(17 100 100)"], "", "0 0 200 200"),
    "nested-skew-scale": (["translate(12 -6) rotate(-25 90 110)", "skewX(14)", "scale(1.1 0.8)"], "rotate(5)", "0 0 200 200"),
    "viewbox-and-image-matrix": (["skewY(-9)"], "matrix(0.9 0.2 -0.1 1.05 14 8)", "-20 -10 240 240"),
}


def photo() -> np.ndarray:
    pixels = np.full((PHOTO_H, PHOTO_W, 3), 255, np.uint8)
    for colour, (x, y) in MARKS.items():
        pixels[y : y + 3, x : x + 3] = colour
    return pixels


def mark_centre(x: int, y: int) -> tuple[float, float]:
    return x + 1.5, y + 1.5


def document(aspect: str | None, chain: str) -> inkex.SvgDocumentElement:
    groups, image_transform, view_box = CHAINS[chain]
    aspect_attr = f' preserveAspectRatio="{aspect}"' if aspect else ""
    transform_attr = f' transform="{image_transform}"' if image_transform else ""
    image = (
        f'<image id="img1" x="30" y="40" width="130" height="90"{aspect_attr}{transform_attr} '
        f'xlink:href="{data_uri(png_bytes(photo()), wrap=76)}"/>'
    )
    body = image
    for i, t in reversed(list(enumerate(groups))):
        body = f'<g id="g{i}" transform="{t}">{body}</g>'
    body = f'<g id="layer1" inkscape:groupmode="layer" inkscape:label="Photo">{body}</g>'
    return inkex.load_svg(io.BytesIO(svg_document(body, RENDER, RENDER, view_box).encode())).getroot()


def render(svg: inkex.SvgDocumentElement) -> np.ndarray:
    """RGBA floats in [0, 1] as cairosvg draws the document at RENDER × RENDER."""
    import cairosvg
    from PIL import Image

    png = cairosvg.svg2png(bytestring=svg.tostring(), output_width=RENDER, output_height=RENDER)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"), dtype=np.float64) / 255.0


def centroid(weight: np.ndarray) -> np.ndarray:
    """Weighted centre in output pixels (pixel centres at +0.5)."""
    assert weight.sum() > 0.5, "nothing drawn"
    ys, xs = np.mgrid[: weight.shape[0], : weight.shape[1]] + 0.5
    return np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()


def mark_centroids(rgba: np.ndarray) -> dict:
    """Where each colour's mark is drawn: weight = how much that channel exceeds the others."""
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    found = {}
    for colour in MARKS:
        k = int(np.argmax(colour))
        others = np.delete(rgb, k, axis=-1).max(-1)
        found[colour] = centroid(np.clip(rgb[..., k] - others, 0, None))
    return found


def ink_centroid(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    return centroid(1.0 - rgb.mean(-1))


def dot_stroke(cx: float, cy: float, width: float = 1.5) -> dict:
    """A short horizontal stroke centred on (cx, cy) in photo pixels."""
    return {"points": [[cx - 0.6, cy], [cx - 0.2, cy], [cx + 0.2, cy], [cx + 0.6, cy]], "width": width, "color": "#000000", "opacity": 1.0}


def result_json(strokes_per_level: dict) -> dict:
    return {
        "width": PHOTO_W,
        "height": PHOTO_H,
        "levels": {str(n): s for n, s in strokes_per_level.items()},
        "level_info": {str(n): {"seed": 7, "loss": 0.25} for n in strokes_per_level},
        "seed": 7,
        "loss": 0.25,
        "engine": {"random_weights": True},
    }


def hide_image(svg: inkex.SvgDocumentElement) -> None:
    """Leave only the strokes to draw (cairosvg ignores display:none on images)."""
    image = svg.getElementById("img1")
    image.getparent().remove(image)


@pytest.mark.parametrize("chain", list(CHAINS))
@pytest.mark.parametrize("aspect", ASPECTS)
def test_strokes_land_on_the_marks(aspect, chain):
    svg = document(aspect, chain)
    drawn = mark_centroids(render(svg))
    for colour, (x, y) in MARKS.items():
        marked = document(aspect, chain)
        add_level_layers(marked, marked.getElementById("img1"), result_json({1: [dot_stroke(*mark_centre(x, y))]}))
        hide_image(marked)
        # cairosvg draws the photo smoothly and the stroke with round caps: sub-pixel agreement
        assert np.linalg.norm(ink_centroid(render(marked)) - drawn[colour]) < 0.6, (aspect, chain, colour)


@pytest.mark.parametrize("chain", list(CHAINS))
def test_composed_transform_is_inkex_s(chain):
    svg = document("none", chain)
    image = svg.getElementById("img1")
    ours = composed_transform(image)
    assert np.allclose(list(ours.to_hexad()), list(image.composed_transform().to_hexad()), atol=1e-12)


def test_placing_and_reading_strokes_leaves_the_document_s_text_alone():
    """inkex rewrites a transform or style attribute it is asked for; we never ask it."""
    svg = document("xMidYMid slice", "nested-skew-scale")
    for group in svg.iter("{http://www.w3.org/2000/svg}g"):
        group.set("style", "opacity:0.9;  stroke-width : 2")
    before = svg.tostring()
    layer = add_level_layers(svg, svg.getElementById("img1"), result_json({1: [dot_stroke(5, 5)]}))[0]
    path = next(layer.iterchildren("{http://www.w3.org/2000/svg}path"))
    path_strokes(path, -pixels_to_local(svg.getElementById("img1"), PHOTO_W, PHOTO_H, path))
    layer.getparent().remove(layer)
    assert svg.tostring() == before


def test_stroke_properties_are_inherited_and_opacity_multiplies():
    body = ('<g style="stroke:#ff0000;stroke-width:4;opacity:0.5" stroke-opacity="0.5">'
            '<g opacity="0.5"><path id="p" d="M 0 0 L 1 1" style="fill:none"/></g></g>')
    svg = inkex.load_svg(io.BytesIO(svg_document(body).encode())).getroot()
    (stroke,) = path_strokes(svg.getElementById("p"), inkex.Transform(scale=2))
    assert stroke["color"] == "#ff0000" and stroke["width"] == 8 and stroke["opacity"] == pytest.approx(0.125)


def test_each_level_is_a_layer_above_the_image_with_its_strokes():
    svg = document("xMidYMid meet", "nested-skew-scale")
    strokes = {n: [dot_stroke(10 + i, 10) for i in range(n)] for n in (2, 4)}
    layers = add_level_layers(svg, svg.getElementById("img1"), result_json(strokes))
    photo_layer = svg.getElementById("layer1")
    # the image sits in plain groups inside layer1: the new layers are sublayers right after g0
    assert [c.get("id") for c in photo_layer][0] == "g0"
    assert list(photo_layer)[1:] == layers
    assert [len(layer) - 1 for layer in photo_layer[1:]] == [2, 4]   # - the <desc>
    labels = [layer.get("inkscape:label") for layer in photo_layer[1:]]
    # the distinguishing part first; with no settings sent (an old job) the result's seed
    assert labels == ["2 strokes · seed 7 · CLIPasso · random weights", "4 strokes · seed 7 · CLIPasso · random weights"]
    assert all(layer.get("inkscape:groupmode") == "layer" for layer in layers)
    assert "RANDOM CLIP WEIGHTS" in layers[0].desc
    # only the most detailed level stays visible
    assert [layer.style.get("display") for layer in photo_layer[1:]] == ["none", None]
    for path in photo_layer[2].iterchildren("{http://www.w3.org/2000/svg}path"):
        assert path.style.get("fill") == "none" and path.style.get("stroke-linecap") == "round"


def test_stroke_width_follows_the_scale():
    svg = document("none", "plain")
    layer = add_level_layers(svg, svg.getElementById("img1"), result_json({1: [dot_stroke(5, 5, width=2.0)]}))[0]
    path = next(layer.iterchildren("{http://www.w3.org/2000/svg}path"))
    # 40×30 px stretched into 130×90 user units: area scale sqrt(3.25 × 3)
    assert float(path.style.get("stroke-width")) == pytest.approx(2.0 * (130 / 40 * 90 / 30) ** 0.5, abs=1e-3)


def test_without_a_layer_the_new_layer_goes_next_to_the_top_group():
    body = f'<g id="top" transform="rotate(10)"><image id="img1" width="40" height="30" xlink:href="{data_uri(png_bytes(photo()))}"/></g><rect id="r" width="5" height="5"/>'
    svg = inkex.load_svg(io.BytesIO(svg_document(body).encode())).getroot()
    layer = add_level_layers(svg, svg.getElementById("img1"), result_json({1: [dot_stroke(5, 5)]}))[0]
    assert [c.get("id") for c in svg if c.get("id") in ("top", "r", layer.get("id"))] == ["top", layer.get("id"), "r"]


@pytest.mark.parametrize("chain", list(CHAINS))
def test_paths_read_back_in_photo_pixels(chain):
    """Refine's direction: a path drawn over a mark, inside its own transformed groups, reads as
    strokes at the mark's pixels; writing strokes back keeps its id and style."""
    svg = document("xMaxYMin slice", chain)
    image = svg.getElementById("img1")
    drawn = mark_centroids(render(svg))
    for colour, (x, y) in MARKS.items():
        # a dot placed from the rendered mark position, in a group with its own transform
        group = inkex.Group.new("strokes", transform="rotate(-30) translate(3 4) scale(1.3)")
        svg.append(group)
        doc_to_local = -group.composed_transform()
        # the rendered pixel → user units of the root (viewBox) → the group's local space
        vb = [float(v) for v in CHAINS[chain][2].split()]
        ux, uy = vb[0] + drawn[colour][0] * vb[2] / RENDER, vb[1] + drawn[colour][1] * vb[3] / RENDER
        p = doc_to_local.apply_to_point((ux, uy))
        path = inkex.PathElement.new(f"M {p.x} {p.y} L {p.x + 1e-3} {p.y}", id=f"p{x}", style="stroke:#00ff00;stroke-width:2")
        group.append(path)
        to_pixels = -pixels_to_local(image, PHOTO_W, PHOTO_H, path)
        (stroke,) = path_strokes(path, to_pixels)
        assert np.allclose(stroke["points"][0], mark_centre(x, y), atol=0.3), (chain, colour, stroke["points"][0])
        assert stroke["color"] == "#00ff00"
        assert stroke["width"] == pytest.approx(2 * linear_scale(to_pixels))
        replace_path_strokes(path, [dot_stroke(1, 2)], -to_pixels)
        assert path.get("id") == f"p{x}" and path.style.get("stroke") == "#00ff00"
        back = path_strokes(path, to_pixels)[0]["points"]
        assert np.allclose(back, dot_stroke(1, 2)["points"], atol=1e-3)


def test_curves_arcs_and_closed_shapes_become_one_stroke_per_segment():
    svg = inkex.load_svg(io.BytesIO(svg_document('<path id="p" d="M 0 0 C 1 1 2 2 3 3 L 5 5 Z M 10 10 A 5 5 0 0 1 20 20"/>').encode())).getroot()
    strokes = path_strokes(svg.getElementById("p"), inkex.Transform())
    assert len(strokes) == 3 + 3   # curve, line, closing line; a quarter-ish arc in cubic pieces
    assert strokes[0]["points"] == [[0, 0], [1, 1], [2, 2], [3, 3]]
    assert strokes[2]["points"][3] == [0, 0]
    assert all(s["color"] == "#000000" and s["width"] == 1 for s in strokes)


@pytest.mark.parametrize(
    "text, expected",
    [
        (None, ((0.5, 0.5), False)),
        ("", ((0.5, 0.5), False)),
        ("none", (None, False)),
        ("xMinYMax", ((0.0, 1.0), False)),
        ("xMaxYMid slice", ((1.0, 0.5), True)),
        ("defer xMinYMin meet", ((0.0, 0.0), False)),
        ("bogus", ((0.5, 0.5), False)),
        ("xMidYMid cover", ((0.5, 0.5), False)),
    ],
)
def test_parse_aspect_ratio(text, expected):
    assert parse_aspect_ratio(text) == expected


def test_missing_width_or_height_follows_the_pixels():
    image = inkex.Image()
    assert list(pixels_to_image_space(image, 40, 30).apply_to_point((40, 30))) == [40, 30]
    image.set("width", "80")
    assert list(pixels_to_image_space(image, 40, 30).apply_to_point((40, 30))) == [80, 60]
    image = inkex.Image(height="15mm", x="1")
    scale = 15 * 96 / 25.4 / 30
    assert tuple(pixels_to_image_space(image, 40, 30).apply_to_point((40, 30))) == pytest.approx((1 + 40 * scale, 30 * scale))


def test_sketch_layers_keep_settings_seed_engine_and_models_in_our_namespace():
    svg = document("none", "plain")
    result = result_json({3: [dot_stroke(5, 5)] * 3})
    result["engine"] = {"random_weights": False, "version": "0.9.1", "clip": "RN101", "saliency_clip": "ViT-B-32"}
    settings = {"strokes": 3, "seed": 12345, "iterations": 40}
    (layer,) = add_level_layers(svg, svg.getElementById("img1"), result, settings, "job-1")
    assert layer.get("inkscape:label") == "3 strokes · seed 12345 · CLIPasso"
    ns = "{http://clipasso.org/ns/1.0}"
    assert json.loads(layer.get(ns + "settings")) == settings
    assert (layer.get(ns + "seed"), layer.get(ns + "job"), layer.get(ns + "engine-version")) == ("12345", "job-1", "0.9.1")
    assert (layer.get(ns + "clip"), layer.get(ns + "saliency-clip")) == ("RN101", "ViT-B-32")
    text = svg.tostring().decode()
    assert 'xmlns:clipasso="http://clipasso.org/ns/1.0"' in text and 'clipasso:seed="12345"' in text
    # read back by namespace whatever the prefix: a document that spells it differently
    other = inkex.load_svg(io.BytesIO(text.replace("xmlns:clipasso=", "xmlns:cx=").replace("clipasso:", "cx:").encode())).getroot()
    assert other.getElementById(layer.get("id")).get(ns + "seed") == "12345"


def test_each_layer_keeps_its_level_s_clip_score():
    svg = document("none", "plain")
    result = result_json({2: [dot_stroke(5, 5)] * 2, 4: [dot_stroke(5, 5)] * 4})
    result["level_info"]["2"]["clip_score"] = 0.61234
    result["level_info"]["4"]["clip_score"] = -0.25
    layers = add_level_layers(svg, svg.getElementById("img1"), result)
    ns = "{http://clipasso.org/ns/1.0}"
    assert [layer.get(ns + "score") for layer in layers] == ["0.6123", "-0.2500"]
    assert "loss 0.25, CLIP score 0.6123" in layers[0].desc
    # an engine that sent no score (older, or the ViT's weights missing): no attribute, no words
    result["level_info"]["4"]["clip_score"] = None
    (layer,) = add_level_layers(svg, svg.getElementById("img1"), dict(result, levels={"4": result["levels"]["4"]}))
    assert layer.get(ns + "score") is None and "CLIP score" not in layer.desc


@pytest.mark.parametrize("chain", list(CHAINS))
def test_a_deleted_photo_keeps_its_strokes_where_it_was(chain):
    """Placing by the photo's stored pixels → document map (the photo gone) draws exactly what
    placing by the photo itself draws."""
    from clipasso_placement import pixels_to_document

    svg = document("xMaxYMin slice", chain)
    image = svg.getElementById("img1")
    result = result_json({2: [dot_stroke(9, 6), dot_stroke(28, 11)]})
    (by_photo,) = add_level_layers(svg, image, result)
    placement = pixels_to_document(image, PHOTO_W, PHOTO_H)
    anchor = by_photo
    image_parent = image.getparent()
    image_parent.remove(image)
    (by_placement,) = add_level_layers(svg, None, result, to_document=placement, anchor=anchor, image_id="img1")
    assert by_placement.getprevious() is by_photo and by_placement.get("data-clipasso-image") == "img1"
    a = [p.get("d") for p in by_photo.iterchildren("{http://www.w3.org/2000/svg}path")]
    b = [p.get("d") for p in by_placement.iterchildren("{http://www.w3.org/2000/svg}path")]
    assert a == b
