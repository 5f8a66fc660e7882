"""Fold the frozen batch norms of a CLIP ResNet into the convolutions before them.

A frozen batch norm in eval mode is an affine map per channel, ``y = s·x + t`` with
``s = γ / √(var + ε)`` and ``t = β − s·mean``; after a convolution it folds into the
convolution's weights (scaled by ``s`` per output channel) and a bias ``t``. The tower then
computes the same function (to float rounding: ~1e-7 relative in fp32) with one pass over
each activation instead of two, forward and backward: measured 8 % off an fp32 step of
RN101 on CPU (docs/speed.md). CLIP's ModifiedResNet pairs every conv with the BN after it:
``conv1/bn1``, ``conv2/bn2``, ``conv3/bn3`` in the stem and in each bottleneck, and
``(AvgPool, Conv, BN)`` in each downsample branch.
"""

from __future__ import annotations

import torch
from torch import nn

PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


@torch.no_grad()
def fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Make ``conv`` compute ``bn(conv(x))`` (``bn`` in eval mode); ``conv`` gains a bias."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)                # (C_out,)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter(bias, requires_grad=False)


def fold_batchnorm(tower: nn.Module) -> int:
    """Fold every (conv, BN) pair of a ResNet image tower in place, the BN becoming an
    ``nn.Identity``; returns how many were folded. Only for frozen towers in eval mode."""
    folded = 0
    for module in tower.modules():
        for conv_name, bn_name in PAIRS:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                fold_into(conv, bn)
                setattr(module, bn_name, nn.Identity())
                folded += 1
        if isinstance(module, nn.Sequential):                               # downsample: (AvgPool, Conv, BN)
            for i in range(1, len(module)):
                if isinstance(module[i - 1], nn.Conv2d) and isinstance(module[i], nn.BatchNorm2d):
                    fold_into(module[i - 1], module[i])
                    module[i] = nn.Identity()
                    folded += 1
    return folded
