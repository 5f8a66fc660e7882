"""Drawn regions (docs/method.md §9): subject, detail and avoid polygons through the real engine.

Tiny random CLIP towers and small real photos: these tests check where strokes start, what CLIP
is shown and where the ink ends up, never the artistic quality of a sketch.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from clipasso_engine import SketchSettings, Stroke, sketch
from clipasso_engine import loss as loss_module
from clipasso_engine.cli import main
from clipasso_engine.image import load_image, make_canvas
from clipasso_engine.limits import MAX_REGIONS, MAX_VERTICES
from clipasso_engine.regions import Region, RegionError, canvas_masks, inside_even_odd

from conftest import cairo_ink

TINY = {"clip": "random:tiny-RN", "saliency_clip": "random:tiny-ViT", "device": "cpu"}
W, H = 150, 100


def settings(**kw) -> SketchSettings:
    base = dict(TINY, preset="fast", iterations=1, eval_every=5, strokes=16, early_stop=False, augmentations=2, aug_bank=0)
    base.update(kw)
    return SketchSettings(**base)


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    return np.asarray(Image.fromarray(data.chelsea()).resize((W, H)))       # a real photo, small


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 64) -> list[list[float]]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1).tolist()


def inside(polygon, points) -> np.ndarray:
    """Even-odd test of photo points ``(N, 2)``, one at a time (independent of the rasterizer's grid)."""
    poly = np.asarray(polygon, dtype=np.float64)
    return np.array([inside_even_odd(poly, np.array([x]), np.array([y]))[0, 0] for x, y in points])


def starts(result) -> np.ndarray:
    """P0 of every stroke of every seed's start: with one iteration the kept state is the start."""
    return np.array([s.points[0] for s in result.strokes])


# --- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("polygon, message", [
    ([[0, 0], [5, 5]], "regions[0] (subject): a polygon needs at least 3 points, got 2"),
    ([[0, 0], [5, 5], [float("nan"), 3]], "regions[0] (subject): a coordinate is NaN or infinite"),
    ([[0, 0], [5, 5], [3, float("inf")]], "regions[0] (subject): a coordinate is NaN or infinite"),
    ([[i % 7, i // 7] for i in range(MAX_VERTICES + 1)], f"may have at most {MAX_VERTICES}"),
])
def test_bad_polygons_get_one_clear_error(polygon, message):
    with pytest.raises(ValueError) as bad:
        SketchSettings(regions=[{"role": "subject", "polygon": polygon}])
    assert message in str(bad.value)
    assert str(bad.value).count("regions[") == 1


def test_too_many_polygons_and_unknown_roles_are_refused():
    square = [[0, 0], [9, 0], [9, 9]]
    with pytest.raises(ValueError, match=f"at most {MAX_REGIONS}"):
        SketchSettings(regions=[{"role": "detail", "polygon": square}] * (MAX_REGIONS + 1))
    with pytest.raises(ValueError, match="subject"):
        SketchSettings(regions=[{"role": "background", "polygon": square}])


def test_polygons_far_outside_or_off_the_photo_fail_before_any_model_loads(cat):
    far = SketchSettings(regions=[{"role": "subject", "polygon": [[0, 0], [50, 0], [50, 5000]]}], clip="no-such-model")
    with pytest.raises(RegionError, match=r"regions\[0\] \(subject\): it reaches \(50, 5000\), far outside the 150×100"):
        sketch(cat, far)
    beside = [{"role": "avoid", "polygon": [[0, 0], [9, 0], [9, 9]]},
              {"role": "avoid", "polygon": [[160, 10], [200, 10], [200, 50]]}]       # right of the photo
    with pytest.raises(RegionError, match=r"regions\[1\] \(avoid\): it covers no pixel"):
        sketch(cat, SketchSettings(regions=beside, clip="no-such-model"))


# --- masks on the canvas ------------------------------------------------------------------------

def test_masks_sit_where_the_photo_sits_on_the_canvas_and_holes_stay_empty(cat):
    canvas = make_canvas(load_image(cat))                  # 150×100 → 224×149, 37 px of white above
    left = [[0, 0], [75, 0], [75, 100], [0, 100]]
    # an outer square and an inner one, joined by a segment walked there and back: a square ring
    ring = [[10, 10], [140, 10], [140, 90], [10, 90], [10, 10], [50, 30], [100, 30], [100, 70], [50, 70], [50, 30]]
    m = canvas_masks([Region(role="subject", polygon=left), Region(role="avoid", polygon=ring)], canvas)
    assert m.detail is None
    oy = int(canvas.offset[1])
    subject = m.subject.numpy()
    assert subject[:oy].sum() == 0 and subject[oy + 149:].sum() == 0          # nothing on the padding
    assert (subject[oy:oy + 149, :112] == 1).all() and (subject[:, 112:] == 0).all()   # x < 75 px = 112 canvas px
    avoid = m.avoid.numpy()
    to_canvas = lambda x, y: (int(x * 224 / 150), int(y * 149 / 100) + oy)    # noqa: E731
    for x, y, expected in [(30, 50, 1), (120, 20, 1), (75, 50, 0), (5, 5, 0)]:  # ring, ring, hole, outside
        col, row = to_canvas(x, y)
        assert avoid[row, col] == expected, (x, y)


# --- what CLIP sees and where strokes start -------------------------------------------------------

def test_clip_target_is_white_outside_the_subject(cat, monkeypatch):
    seen = []
    real = loss_module.ClipassoLoss.photo_targets

    def record(self, photos):
        seen.append(photos.detach().clone())
        return real(self, photos)

    monkeypatch.setattr(loss_module.ClipassoLoss, "photo_targets", record)
    subject = ellipse(75, 50, 40, 30)
    sketch(cat, settings(regions=[{"role": "subject", "polygon": subject}], aug_bank=4))
    canvas = make_canvas(load_image(cat))
    cov = canvas_masks([Region(role="subject", polygon=subject)], canvas).subject
    target = seen[0][0]                                     # the bank's first image: the photo itself
    assert seen[0].shape[0] == 5                            # the plain photo + 4 augmented views of it
    assert (target[:, cov == 0] == 1.0).all()               # white outside the subject
    assert torch_close(target[:, cov == 1], canvas.pixels[0][:, cov == 1])       # the photo inside
    assert (canvas.pixels[0][:, cov == 0] < 0.9).any()      # there was a photo to whiten


def torch_close(a, b) -> bool:
    return bool((a - b).abs().max() < 1e-6)


def test_strokes_start_inside_the_subject_and_outside_avoid_zones(cat):
    subject = ellipse(60, 50, 45, 35)
    avoid = [[40, 30], [80, 30], [80, 70], [40, 70]]       # a square inside the subject
    for saliency in (True, False):
        res = sketch(cat, settings(seeds=4, strokes=16, saliency=saliency,
                                   regions=[{"role": "subject", "polygon": subject}, {"role": "avoid", "polygon": avoid}]))
        p0 = starts(res)
        assert inside(subject, p0).all(), saliency
        assert not inside(avoid, p0).any(), saliency
        # the random walk to P1..P3 is held back too: every control point is allowed, so the
        # curves (inside their control points' hull) start inside the convex subject
        every = np.array([p for s in res.strokes for p in s.points])
        assert inside(subject, every).all(), saliency
        assert not inside(avoid, every).any(), saliency
    free = starts(sketch(cat, settings(seeds=4, strokes=16, saliency=False)))
    assert not inside(subject, free).all()                  # without regions they do go elsewhere


def test_detail_zones_receive_more_starts_counted_over_seeds(cat):
    zone = [[100, 0], [150, 0], [150, 100], [100, 100]]    # the right third of the photo
    counts = {}
    for weight in (None, 4.0, 16.0):
        regions = [] if weight is None else [{"role": "detail", "polygon": zone}]
        extra = {} if weight is None else {"detail_weight": weight}
        total = 0
        for seed in (0, 1, 2):
            total += int(inside(zone, starts(sketch(cat, settings(seed=seed, seeds=4, regions=regions, **extra)))).sum())
        counts[weight] = total                              # of 3 × 4 × 16 = 192 starts
    assert counts[None] < counts[4.0] < counts[16.0], counts
    assert counts[4.0] >= 1.5 * max(counts[None], 1), counts


# --- the avoid penalty --------------------------------------------------------------------------

def test_avoid_penalty_keeps_the_final_ink_out_of_the_zone(cat):
    """Strokes that start across the zone (an edited sketch being refined) leave it."""
    zone = [[0, 0], [75, 0], [75, 100], [0, 100]]           # the left half
    rng = np.random.default_rng(0)
    init = []
    for _ in range(8):
        x, y = rng.uniform(10, 140), rng.uniform(10, 90)
        init.append(Stroke(points=tuple((x + dx, y + dy) for dx, dy in rng.uniform(-15, 15, (4, 2))), width=2.0))

    def ink_inside(regions) -> float:
        res = sketch(cat, settings(iterations=25, augmentations=0, regions=regions), init_strokes=init)
        ink = cairo_ink(res.to_svg(), W, H)
        return float(ink[:, :75].sum() / ink.sum())

    without = ink_inside([])
    with_zone = ink_inside([{"role": "avoid", "polygon": zone}])
    assert without > 0.2, without
    assert with_zone < 0.05, (with_zone, without)
    # outside the subject counts as a zone to keep empty too ("sketch only this")
    right = [[75, 0], [150, 0], [150, 100], [75, 100]]
    only_right = ink_inside([{"role": "subject", "polygon": right}])
    assert only_right < 0.05, (only_right, without)


# --- CLI ----------------------------------------------------------------------------------------

def test_cli_regions_file(tmp_path, capsys):
    photo = tmp_path / "cat.png"
    Image.fromarray(data.chelsea()).resize((W, H)).save(photo)
    subject = ellipse(75, 50, 30, 25)
    regions = tmp_path / "regions.json"
    regions.write_text(json.dumps([{"role": "subject", "polygon": subject}]))
    out, js = tmp_path / "s.svg", tmp_path / "s.json"
    args = [str(photo), "-o", str(out), "--json", str(js), "--regions", str(regions), "--iterations", "1",
            "--strokes", "8", "--clip", "random:tiny-RN", "--saliency-clip", "random:tiny-ViT", "--device", "cpu", "-q"]
    assert main(["sketch", *args]) == 0
    result = json.loads(js.read_text())
    assert result["engine"]["settings"]["regions"][0]["role"] == "subject"
    assert inside(subject, [s["points"][0] for s in result["levels"]["8"]]).all()

    regions.write_text(json.dumps([{"role": "avoid", "polygon": [[1, 1], [2, 2]]}]))
    out.unlink()
    assert main(["sketch", *args]) == 2
    err = capsys.readouterr().err
    assert "--regions: regions[0] (avoid): a polygon needs at least 3 points, got 2" in err
    assert not out.exists()
    regions.write_text("{not json")
    with pytest.raises(SystemExit):
        main(["sketch", *args])
    assert "is not valid JSON" in capsys.readouterr().err
