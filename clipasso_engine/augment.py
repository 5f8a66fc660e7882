"""Differentiable augmentations shared by sketch and photo (docs/method.md §3).

One augmentation is a random perspective (each corner pulled inwards by up to half the
distortion 0.5 of the side, always applied) followed by a square crop of 80 % of the area resized
back to the canvas. Both are projective maps, so we compose them into one 3×3 homography per
augmentation and resample once (bilinear, black outside). The parameters are plain tensors drawn
from an explicit ``torch.Generator``: the same matrices warp the sketch and the photo, and a bank
of them can be drawn once per run (the photo's features for the bank are then computed once).
"""

from __future__ import annotations

import math

import torch
from kornia.geometry.transform import get_perspective_transform, warp_perspective

DISTORTION = 0.5
CROP_AREA = 0.8


def draw(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random augmentations for ``size``² images: homographies ``(count, 3, 3)`` mapping
    source pixel coordinates to output pixel coordinates (float32, CPU)."""
    # perspective: corners (tl, tr, br, bl) pulled inwards by U(0, DISTORTION/2 · side) per axis
    corners = torch.tensor([[0.0, 0.0], [size - 1.0, 0.0], [size - 1.0, size - 1.0], [0.0, size - 1.0]])
    inward = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    pull = torch.rand(count, 4, 2, generator=generator) * (DISTORTION / 2) * (size - 1)
    moved = corners + inward * pull                                                   # (count, 4, 2)
    persp = get_perspective_transform(corners.expand(count, 4, 2), moved)             # (count, 3, 3)
    # crop: a square of CROP_AREA of the image at a uniform position, resized to size
    side = math.sqrt(CROP_AREA) * size
    origin = torch.rand(count, 2, generator=generator) * (size - side)              # (count, 2) xy
    s = size / side
    crop = torch.zeros(count, 3, 3)
    crop[:, 0, 0] = s
    crop[:, 1, 1] = s
    crop[:, :2, 2] = -origin * s
    crop[:, 2, 2] = 1.0
    return crop @ persp


def apply(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Warp images ``(B, C, H, W)`` by homographies ``(A, 3, 3)``.

    Returns ``(B·A, C, H, W)`` ordered image-major (image 0 under every matrix, then image 1, …),
    differentiable w.r.t. ``images``. Outside the source is black (zeros), bilinear sampling.
    """
    b, c, h, w = images.shape
    a = matrices.shape[0]
    src = images.unsqueeze(1).expand(b, a, c, h, w).reshape(b * a, c, h, w)
    m = matrices.to(images.device, images.dtype).unsqueeze(0).expand(b, a, 3, 3).reshape(b * a, 3, 3)
    return warp_perspective(src, m, (h, w), mode="bilinear", padding_mode="zeros", align_corners=True)
