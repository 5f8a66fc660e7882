"""Strokes ⇄ SVG: exact round trip of our output, hand-edited path data, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from lxml import etree

from clipasso_engine import Stroke
from clipasso_engine.raster import render
from clipasso_engine.strokes import random_strokes, strokes_to_tensors, tensors_to_strokes
from clipasso_engine.svg import SvgError, strokes_to_svg, svg_to_strokes

from conftest import cairo_ink

NS = {"svg": "http://www.w3.org/2000/svg"}


def test_our_svg_round_trips_exactly(gen):
    pts = random_strokes(1, 16, 200, 300, gen)[0]
    widths = torch.rand(16, generator=gen) * 5 + 0.5
    strokes = tensors_to_strokes(pts, widths)
    strokes[3] = Stroke(points=strokes[3].points, width=2.0, color="#ff8800", opacity=0.5)
    text = strokes_to_svg(strokes, 300, 200, title="test", description="seed 3")

    back, width, height = svg_to_strokes(text)
    assert (width, height) == (300, 200)
    assert back == strokes
    back_pts, back_w = strokes_to_tensors(back)
    widths[3] = 2.0
    assert torch.equal(back_pts, pts) and torch.equal(back_w, widths)


def test_svg_structure():
    strokes = [Stroke(points=((1, 2), (3, 4), (5, 6), (7, 8)), width=3)]
    root = etree.fromstring(strokes_to_svg(strokes, 64, 48).encode())
    assert root.get("viewBox") == "0 0 64 48"
    (path,) = root.findall("svg:path", NS)
    assert path.get("d") == "M 1 2 C 3 4 5 6 7 8"
    assert path.get("fill") == "none"
    assert path.get("stroke-linecap") == "round"
    assert path.get("stroke-width") == "3"


HAND_EDITED = """<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" width="128" height="96" viewBox="0 0 128 96">
  <defs><path id="hidden" d="M 0 0 L 100 100"/></defs>
  <g transform="translate(10 5)" style="stroke:#000;stroke-width:2;fill:none">
    <path id="lines" d="M 0 0 L 30 0 H 40 V 20 l -10 10 z"/>
    <path id="quad" d="M 0 60 Q 20 40 40 60 T 80 60"/>
    <g transform="rotate(90 90 40) scale(1.5)">
      <path id="arc" stroke-width="2" d="M 50 20 a 10 10 0 0 1 20 0"/>
    </g>
    <path id="subpaths" d="m 60 70 c 5 -10 15 -10 20 0 m 5 0 s 10 10 20 0"/>
  </g>
  <line id="ln" x1="5" y1="90" x2="120" y2="90" stroke="#336699" stroke-width="3" style="stroke-opacity:0.5"/>
  <polyline id="pl" points="100,10 110,20 120,10" stroke="black" fill="none"/>
