"""The CLIPasso loss (docs/method.md §3): geometric L2 on CLIP ResNet stages + semantic cosine.

Images enter as ``(B, 3, 224, 224)`` RGB in [0, 1]; CLIP normalization happens here. The photo
side is computed once (``photo_targets``, no grad) and compared with many sketch batches.
Losses come out per image so the loop can sum them per seed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Mapping

import torch

from .clip_models import ClipImageModel, normalize


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Targets:
    """The photo's CLIP features: ``embedding (K, D)`` and each tapped stage ``(K, C, h, w)``."""

    embedding: torch.Tensor
    stages: dict[str, torch.Tensor]

    def select(self, index: torch.Tensor) -> "Targets":
        return Targets(self.embedding[index], {k: v[index] for k, v in self.stages.items()})


class ClipassoLoss:
    """``geometric_weights`` maps RN stage names to weights; ``semantic_weight`` weighs 1 − cos."""

    def __init__(
        self,
        model: ClipImageModel,
        geometric_weights: Mapping[str, float],
        semantic_weight: float,
        precision: str = "fp32",
    ) -> None:
        # autocast would cast the conv/linear weights to bf16/fp16 on every pass: keep them so
        self.model = model.stored_in(_DTYPES.get(precision, torch.float32))
        self.weights = {k: float(v) for k, v in geometric_weights.items() if v}
        self.semantic_weight = float(semantic_weight)
        self.precision = precision

    def _encode(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = normalize(images)
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)   # same numbers, ~12 % faster on CPU
        with self._autocast(x.device.type):
            emb, stages = self.model.features(x, tuple(self.weights))
        return emb.float(), {k: v.float() for k, v in stages.items()}

    def _autocast(self, device_type: str) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=_DTYPES[self.precision])

    @torch.no_grad()
    def photo_targets(self, photos: torch.Tensor) -> Targets:
        """CLIP features of photos ``(K, 3, 224, 224)`` in [0, 1]."""
        emb, stages = self._encode(photos)
        return Targets(emb, stages)

    def __call__(self, sketches: torch.Tensor, targets: Targets) -> torch.Tensor:
        """Per-image loss ``(B,)`` of sketches ``(B, 3, 224, 224)`` in [0, 1] against ``K``
        targets, ``B`` a multiple of ``K``: sketch ``i`` is compared with target ``i mod K``
        (groups of K sketches share the photo's K views without copying them)."""
        emb, stages = self._encode(sketches)
        k = targets.embedding.shape[0]
        g = emb.shape[0] // k
        cos = torch.cosine_similarity(emb.view(g, k, -1), targets.embedding, dim=-1)  # (g, k)
        loss = self.semantic_weight * (1.0 - cos)
        for name, w in self.weights.items():
            feat = stages[name]
            diff = feat.view(g, k, *feat.shape[1:]) - targets.stages[name]            # (g, k, C, h, w)
            loss = loss + w * diff.square().flatten(2).mean(2)
        return loss.reshape(-1)
