"""Differentiable augmentations shared by sketch and photo (docs/method.md §3).

One augmentation is a random perspective (each corner pulled inwards by up to half the
distortion 0.5 of the side, always applied) followed by a square crop of 80 % of the area resized
back to the canvas. Both are projective maps. By default we compose them into one 3×3 homography
per augmentation and resample once (bilinear, black outside); with ``passes=2`` they stay two
maps, ``(2, 3, 3)`` per augmentation, and the image is resampled by each in turn, as the
reference does. The parameters are plain tensors drawn from an explicit ``torch.Generator``
(``Streams``): the same matrices warp the sketch and the photo, and a bank of them can be drawn
once per run (the photo's features for the bank are then computed once).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from kornia.geometry.transform import get_perspective_transform, warp_perspective

DISTORTION = 0.5
CROP_AREA = 0.8


def stream_count(aug_streams: str, seeds: int) -> int:
    """How many random streams, and so augmentation banks, a run of ``seeds`` distinct seeds has
    (``aug_streams`` "run": one; "seed": one per seed)."""
    return seeds if aug_streams == "seed" else 1


def draw(count: int, size: int, generator: torch.Generator, *, passes: int = 1) -> torch.Tensor:
    """``count`` random augmentations for ``size``² images, as homographies mapping source pixel
    coordinates to output pixel coordinates (float32, CPU): ``(count, 3, 3)`` with ``passes=1``
    (crop ∘ perspective, one resampling), ``(count, 2, 3, 3)`` with ``passes=2`` ([perspective,
    crop], resampled one after the other). Both draw the same numbers from ``generator``."""
    if passes not in (1, 2):
        raise ValueError(f"an augmentation resamples once or twice, not {passes} times")
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
    return crop @ persp if passes == 1 else torch.stack([persp, crop], dim=1)


def apply(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Warp images ``(B, C, H, W)`` by augmentations ``(A, 3, 3)`` or ``(A, 2, 3, 3)`` (two passes).

    Returns ``(B·A, C, H, W)`` ordered image-major (image 0 under every matrix, then image 1, …),
    differentiable w.r.t. ``images``. Outside the source is black (zeros), bilinear sampling.
    """
    b = images.shape[0]
    return apply_each(images, matrices.unsqueeze(0).expand(b, *matrices.shape))


def apply_each(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Warp image ``i`` of ``(B, C, H, W)`` by its own augmentations ``matrices[i]``: ``(B, A, 3, 3)``
    or ``(B, A, 2, 3, 3)``. Returns ``(B·A, C, H, W)``, image-major as :func:`apply`."""
    b, c, h, w = images.shape
    a = matrices.shape[1]
    src = images.unsqueeze(1).expand(b, a, c, h, w).reshape(b * a, c, h, w)
    passes = matrices.shape[2] if matrices.dim() == 5 else 1
    m = matrices.to(images.device, images.dtype).reshape(b * a, passes, 3, 3)        # (B·A, passes, 3, 3)
    for p in range(m.shape[1]):
        src = warp_perspective(src, m[:, p], (h, w), mode="bilinear", padding_mode="zeros", align_corners=True)
    return src


class Streams:
    """The random streams augmentations are drawn from (docs/method.md §3).

    ``per_seed=False``: one generator seeded with ``run_seed`` serves every group of the run.
    ``per_seed=True``: one generator per distinct seed in ``group_seeds``, seeded with it, as
    the reference runs each seed in a process of its own: seed k then sees the same views
    whether it runs alone or beside other seeds (the levels of one seed share its stream).
    ``index`` ``(G,)`` gives each group's stream.
    """

    def __init__(self, group_seeds: Sequence[int], run_seed: int, per_seed: bool) -> None:
        seeds = list(dict.fromkeys(int(s) for s in group_seeds)) if per_seed else [int(run_seed)]
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.index = torch.tensor([seeds.index(int(s)) if per_seed else 0 for s in group_seeds], dtype=torch.long)

    @property
    def count(self) -> int:
        return len(self.generators)

    def draw(self, count: int, size: int, passes: int = 1) -> torch.Tensor:
        """``count`` augmentations from each stream: ``(streams, count, 3, 3)`` or ``(streams, count, 2, 3, 3)``."""
        return torch.stack([draw(count, size, g, passes=passes) for g in self.generators])

    def pick(self, bank: int, count: int) -> torch.Tensor:
        """``count`` distinct indices into a bank of ``bank`` from each stream: ``(streams, count)``."""
        return torch.stack([torch.randperm(bank, generator=g)[:count] for g in self.generators])

    def get_state(self) -> torch.Tensor:
        """The generators' states: one state (1-D) for a single stream, else stacked ``(streams, L)``."""
        states = [g.get_state() for g in self.generators]
        return states[0] if len(states) == 1 else torch.stack(states)

    def set_state(self, state: torch.Tensor) -> None:
        """Go on from :meth:`get_state`; ``ValueError`` when it holds another number of streams."""
        # whole tensors of their own: set_state on a row view of a stacked state crashes torch
        states = [state.clone()] if state.dim() == 1 else [row.clone() for row in state]
        if len(states) != self.count:
            raise ValueError(f"the checkpoint holds {len(states)} augmentation stream(s), this run "
                             f"{self.count}: it belongs to another job")
        for g, s in zip(self.generators, states):
            g.set_state(s)
