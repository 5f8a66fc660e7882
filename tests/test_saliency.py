"""Saliency initialization (docs/method.md §2) on real photos, with a tiny random ViT for attention."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.filters import threshold_otsu

from clipasso_engine.clip_models import ClipImageModel, load_clip, normalize
from clipasso_engine.saliency import (
    LUMA,
    STEP_RADIUS,
    initial_strokes,
    otsu_threshold,
    photo_xdog,
    relevancy_map,
    start_probabilities,
    xdog,
    xdog_response,
)

TEMPERATURE = 0.3


def photo(name: str, size: tuple[int, int] = (224, 224)) -> torch.Tensor:
    """A scikit-image sample photo resized to ``size`` (w, h): ``(1, 3, h, w)`` in [0, 1]."""
    img = Image.fromarray(getattr(data, name)()).convert("RGB").resize(size, Image.BICUBIC)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255


def letterboxed(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A photo scaled to 224×144 and padded with white to the 224 square canvas, and its
    ``valid`` area (rows 40..183)."""
    canvas = torch.ones(1, 3, 224, 224)
    canvas[:, :, 40:184] = photo(name, (224, 144))
    valid = torch.zeros(224, 224, dtype=torch.bool)
    valid[40:184] = True
    return canvas, valid


@pytest.fixture(scope="module")
def vit() -> ClipImageModel:
    return load_clip("random:tiny-ViT")


@pytest.fixture(scope="module")
def astronaut_probs(vit) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    canvas, valid = letterboxed("astronaut")
    return canvas, valid, start_probabilities(canvas, vit, valid=valid, min_pixels=16)


def test_relevancy_map_is_class_attention_on_the_patch_grid(vit):
    image = photo("astronaut")
    sal = relevancy_map(vit, image)
    assert sal.shape == (224, 224) and torch.isfinite(sal).all()
    assert sal.min() == 0 and sal.max() == 1
    with torch.no_grad():
        attn = vit.attention_maps(normalize(image))  # (1, L, 50, 50)
    coarse = attn[0, :, 0, 1:].mean(0).view(7, 7)  # 32-px patches
    # bicubic upsampling: at the patch centres the map follows the class token's attention
    centres = sal[16::32, 16::32]  # (7, 7)
    corr = torch.corrcoef(torch.stack([centres.flatten(), coarse.flatten()]))[0, 1]
    assert corr > 0.95
    top = divmod(int(coarse.argmax()), 7)
    assert centres[top] > 0.8


def test_relevancy_map_grid_follows_the_token_count():
    from open_clip.model import _build_vision_tower

    torch.manual_seed(0)
    visual = _build_vision_tower(64, {"layers": 2, "width": 128, "patch_size": 16, "image_size": 224}, True)
    vit16 = ClipImageModel(visual, spec="test", arch="tiny-ViT-16", source="random")
    sal = relevancy_map(vit16, photo("chelsea"))  # 14×14 patches
    assert sal.shape == (224, 224) and sal.min() == 0 and sal.max() == 1


def test_relevancy_map_rejects_a_batch(vit):
    with pytest.raises(ValueError, match="224"):
        relevancy_map(vit, torch.rand(2, 3, 224, 224))


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_xdog_is_otsu_binarized_response(name):
    image = photo(name)
    response, edges = xdog_response(image), xdog(image)
    assert response.min() == 0 and response.max() == 1
    assert set(edges.unique().tolist()) == {0.0, 1.0}
    threshold = threshold_otsu(response.double().numpy())
    assert otsu_threshold(response) == pytest.approx(threshold, abs=1e-9)
    assert torch.equal(edges, (response.double() >= threshold).float())


def _scipy_xdog(image: torch.Tensor) -> np.ndarray:
    """XDoG computed independently with scipy.ndimage (mode 'reflect': the edge pixel repeated)
    and scikit-image's Otsu, from the description in docs/method.md §2 step 3."""
    from scipy import ndimage

    grey = (normalize(image) * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1)[0].double().numpy()
    blur = lambda s: ndimage.gaussian_filter(grey, s, mode="reflect", truncate=4.0)  # noqa: E731
    d = blur(0.8) - 0.98 * blur(8.0)
    r = np.where(d < -0.1, 1.0, 1 + np.tanh(200 * d))
    r = (r - r.min()) / (r.max() - r.min())
    return (r >= threshold_otsu(r)).astype(np.float32)


@pytest.mark.parametrize("name", ["astronaut", "rocket", "hubble_deep_field"])
def test_xdog_equals_a_scipy_computation_to_the_pixel(name):
    """The blur pads by repeating the edge pixel, as scipy's gaussian_filter: with torch's
    'reflect' padding 80 to 160 border pixels of these photos came out different."""
    image = photo(name)
    assert np.array_equal(xdog(image).numpy(), _scipy_xdog(image))


