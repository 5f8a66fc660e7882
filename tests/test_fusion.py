"""Folding the frozen batch norms into the convolutions keeps every tapped stage and the embedding."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from clipasso_engine.clip_models import RESNET_STAGES, _random_tower, get_clip
from clipasso_engine.fusion import fold_batchnorm


def _stages(tower: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for name in RESNET_STAGES:
        x = getattr(tower, name)(x)
        out.append(x)
    return out + [tower.attnpool(x)]


@pytest.mark.parametrize("arch, pairs", [("tiny-RN", None), ("RN101", 3 + 33 * 3 + 4)])
def test_folded_tower_computes_the_same_function(arch, pairs):
    plain = _random_tower(arch).eval()
    # batch-norm statistics that are not the identity, as trained weights have them
    gen = torch.Generator().manual_seed(3)
    for bn in (m for m in plain.modules() if isinstance(m, nn.BatchNorm2d)):
        c = bn.num_features
        bn.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
        bn.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
        bn.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)
    folded = copy.deepcopy(plain)
    count = fold_batchnorm(folded)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    if pairs is not None:
        assert count == pairs                     # stem 3, 33 bottlenecks × 3, 4 downsample branches
    x = torch.rand(2, 3, 224, 224, generator=gen)
    with torch.no_grad():
        for a, b in zip(_stages(plain, x), _stages(folded, x)):
            assert (a - b).abs().max() <= 1e-4 * a.abs().max()
            assert a.abs().max() > 0


def test_loaded_resnets_are_folded_and_vits_untouched():
    rn = get_clip("random:tiny-RN")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in rn.visual.modules())
    assert all(not p.requires_grad for p in rn.visual.parameters())
    vit = get_clip("random:tiny-ViT")
    assert any(isinstance(m, nn.LayerNorm) for m in vit.visual.modules())
