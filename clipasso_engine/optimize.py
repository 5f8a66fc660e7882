"""The optimization loop (docs/method.md §4), top to bottom in one function.

Every (abstraction level, seed) pair is a *group*: its own strokes, its own Adam state (Adam is
element-wise, so batching groups changes nothing about each one's path). All groups go through
the rasterizer and CLIP together, one batch per step. Coordinates are canvas pixels.

Checkpoints: every ``checkpoint_seconds`` (and when stopped) the loop hands ``on_checkpoint`` a
``LoopState``, everything that changes from step to step; ``optimize(..., resume=state)`` goes on
from it and ends exactly as the run that was never interrupted (same device and threads).
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from . import augment
from .limits import AUG_STREAM_NAMES
from .loss import ClipassoLoss
from .raster import render
from .regions import ink_penalty

# on_progress(iteration, training loss, points (N, 4, 2), widths (N,)) after each step, for the
# group with the lowest training loss among the main level's groups, in the state that loss
# was measured on (before the step); the caller turns its strokes into a preview.
ProgressFn = Callable[[int, float, torch.Tensor, torch.Tensor], None]
StopFn = Callable[[], bool]


@dataclass
class LoopState:
    """The loop at the start of step ``iteration``: all it needs to go on from there.

    Tensors are on the CPU, every group padded to the batch's stroke count as in the loop:
    ``points``/``best_points`` ``(G, N, 4, 2)`` canvas px; ``best_loss``, ``ref_loss`` ``(G,)``
    eval losses; ``stale`` ``(G,)`` evaluations without improvement (early stop); ``adam`` the
    optimizer's ``state_dict()`` (moments and step count); ``rng`` the augmentation streams'
    states (``augment.Streams.get_state``). A few kB per group: the setup (photo targets,
    augmentation bank) is redone on resume, as it is drawn from the seeds alone.
    """

    iteration: int
    points: torch.Tensor
    adam: dict[str, Any]
    best_points: torch.Tensor
    best_loss: torch.Tensor
    ref_loss: torch.Tensor
    stale: torch.Tensor
    history: list[dict]
    rng: torch.Tensor

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save(dataclasses.asdict(self), buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "LoopState":
        """Raises ``ValueError`` for anything but a whole checkpoint (torn, truncated, foreign)."""
        try:
            fields = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            return cls(**fields)
        except Exception as exc:
            raise ValueError(f"not a readable checkpoint ({type(exc).__name__}: {exc})") from None


CheckpointFn = Callable[[LoopState], None]


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
    aug_passes: int = 1,
    aug_streams: str = "run",
    eval_every: int,
    lr: float,
    early_stop: bool,
    patience: int,
    min_improvement: float,
    seed: int,
    main_level: int,
    on_progress: Optional[ProgressFn] = None,
    should_stop: Optional[StopFn] = None,
    on_checkpoint: Optional[CheckpointFn] = None,
    checkpoint_seconds: float = 5.0,
    resume: Optional[LoopState] = None,
    progress_every: int = 1,
    avoid_field: Optional[torch.Tensor] = None,
    avoid_weight: float = 0.0,
) -> RunOutcome:
    """Optimize all groups against ``photo (1, 3, C, C)`` in [0, 1]; return each group's best state.

    ``on_progress`` runs every ``progress_every`` steps and at each evaluation: reading the loss
    waits for the device, so on a GPU it is called only where the loop reads results anyway.
    ``on_checkpoint`` gets a ``LoopState`` at the start of a step once ``checkpoint_seconds`` have
    passed since the last one (0: every step), and when ``should_stop`` stops the run. ``resume``:
    go on from such a state (raises ``ValueError`` when it belongs to another batch).
    ``avoid_field`` ``(C, C)`` (``regions.RegionMasks.avoid_field``): ``avoid_weight`` times the ink
    there (``regions.ink_penalty``) is added to every group's loss, training and eval alike, so
    the best state kept is one that keeps out of the zones too.
    ``aug_passes``: resamplings per augmentation (1, or 2 as the reference); ``aug_streams``:
    "run" (one random stream seeded with ``seed``) or "seed" (one per group seed, as the
    reference), docs/method.md §3."""
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

    if aug_streams not in AUG_STREAM_NAMES:
        raise ValueError(f"aug_streams must be one of {AUG_STREAM_NAMES}, got {aug_streams!r}")
    streams = augment.Streams([g.seed for g in groups], seed, per_seed=aug_streams == "seed")
    S, A = streams.count, augmentations
    if aug_bank > 0:                                    # per stream; the photo's views: plain + S·K
        bank = streams.draw(aug_bank, size, aug_passes)                         # (S, K, [2,] 3, 3)
        bank_targets = loss_fn.photo_targets(torch.cat([photo, augment.apply(photo, bank.flatten(0, 1))]))

    best_loss = torch.full((G,), math.inf)
    best_points = points.detach().clone()
    stale = torch.zeros(G, dtype=torch.long)           # evaluations without a relative improvement
    ref_loss = torch.full((G,), math.inf)
    history: list[dict] = []
    start = 0
    if resume is not None:
        if resume.points.shape != points.shape:
            raise ValueError(f"the checkpoint holds strokes {tuple(resume.points.shape)}, this run "
                             f"{tuple(points.shape)}: it belongs to another job")
        with torch.no_grad():
            points.copy_(resume.points)
        opt.load_state_dict(resume.adam)
        best_points = resume.best_points.to(device, copy=True)
        best_loss, ref_loss, stale = resume.best_loss.clone(), resume.ref_loss.clone(), resume.stale.clone()
        history, start = list(resume.history), resume.iteration
        streams.set_state(resume.rng)
    stopped, it = "finished", start
    next_checkpoint = time.monotonic() + checkpoint_seconds

    # --- the loop -----------------------------------------------------------------------------
    for it in range(start, iterations):
        stop = should_stop is not None and should_stop()
        if on_checkpoint is not None and (stop or time.monotonic() >= next_checkpoint):
            on_checkpoint(LoopState(
                iteration=it, points=points.detach().cpu().clone(), adam=_cpu_state(opt),
                best_points=best_points.cpu().clone(), best_loss=best_loss.clone(), ref_loss=ref_loss.clone(),
                stale=stale.clone(), history=[dict(h) for h in history], rng=streams.get_state(),
            ))
            next_checkpoint = time.monotonic() + checkpoint_seconds
        if stop:
            stopped = "cancelled"
            break
        if aug_bank > 0:
            pick = streams.pick(aug_bank, A)                                    # (S, A)
            mats = bank[torch.arange(S)[:, None], pick]                         # (S, A, [2,] 3, 3)
            views = 1 + torch.arange(S)[:, None] * aug_bank + pick              # rows of bank_targets
            photo_views = bank_targets
        else:
            mats = streams.draw(A, size, aug_passes)                            # (S, A, [2,] 3, 3)
            photo_views = loss_fn.photo_targets(torch.cat([photo, augment.apply(photo, mats.flatten(0, 1))]))
            views = 1 + torch.arange(S * A).view(S, A)
        index = torch.cat([torch.zeros(S, 1, dtype=torch.long), views], dim=1)  # (S, A+1): plain, then views
        if S == 1:                                      # every group shares the stream's A + 1 targets
            targets = photo_views.select(index[0].to(device))
        else:                                           # each group its own stream's targets
            targets = photo_views.select(index[streams.index].flatten().to(device))  # (G·(A+1))
        ink = render(points, widths, size, size)                               # (G, C, C)
        sketch = (1.0 - ink).unsqueeze(1).expand(G, 3, size, size)              # white paper, black ink
        images = [sketch.unsqueeze(1)]
        if A:
            warped = augment.apply_each(sketch, mats[streams.index])             # each group by its stream's views
            images.append(warped.view(G, A, 3, size, size))
        batch = torch.cat(images, dim=1).reshape(G * (A + 1), 3, size, size)    # (G·(A+1), 3, C, C)
        per_image = loss_fn(batch, targets).view(G, A + 1)                      # (G, A+1)
        per_group = per_image.mean(1)                                           # (G,)
        if avoid_field is not None and avoid_weight > 0:
            penalty = avoid_weight * ink_penalty(ink, avoid_field)              # (G,)
            per_group = per_group + penalty
            per_image = per_image + penalty.detach().unsqueeze(1)               # the eval loss counts it too

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


def _cpu_state(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """``opt.state_dict()`` with its tensors copied to the CPU (the live ones change every step)."""
    state = opt.state_dict()
    state["state"] = {k: {name: v.detach().cpu().clone() if torch.is_tensor(v) else v for name, v in s.items()}
                      for k, s in state["state"].items()}
    return state