@pytest.mark.parametrize("shape", [(224, 224), (9, 40), (5, 3), (1, 1)])
def test_blur_pads_as_scipy_even_when_the_kernel_is_wider_than_the_image(shape):
    from scipy import ndimage

    from clipasso_engine.saliency import _gaussian_blur

    x = torch.rand(1, 1, *shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for sigma in (0.8, 8.0):                                  # radius 3 and 32 px
        ours = _gaussian_blur(x, sigma)[0, 0].numpy()
        theirs = ndimage.gaussian_filter(x[0, 0].numpy(), sigma, mode="reflect", truncate=4.0)
        np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_otsu_matches_scikit_image_on_a_photo():
    grey = torch.from_numpy(data.camera().astype(np.float64) / 255.0) ** 1.7
    assert otsu_threshold(grey) == pytest.approx(threshold_otsu(grey.numpy()), abs=1e-9)


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_xdog_lines_fall_on_the_darker_side_of_a_real_photo(name):
    image = photo(name)
    edges = xdog(image)
    line_fraction = 1 - edges.mean().item()
    # METHOD's XDoG on the CLIP-normalized photo marks every pixel darker than its blurred
    # surround (D < 0): about half of a photo, not thin lines only.
    assert 0.2 < line_fraction < 0.7
    luma = (image[0] * torch.tensor(LUMA).view(3, 1, 1)).sum(0)
    assert luma[edges == 0].mean() < luma[edges == 1].mean() - 0.1


def test_xdog_on_a_drawn_line_and_on_blank_paper():
    blank = torch.ones(1, 3, 224, 224)
    assert torch.equal(xdog(blank), torch.ones(224, 224))  # no features, no lines
    blank[:, :, 100:103, 20:200] = 0  # a 3 px black line
    edges = xdog(blank)
    assert edges[100:103, 30:190].max() == 0
    assert edges[:90].min() == 1 and edges[115:].min() == 1


def test_start_probabilities_follow_edges_saliency_and_temperature(vit, astronaut_probs):
    canvas, valid, prob = astronaut_probs
    assert prob.shape == (224, 224)
    assert prob.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert prob[~valid].max() == 0
    m = (1 - photo_xdog(canvas, valid)) * relevancy_map(vit, canvas) * valid
    positive = m > 0
    assert torch.equal(prob > 0, positive)  # only on XDoG lines with some saliency
    # softmax with temperature 0.3: probability ratios are exp(Δmap / 0.3)
    flat_m, flat_p = m[positive], prob[positive]
    hi, lo = int(flat_m.argmax()), int(flat_m.argmin())
    expected = math.exp((flat_m[hi] - flat_m[lo]).item() / TEMPERATURE)
    assert (flat_p[hi] / flat_p[lo]).item() == pytest.approx(expected, rel=1e-4)


def test_start_probabilities_respect_a_foreground_mask(vit):
    canvas = photo("chelsea")
    mask = torch.zeros(224, 224)
    mask[50:170, 60:180] = 1.0
    prob = start_probabilities(canvas, vit, mask=mask)
    assert prob.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert prob[mask == 0].max() == 0 and prob[mask == 1].min() >= 0


def test_photo_border_is_not_a_line():
    """XDoG runs on the photo alone: the step from photo to white padding is no edge."""
    canvas, valid = letterboxed("chelsea")
    rows = torch.nonzero(valid.any(1)).flatten()
    cols = valid.any(0)
    top = int(rows[0])
    border = (photo_xdog(canvas, valid)[top : top + 3][:, cols] == 0).float().mean()
    on_canvas = (xdog(canvas)[top : top + 3][:, cols] == 0).float().mean()
    assert on_canvas > 0.95 and border < 0.8


def test_start_probabilities_fall_back_to_saliency(vit):
    canvas, valid = letterboxed("chelsea")
    lines = int((photo_xdog(canvas, valid)[valid] == 0).sum())
    prob = start_probabilities(canvas, vit, valid=valid, min_pixels=lines + 1)
    saliency = relevancy_map(vit, canvas) * valid
    assert torch.equal(prob > 0, saliency > 0)  # saliency alone: also off the lines
    assert prob.sum().item() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="empty"):
        start_probabilities(canvas, vit, valid=torch.zeros(224, 224, dtype=torch.bool))


def test_initial_strokes_start_on_probable_pixels_and_walk_within_radius(astronaut_probs):
    _, valid, prob = astronaut_probs
    strokes = initial_strokes(prob, 16, [0, 1000, 2000])
    assert strokes.shape == (3, 16, 4, 2) and strokes.dtype == torch.float32
    p0 = strokes[:, :, 0]  # (S, N, 2) x, y
    assert torch.equal(p0 - p0.floor(), torch.full_like(p0, 0.5))  # pixel centres
    cols, rows = p0[..., 0].long(), p0[..., 1].long()
    assert valid[rows, cols].all() and (prob[rows, cols] > 0).all()
    for s in range(3):  # without replacement: distinct start pixels within a seed
        assert len(set(zip(rows[s].tolist(), cols[s].tolist()))) == 16
    steps = strokes[:, :, 1:] - strokes[:, :, :-1]  # (S, N, 3, 2)
    assert steps.abs().max() <= STEP_RADIUS and steps.abs().max() > 0.5 * STEP_RADIUS


def test_initial_strokes_are_deterministic_per_seed(astronaut_probs):
    prob = astronaut_probs[2]
    a = initial_strokes(prob, 8, [0, 1000])
    assert torch.equal(a, initial_strokes(prob, 8, [0, 1000]))
    assert torch.equal(a[1], initial_strokes(prob, 8, [1000])[0])  # a seed's strokes stand alone
    assert not torch.equal(a[0], a[1])


def test_initial_strokes_uniform_and_scarce_pixels(astronaut_probs):
    _, valid, prob = astronaut_probs
    uniform = initial_strokes(prob, 32, [7], uniform=True, valid=valid)
    rows = uniform[0, :, 0, 1].long()
    assert ((rows >= 40) & (rows < 184)).all()
    assert not torch.equal(uniform, initial_strokes(prob, 32, [7]))

    scarce = torch.zeros(224, 224)
    scarce[10, 20], scarce[200, 30] = 0.25, 0.75
    strokes = initial_strokes(scarce, 5, [0])  # 2 possible starts, 5 strokes: with replacement
    starts = {tuple(p) for p in strokes[0, :, 0].tolist()}
    assert starts <= {(20.5, 10.5), (30.5, 200.5)}
    with pytest.raises(ValueError):
        initial_strokes(torch.zeros(224, 224), 4, [0])
