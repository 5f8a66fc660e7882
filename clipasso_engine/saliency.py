"""Where strokes start: CLIP attention saliency × XDoG edges → start-point probabilities → strokes.

docs/method.md §2. Every map here lives on the square canvas CLIP sees (224×224 pixels,
row i = y, column j = x, origin top-left). Stroke control points come out in canvas pixels with
pixel (i, j)'s centre at (x, y) = (j + 0.5, i + 0.5).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from .clip_models import ClipImageModel, normalize

# XDoG parameters (docs/method.md §2, step 3).
XDOG_SIGMA = 0.8
XDOG_K = 10.0
XDOG_GAMMA = 0.98
XDOG_EPS = -0.1
XDOG_PHI = 200.0
LUMA = (0.2125, 0.7154, 0.0721)

# Random walk from P0 to P3: each step up to ±2.5 % of the 224 canvas per axis (docs/method.md §2, step 5).
STEP_RADIUS = 0.025 * 224


def _minmax(x: Tensor) -> Tensor:
    """Rescale to [0, 1]. A constant map (nothing stands out) becomes all ones."""
    lo, hi = x.min(), x.max()
    if hi - lo <= torch.finfo(x.dtype).eps * max(1.0, hi.abs().item()):
        return torch.ones_like(x)
    return (x - lo) / (hi - lo)


@torch.no_grad()
def relevancy_map(vit: ClipImageModel, image: Tensor) -> Tensor:
    """CLIP attention saliency of a ``(1, 3, S, S)`` image in [0, 1] (``S = vit.input_size``):
    ``(S, S)`` in [0, 1], high where the class token attends.

    Attention rows from the class token to the patch tokens, averaged over heads and layers,
    on the patch grid (7×7 for ViT-B/32), bicubic-upsampled to ``S`` and min-max normalized.
    """
    size = vit.input_size
    if image.shape != (1, 3, size, size):
        raise ValueError(f"relevancy_map needs one (1, 3, {size}, {size}) image, got {tuple(image.shape)}")
    param = next(vit.parameters())
    attn = vit.attention_maps(normalize(image.to(param.device, torch.float32)))  # (1, L, T, T)
    cls_to_patches = attn[0, :, 0, 1:].float().mean(dim=0)  # (T - 1,)
    grid = math.isqrt(cls_to_patches.numel())
    if grid * grid != cls_to_patches.numel():
        raise ValueError(f"{vit.arch}: {cls_to_patches.numel()} patch tokens do not form a square grid")
    coarse = cls_to_patches.view(1, 1, grid, grid)
    fine = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0, 0]  # (S, S)
    return _minmax(fine).to(image.device)


def _symmetric_index(n: int, pad: int, device: torch.device) -> Tensor:
    """Indices ``(n + 2·pad,)`` into a length-``n`` axis extended by ``pad`` on each side with
    the edge pixel repeated, (d c b a | a b c d | d c b a), as scipy.ndimage's ``reflect`` and
    numpy's ``symmetric``. A pad wider than the axis goes on mirroring (period 2n), so any
    kernel works on any image."""
    i = torch.arange(-pad, n + pad, device=device).remainder(2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``(1, 1, H, W)``, kernel truncated at 4σ, edges mirrored with
    the edge pixel repeated, as scipy's ``gaussian_filter`` (docs/method.md §2, step 3)."""
    radius = int(4 * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    h, w = x.shape[-2:]
    x = x.index_select(-1, _symmetric_index(w, radius, x.device))
    x = x.index_select(-2, _symmetric_index(h, radius, x.device))
    x = F.conv2d(x, k.view(1, 1, 1, -1))  # along x
    return F.conv2d(x, k.view(1, 1, -1, 1))  # along y


def otsu_threshold(values: Tensor, bins: int = 256) -> float:
    """Otsu's threshold of ``values``: the level maximizing the between-class variance of a
    ``bins``-bin histogram over the value range (the bin centre, as scikit-image reports it).
    Values above it are the bright class."""
    v = values.detach().flatten().double().cpu()
    lo, hi = v.min().item(), v.max().item()
    if lo == hi:
        return lo
    hist = torch.histc(v, bins=bins, min=lo, max=hi)
    centers = lo + (torch.arange(bins, dtype=torch.float64) + 0.5) * (hi - lo) / bins
    w_low = hist.cumsum(0)  # pixels at or below each bin
    w_high = hist.flip(0).cumsum(0).flip(0)  # pixels at or above each bin
    mean_low = (hist * centers).cumsum(0) / w_low.clamp_min(1)
    mean_high = (hist * centers).flip(0).cumsum(0).flip(0) / w_high.clamp_min(1)
    between = w_low[:-1] * w_high[1:] * (mean_low[:-1] - mean_high[1:]) ** 2
    return centers[int(between.argmax())].item()


@torch.no_grad()
def xdog_response(image: Tensor) -> Tensor:
    """XDoG response ``(H, W)`` in [0, 1] of a ``(1, 3, H, W)`` image in [0, 1], before binarization.

    Grey (luma weights 0.2125/0.7154/0.0721) of the CLIP-normalized image;
    D = G_σ(I) − γ·G_kσ(I); 1 where D < ε, else 1 + tanh(φ·D); min-max normalized.
    """
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"xdog needs one (1, 3, H, W) image, got {tuple(image.shape)}")
    img = normalize(image.float())
    grey = (img * img.new_tensor(LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)  # (1, 1, H, W)
    d = _gaussian_blur(grey, XDOG_SIGMA) - XDOG_GAMMA * _gaussian_blur(grey, XDOG_SIGMA * XDOG_K)
    response = torch.where(d < XDOG_EPS, torch.ones_like(d), 1 + torch.tanh(XDOG_PHI * d))
    return _minmax(response[0, 0])  # (H, W)


def xdog(image: Tensor) -> Tensor:
    """Binary XDoG edge map ``(H, W)`` of a ``(1, 3, H, W)`` image in [0, 1]: 0 on lines, 1
    elsewhere: :func:`xdog_response` at or above Otsu's threshold is 1 (so a featureless image,
    whose response is constant, has no lines)."""
    response = xdog_response(image)
    return (response >= otsu_threshold(response)).float()


def _softmax_positive(m: Tensor, temperature: float) -> Tensor:
    """Softmax of ``m / temperature`` over the pixels where ``m > 0``; the others get 0."""
    logits = torch.where(m > 0, m / temperature, torch.full_like(m, -math.inf))
    return torch.softmax(logits.flatten(), dim=0).view_as(m)


@torch.no_grad()
def start_probabilities(
    image: Tensor,
    vit: ClipImageModel,
    *,
    valid: Tensor | None = None,
    mask: Tensor | None = None,
    temperature: float = 0.3,
    min_pixels: int = 1,
) -> Tensor:
    """Probability ``(S, S)`` (sums to 1) that a stroke starts at each canvas pixel.

    ``image``: the ``(1, 3, S, S)`` canvas in [0, 1]. ``valid`` (bool ``(S, S)``) marks the
    photo inside a padded canvas: zero probability outside. ``mask`` (``(S, S)`` in [0, 1]): an
    optional foreground mask multiplied in. Map = (1 − xdog) · saliency, softmax with
    ``temperature`` over its positive pixels. With fewer than ``min_pixels`` positive pixels
    (pass the stroke count), the saliency map alone is used; if even that has none,
    the distribution is uniform over the allowed pixels.
    """
    saliency = relevancy_map(vit, image)  # (S, S)
    allowed = torch.ones_like(saliency)
    if valid is not None:
        allowed = allowed * valid.to(saliency.device, saliency.dtype)
    if mask is not None:
        allowed = allowed * mask.to(saliency.device, saliency.dtype)
    if not (allowed > 0).any():
        raise ValueError("no pixel may hold a stroke start: the valid area or mask is empty")
    for m in ((1 - photo_xdog(image, valid).to(saliency.device)) * saliency * allowed, saliency * allowed):
        if int((m > 0).sum()) >= min_pixels:
            return _softmax_positive(m, temperature)
    return allowed / allowed.sum()


def photo_xdog(image: Tensor, valid: Tensor | None) -> Tensor:
    """XDoG of the photo alone, pasted into a line-free (all ones) canvas map: run on the padded
    canvas, the step from photo to white padding would mark the photo's border as lines."""
    if valid is None or bool(valid.all()):
        return xdog(image)
    rows = torch.nonzero(valid.any(1)).flatten()
    cols = torch.nonzero(valid.any(0)).flatten()
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    out = torch.ones(image.shape[-2:], device=image.device)
    out[y0:y1, x0:x1] = xdog(image[:, :, y0:y1, x0:x1])
    return out


def initial_strokes(
    prob: Tensor,
    strokes: int,
    seeds: Sequence[int],
    *,
    radius: float = STEP_RADIUS,
    uniform: bool = False,
    valid: Tensor | None = None,
) -> Tensor:
    """Start strokes ``(S, strokes, 4, 2)``, float32 canvas pixels (x, y), one set per seed.

    Per seed (a ``torch.Generator`` seeded with it, so a seed always gives the same strokes):
    P0 is a pixel centre drawn without replacement from ``prob`` ``(H, W)`` (or, with
    ``uniform``, uniformly from the ``valid`` pixels, all pixels when ``valid`` is None);
    P1..P3 each add an independent uniform step in [−radius, radius] per axis to the point before.
    When fewer pixels than ``strokes`` have nonzero probability, P0s are drawn with
    replacement (strokes may then share a start point) rather than failing.
    """
    if strokes < 1:
        raise ValueError(f"need at least one stroke, got {strokes}")
    h, w = prob.shape
    if uniform:
        weights = torch.ones(h * w) if valid is None else valid.detach().flatten().float().cpu()
    else:
        weights = prob.detach().flatten().float().cpu()
    if not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("start probabilities must be finite, non-negative and not all zero")
    replacement = int((weights > 0).sum()) < strokes
    sets = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        idx = torch.multinomial(weights, strokes, replacement=replacement, generator=gen)  # (N,)
        p0 = torch.stack([idx % w, idx // w], dim=-1).float() + 0.5  # (N, 2) pixel centres, x y
        steps = (torch.rand(strokes, 3, 2, generator=gen) * 2 - 1) * radius  # (N, 3, 2)
        sets.append(torch.cat([p0[:, None], p0[:, None] + steps.cumsum(dim=1)], dim=1))  # (N, 4, 2)
    return torch.stack(sets).to(prob.device)  # (S, N, 4, 2)


__all__ = [
    "LUMA",
    "STEP_RADIUS",
    "initial_strokes",
    "otsu_threshold",
    "relevancy_map",
    "start_probabilities",
    "xdog",
    "xdog_response",
]
