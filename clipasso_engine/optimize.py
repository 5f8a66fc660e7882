"""The optimization loop (METHOD.md §4), top to bottom in one function.

Every (abstraction level, seed) pair is a *group*: its own strokes, its own Adam state (Adam is
element-wise, so batching groups changes nothing about each one's path). All groups go through
the rasterizer and CLIP together, one batch per step. Coordinates are canvas pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from . import augment
from .loss import ClipassoLoss
from .raster import render

# on_progress(iteration, training loss, points (N, 4, 2), widths (N,)) after each step, for the
# group with the lowest training loss among the main level's groups, in the state that loss
# was measured on (before the step); the caller turns its strokes into a preview.
ProgressFn = Callable[[int, float, torch.Tensor, torch.Tensor], None]
StopFn = Callable[[], bool]


@dataclass
class Group:
    """One level × seed: strokes ``(N, 4, 2)`` canvas px, widths ``(N,)``, locked mask ``(N,)``."""

    level: int
    seed: int
    points: torch.Tensor
    widths: torch.Tensor
    locked: torch.Tensor


@dataclass
class GroupOutcome:
    level: int
    seed: int
    points: torch.Tensor          # (N, 4, 2) best eval state, canvas px
    widths: torch.Tensor          # (N,)
    loss: float                   # best eval loss (plain pair)


@dataclass
class RunOutcome:
    groups: list[GroupOutcome]
    iterations: int                               # steps taken
    stopped: str                                  # "finished", "early_stop" or "cancelled"
    history: list[dict] = field(default_factory=list)


def optimize(
    photo: torch.Tensor,
    groups: list[Group],
    loss_fn: ClipassoLoss,
    *,
    iterations: int,
    augmentations: int,
    aug_bank: int,
    eval_every: int,
    lr: float,
    early_stop: bool,
    patience: int,
    min_improvement: float,
    seed: int,
    main_level: int,
    on_progress: Optional[ProgressFn] = None,
    should_stop: Optional[StopFn] = None,
    progress_every: int = 1,
) -> RunOutcome:
    """Optimize all groups against ``photo (1, 3, C, C)`` in [0, 1]; return each group's best state.

    ``on_progress`` runs every ``progress_every`` steps and at each evaluation: reading the loss
    waits for the device, so on a GPU it is called only where the loop reads results anyway."""
    device = photo.device
    size = photo.shape[-1]
    G = len(groups)
    N = max(g.points.shape[0] for g in groups)

    # --- setup: pad every group to N strokes; padding sits far off the canvas (culled) -------
    points = torch.full((G, N, 4, 2), -1e4, device=device)                      # (G, N, 4, 2)
    widths = torch.zeros(G, N, device=device)                                   # (G, N)
    trainable = torch.zeros(G, N, 1, 1, device=device)                          # (G, N, 1, 1)
    for i, g in enumerate(groups):
        n = g.points.shape[0]
        points[i, :n] = g.points.to(device)
        widths[i, :n] = g.widths.to(device)
        trainable[i, :n, 0, 0] = (~g.locked.to(device)).float()
    points.requires_grad_(True)
    opt = torch.optim.Adam([points], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    main = torch.tensor([g.level == main_level for g in groups], device=device)
    loss_scale = 1024.0 if loss_fn.precision == "fp16" else 1.0

    gen = torch.Generator().manual_seed(seed)          # augmentation draws: deterministic per seed
    A = augmentations
    if aug_bank > 0:
        bank = augment.draw(aug_bank, size, gen)                                # (K, 3, 3)
        bank_targets = loss_fn.photo_targets(torch.cat([photo, augment.apply(photo, bank)]))  # K + 1

    best_loss = torch.full((G,), math.inf)
    best_points = points.detach().clone()
    stale = torch.zeros(G, dtype=torch.long)           # evaluations without a relative improvement
    ref_loss = torch.full((G,), math.inf)
    history: list[dict] = []
    stopped, it = "finished", 0

    # --- the loop -----------------------------------------------------------------------------
    for it in range(iterations):
        if should_stop is not None and should_stop():
            stopped = "cancelled"
            break
        if aug_bank > 0:
            pick = torch.randperm(aug_bank, generator=gen)[:A]
            mats = bank[pick]                                                   # (A, 3, 3)
            targets = bank_targets.select(torch.cat([torch.zeros(1, dtype=torch.long), pick + 1]).to(device))
        else:
            mats = augment.draw(A, size, gen)
            targets = loss_fn.photo_targets(torch.cat([photo, augment.apply(photo, mats)]))
        ink = render(points, widths, size, size)                               # (G, C, C)
        sketch = (1.0 - ink).unsqueeze(1).expand(G, 3, size, size)              # white paper, black ink
        views = [sketch.unsqueeze(1)]
        if A:
            views.append(augment.apply(sketch, mats).view(G, A, 3, size, size))
        batch = torch.cat(views, dim=1).reshape(G * (A + 1), 3, size, size)     # (G·(A+1), 3, C, C)
        per_image = loss_fn(batch, targets).view(G, A + 1)                      # (G, A+1)
        per_group = per_image.mean(1)                                           # (G,)

        evaluate = it % eval_every == 0 or it == iterations - 1
        if evaluate:
            plain = per_image[:, 0].detach().cpu()                              # eval loss: plain pair
            better = plain < best_loss
            best_loss = torch.where(better, plain, best_loss)
            best_points[better.to(device)] = points.detach()[better.to(device)]
            improved = plain < ref_loss * (1.0 - min_improvement)
            ref_loss = torch.where(improved, plain, ref_loss)
            stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
            history.append({"iteration": it, "loss": float(best_loss[main.cpu()].min())})

        report = on_progress is not None and (evaluate or it % progress_every == 0)
        if report:                                      # the state this step's loss belongs to
            current = per_group.detach().masked_fill(~main, math.inf)
            g = int(current.argmin())
            n = groups[g].points.shape[0]
            preview = (it, float(current[g]), points.detach()[g, :n].clone(), widths[g, :n])

        opt.zero_grad(set_to_none=False)
        # fp16 gradients of a ~1e-2 loss underflow; Adam is blind to a constant gradient scale
        (per_group.sum() * loss_scale).backward()
        points.grad.mul_(trainable)                     # locked and padding strokes never move
        if loss_scale != 1.0:                           # an fp16 overflow skips that move, without a host sync
            points.grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        opt.step()

        if report:
            on_progress(*preview)
        if early_stop and evaluate and bool((stale >= patience).all()):
            stopped = "early_stop"
            break

    steps = it + 1 if stopped != "cancelled" else it
    outcomes = [
        GroupOutcome(
            level=g.level,
            seed=g.seed,
            points=best_points[i, : g.points.shape[0]].cpu(),
            widths=widths[i, : g.points.shape[0]].cpu(),
            loss=float(best_loss[i]),
        )
        for i, g in enumerate(groups)
    ]
    return RunOutcome(groups=outcomes, iterations=steps, stopped=stopped, history=history)