</svg>"""


def _by_start(strokes, x, y):
    return [s for s in strokes if math.dist(s.points[0], (x, y)) < 1e-6]


def test_hand_edited_path_data_loads_as_documented():
    strokes, width, height = svg_to_strokes(HAND_EDITED)
    assert (width, height) == (128, 96)
    # lines: L, H, V, l and the closing z become 5 straight cubics; quad: Q + T = 2;
    # arc: a half circle = 2 quarter cubics; subpaths: c + s = 2; line 1; polyline 2
    assert len(strokes) == 5 + 2 + 2 + 2 + 1 + 2
    first = _by_start(strokes, 10, 5)[0]                 # "M 0 0 L 30 0" moved by translate(10 5)
    assert first.points[3] == (40, 5)
    assert first.points[1] == pytest.approx((20, 5))       # a line's handles sit at thirds
    assert first.width == 2
    closing = [s for s in strokes if s.points[3] == (10, 5)]
    assert len(closing) == 1                               # z draws back to the subpath's start
    smooth = _by_start(strokes, 50, 65)                    # T reflects Q's control point
    assert smooth and smooth[0].points[1] == pytest.approx((50 + 2 / 3 * 20, 65 + 2 / 3 * 20))
    ln = [s for s in strokes if s.color == "#336699"]
    assert len(ln) == 1 and ln[0].opacity == 0.5 and ln[0].width == 3
    assert all(s.points[0] != (0, 0) or s.points[3] != (100, 100) for s in strokes)   # <defs> skipped


def test_arcs_and_transforms_land_where_cairo_draws_them():
    """Independent check: cairosvg draws the hand-edited file; our strokes read from it and drawn
    by our rasterizer cover the same pixels (arcs, rotation, scale, relative and smooth commands)."""
    strokes, width, height = svg_to_strokes(HAND_EDITED)
    pts, widths = strokes_to_tensors(strokes)
    opacity = torch.tensor([s.opacity for s in strokes])
    assert (opacity == 1).sum() == len(strokes) - 1
    keep = opacity == 1                                    # the half-transparent line is checked above
    ours = render(pts[keep][None], widths[keep][None], int(height), int(width))[0].numpy()
    no_line = HAND_EDITED.replace('<line id="ln"', '<line id="ln" display="none"')
    ref = cairo_ink(no_line, int(width), int(height))
    inked = (ours > 0) | (ref > 0)
    assert np.abs(ours - ref)[inked].mean() < 0.05
    assert ours.sum() == pytest.approx(ref.sum(), rel=0.03)


def test_hidden_and_unstroked_elements_are_not_strokes():
    svg = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 50 50">
      <g style="display:none"><path d="M 0 0 L 10 10"/></g>
      <g visibility="hidden"><path d="M 1 1 L 11 11"/><path visibility="visible" d="M 5 5 L 6 6"/></g>
      <path stroke="none" fill="#000" d="M 2 2 L 12 12"/>
      <path d="M 3 3 L 13 13"/>
    </svg>"""
    strokes, _, _ = svg_to_strokes(svg)
    assert [s.points[0] for s in strokes] == [(5, 5), (3, 3)]


def test_arc_pieces_lie_on_the_circle():
    svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100"><path d="M 30 50 A 20 20 0 1 1 50 70"/></svg>'
    strokes, _, _ = svg_to_strokes(svg)
    assert len(strokes) == 3                              # 270° → three ≤ 90° cubics
    for s in strokes:
        p = np.array(s.points)
        for t in (0.0, 0.25, 0.5, 0.75, 1.0):
            b = (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t * t * p[2] + t**3 * p[3]
            assert math.dist(b, (50, 50)) == pytest.approx(20, abs=0.01)


def test_compact_arc_flags_and_viewbox_origin():
    svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="10 20 100 100"><path d="M20 30a5 5 0 105 5"/></svg>'
    strokes, w, h = svg_to_strokes(svg)
    assert (w, h) == (100, 100)
    assert strokes[0].points[0] == (10, 10)                # viewBox origin becomes (0, 0)
    assert strokes[-1].points[3] == pytest.approx((15, 15))


@pytest.mark.parametrize(
    "text,message",
    [
        ("this is not xml", "not a readable SVG"),
        ('<html xmlns="http://www.w3.org/1999/xhtml"/>', "root element is <html>"),
        ('<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0L1 1"/></svg>', "size is unknown"),
        ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 9"><path id="p7" d="M 0 0 L 5 x"/></svg>',
         "<path id='p7'>.*cannot read path data"),
        ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 9"><path id="q" d="M 0 0 C 1 2 3"/></svg>',
         "<path id='q'>.*cannot read path data"),
        ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 9"><g id="g1" transform="spin(4)"><path d="M0 0L1 1"/></g></svg>',
         "<g id='g1'>.*transform"),
        ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 9"><path d="L 3 3"/></svg>',
         "<path> on line 1.*must start with"),
        ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 9"><path id="w" stroke-width="thick" d="M0 0L1 1"/></svg>',
         "<path id='w'>.*stroke-width"),
    ],
)
def test_bad_svg_gives_a_clear_error(text, message):
    with pytest.raises(SvgError, match=message):
        svg_to_strokes(text)


def test_stroke_validation():
    with pytest.raises(ValueError, match="4 control points"):
        Stroke(points=((0, 0), (1, 1), (2, 2)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        Stroke(points=((0, 0), (1, float("nan")), (2, 2), (3, 3)))
    with pytest.raises(ValueError, match="#rrggbb"):
        Stroke(points=((0, 0), (1, 1), (2, 2), (3, 3)), color="red")
    s = Stroke.from_json({"points": [[0, 0], [1, 1], [2, 2], [3, 3]], "width": 2})
    assert Stroke.from_json(s.to_json()) == s
