"""The CLIP score of a finished sketch (docs/method.md §8), as follow-up work reports it.

Cosine similarity of the CLIP ViT-B/32 image embeddings of the sketch and of the photo, both
on the 224-px canvas the sketch was optimized on (the photo as the loss saw it, the sketch as
our rasterizer draws it: black strokes on white). It uses the saliency model (``saliency_clip``),
which is not the loss's RN101, so the score is not the quantity the run minimized. Computed once
at the end, one batch of 1 + levels images, in fp32. With random weights it means nothing.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from .clip_models import ClipImageModel, normalize
from .raster import render


@torch.no_grad()
def clip_scores(model: ClipImageModel, photo: Tensor, sketches: Sequence[tuple[Tensor, Tensor]]) -> list[float]:
    """The CLIP score of each sketch: points ``(N, 4, 2)`` and widths ``(N,)`` in canvas px,
    drawn on the canvas of ``photo`` ``(1, 3, C, C)`` in [0, 1]."""
    size = photo.shape[-1]
    drawn = []
    for points, widths in sketches:
        ink = render(points[None].float().cpu(), widths[None].float().cpu(), size, size)   # (1, C, C)
        drawn.append((1.0 - ink).unsqueeze(1).expand(1, 3, size, size))                    # white paper, black ink
    return image_scores(model, photo, torch.cat(drawn)) if drawn else []


@torch.no_grad()
def image_scores(model: ClipImageModel, photo: Tensor, images: Tensor) -> list[float]:
    """Cosine in [-1, 1] of ``model``'s embedding of each of ``images`` ``(K, 3, C, C)`` and of
    ``photo`` ``(1, 3, C, C)``, both in [0, 1], in one fp32 batch. Canvases of another size than
    the model's input are resized to it."""
    device = next(model.parameters()).device
    batch = torch.cat([photo.to(device, torch.float32), images.to(device, torch.float32)])
    if batch.shape[-1] != model.input_size:
        batch = F.interpolate(batch, size=(model.input_size, model.input_size), mode="bicubic", antialias=True).clamp(0, 1)
    emb = model(normalize(batch)).float()
    return torch.cosine_similarity(emb[1:], emb[:1], dim=-1).clamp(-1, 1).cpu().tolist()
