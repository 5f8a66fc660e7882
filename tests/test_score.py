"""The CLIP score of a result (docs/method.md §8): ViT cosine of sketch and photo, in the JSON
and the SVG. Random tiny towers: these check the machinery, not what a score says of a sketch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lxml import etree
from skimage import data

from clipasso_engine import SketchResult, SketchSettings, sketch
from clipasso_engine.clip_models import load_clip
from clipasso_engine.image import load_image, make_canvas
from clipasso_engine.score import clip_scores, image_scores

TINY = {"clip": "random:tiny-RN", "saliency_clip": "random:tiny-ViT", "device": "cpu", "preset": "fast",
        "iterations": 4, "eval_every": 2, "augmentations": 1, "aug_bank": 0, "early_stop": False}
CLIPASSO = "{http://clipasso.org/ns/1.0}"


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    return data.chelsea()


def test_the_photo_itself_scores_one_and_noise_lower(cat):
    vit = load_clip("random:tiny-ViT")
    photo = make_canvas(load_image(cat)).pixels                                         # (1, 3, 224, 224)
    noise = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    blank = torch.ones(1, 3, 224, 224)
    same, *others = image_scores(vit, photo, torch.cat([photo, noise, blank]))
    assert same == pytest.approx(1.0, abs=1e-5)
    assert all(-1.0 <= s < same - 1e-3 for s in others), others
    # a canvas of another size is resized to the model's input first
    assert image_scores(vit, photo[..., ::2, ::2], photo[..., ::2, ::2])[0] == pytest.approx(1.0, abs=1e-5)


def test_drawn_strokes_are_scored_as_the_canvas_shows_them(cat):
    vit = load_clip("random:tiny-ViT")
    photo = make_canvas(load_image(cat)).pixels
    pts = torch.tensor([[[40.0, 40.0], [90.0, 60.0], [120.0, 150.0], [180.0, 180.0]]])
    (score,) = clip_scores(vit, photo, [(pts, torch.tensor([3.0]))])
    from clipasso_engine.raster import render

    drawn = (1.0 - render(pts[None], torch.tensor([[3.0]]), 224, 224)).unsqueeze(1).expand(1, 3, 224, 224)
    assert score == pytest.approx(image_scores(vit, photo, drawn)[0], abs=1e-6)
    assert score != pytest.approx(image_scores(vit, photo, torch.ones(1, 3, 224, 224))[0], abs=1e-4)


def test_every_level_carries_its_score_in_json_and_svg(cat):
    res = sketch(cat, SketchSettings(**TINY, levels=[2, 4], seeds=2))
    scores = {n: res.level_meta[n]["clip_score"] for n in (2, 4)}
    assert all(isinstance(s, float) and -1.0 <= s <= 1.0 for s in scores.values()), scores
    assert res.engine["clip_score"] == scores[4] and res.engine["score_clip"] == "random:tiny-ViT"
    back = SketchResult.from_json(res.to_json())                          # through the strokes JSON
    assert back.level_meta[2]["clip_score"] == scores[2]
    root = etree.fromstring(res.to_svg().encode())
    layers = {g.get("id"): g.get(CLIPASSO + "score") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert layers == {"level2": f"{scores[2]:.6f}", "level4": f"{scores[4]:.6f}"}
    assert f"CLIP score {scores[4]:.4f}" in root.findtext("{http://www.w3.org/2000/svg}desc")


def test_runs_without_saliency_load_the_vit_for_the_score_or_go_without(cat):
    res = sketch(cat, SketchSettings(**TINY, strokes=3, saliency=False))
    assert -1.0 <= res.level_meta[3]["clip_score"] <= 1.0 and res.engine["saliency_clip"] is None
    # the ViT's weights missing: only the score needs them here, so the sketch comes without one
    res = sketch(cat, SketchSettings(**dict(TINY, saliency_clip="ViT-B-32"), strokes=3, saliency=False))
    assert res.level_meta[3]["clip_score"] is None and res.engine["score_clip"] is None
    assert "CLIP score" not in res.to_svg()
