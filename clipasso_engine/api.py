"""``sketch()``: photo in, SketchResult out. The one entry point of CLI, server and Python users."""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import torch

from . import __version__
from .augment import stream_count
from .clip_models import ClipImageModel, get_clip
from .clip_weights import WeightsMissingError, check_present
from .devices import resolve_device, resolve_precision
from .errors import SettingsError
from .image import Canvas, ImageError, ImageInput, load_image, make_canvas, photo_size
from .loss import ClipassoLoss
from .memory import check_fits
from .optimize import CheckpointFn, Group, LoopState, optimize
from .regions import RegionMasks, canvas_masks
from .result import SketchResult, finite_or_none
from .saliency import initial_strokes, start_probabilities
from .score import clip_scores
from .settings import SketchSettings
from .strokes import Stroke, strokes_to_tensors, tensors_to_strokes

PreviewFn = Callable[[int, float, list[Stroke]], None]


def sketch(
    image: ImageInput,
    settings: Optional[SketchSettings] = None,
    on_progress: Optional[PreviewFn] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    *,
    init_strokes: Optional[Sequence[Stroke]] = None,
    locked: Sequence[int] = (),
    mask: Optional[ImageInput] = None,
    download: bool = False,
    on_checkpoint: Optional[CheckpointFn] = None,
    checkpoint_seconds: float = 5.0,
    resume: Optional[LoopState] = None,
) -> SketchResult:
    """Sketch a photo.

    Args:
        image: path, encoded bytes, PIL image or H×W×3 uint8 array.
        settings: SketchSettings (default: the ``auto`` preset: ``fast`` on a CPU, ``standard`` on a GPU).
        on_progress: called with (iteration, loss, preview strokes in photo px) after every step
            on a CPU, after every evaluation (``eval_every`` steps) on a GPU.
        should_stop: polled before every step; True cancels (the best state so far is returned).
        init_strokes: start from these strokes (photo px; e.g. an edited sketch) instead of the
            saliency initialization; the run then has one level of ``len(init_strokes)`` strokes
            and one seed.
        locked: indices into ``init_strokes`` that stay fixed (drawn, in the loss, never moved).
        mask: foreground mask image (white = keep) for ``settings.mask``; the background of the
            photo is replaced by white before sketching. ``settings.regions`` (subject polygons)
            whiten the photo too; with both, only what both keep is kept.
        download: fetch missing OpenAI CLIP weights (once, into the cache); else they must be present.
        on_checkpoint: called with the loop's ``LoopState`` every ``checkpoint_seconds`` (0: every
            step) and when ``should_stop`` stops the run; ``state.to_bytes()`` saves it.
        resume: a ``LoopState`` from a run of the same arguments (``LoopState.from_bytes``): the
            run goes on from its step and ends with the strokes the uninterrupted run would have.

    Returns a SketchResult in photo pixels. Raises ``ImageError`` for unusable images,
    ``RegionError`` (a ``ValueError``) for drawn regions that miss the photo or leave no pixel to
    start on, ``WeightsMissingError`` when CLIP weights are absent, ``MemoryBudgetError`` when the
    job would not fit in the device's free memory, ``ValueError`` for bad arguments.
    """
    settings = settings or SketchSettings()
    started = time.perf_counter()
    img = load_image(image)
    canvas = make_canvas(img)
    device = resolve_device(settings.device)
    regions = canvas_masks(settings.regions, canvas)             # RegionError before any model loads
    photo = _masked(canvas, mask, settings.mask, regions).to(device)
    avoid_field = regions.avoid_field()

    # every missing weights file named at once (after trying to download them when allowed)
    check_present([("clip", settings.clip)] + ([("saliency_clip", settings.saliency_clip)]
                                               if settings.saliency and not init_strokes else []), download)
    clip = get_clip(settings.clip, device, download=download)
    precision = resolve_precision(settings.precision, device)
    loss_fn = ClipassoLoss(clip, settings.geometric_weights, settings.semantic_weight, precision)
    canvas_width = torch.tensor(settings.width)

    if init_strokes:
        groups, levels, seeds = _groups_from_strokes(init_strokes, locked, canvas, settings), [len(init_strokes)], [settings.seed]
        saliency_model = None
    else:
        if locked:
            raise SettingsError("locked strokes need init_strokes to lock")
        levels, seeds = settings.stroke_counts, settings.seed_list
        saliency_model = get_clip(settings.saliency_clip, device, download=download) if settings.saliency else None
        weights = regions.start_weights(canvas.valid, settings.detail_weight)   # None without regions
        prob = _start_probabilities(photo, saliency_model, canvas, weights, max(levels))
        uniform = saliency_model is None and weights is None
        groups = []
        for n in levels:
            start = initial_strokes(prob.cpu(), n, seeds, uniform=uniform, valid=canvas.valid)  # (S, n, 4, 2)
            if weights is not None and (regions.subject is not None or regions.avoid is not None):
                start = regions.keep_inside(start, weights)
            for s, pts in zip(seeds, start):
                groups.append(Group(n, s, pts, canvas_width.expand(n).clone(), torch.zeros(n, dtype=torch.bool)))
    main_level = max(levels)
    check_fits(len(groups), settings.augmentations, settings.aug_bank, stream_count(settings.aug_streams, len(seeds)),
               precision, device, f"{len(levels)} level(s) × {len(seeds)} seed(s)")

    def progress(it: int, loss: float, points: torch.Tensor, widths: torch.Tensor) -> None:
        assert on_progress is not None
        on_progress(it, loss, tensors_to_strokes(canvas.to_photo(points.cpu()), widths.cpu() * canvas.scale))

    run = optimize(
        photo,
        groups,
        loss_fn,
        iterations=settings.iterations,
        augmentations=settings.augmentations,
        aug_bank=settings.aug_bank,
        aug_passes=settings.aug_passes,
        aug_streams=settings.aug_streams,
        eval_every=settings.eval_every,
        lr=settings.lr,
        early_stop=settings.early_stop,
        patience=settings.patience,
        min_improvement=settings.min_improvement,
        seed=settings.seed,
        main_level=main_level,
        on_progress=progress if on_progress is not None else None,
        should_stop=should_stop,
        progress_every=1 if device.type == "cpu" else settings.eval_every,   # GPU: no host sync per step
        on_checkpoint=on_checkpoint,
        checkpoint_seconds=checkpoint_seconds,
        resume=resume,
        avoid_field=avoid_field.to(device) if avoid_field is not None else None,
        avoid_weight=settings.avoid_weight,
    )

    result_levels: dict[int, list[Stroke]] = {}
    level_meta: dict[int, dict] = {}
    winners = [min((g for g in run.groups if g.level == n), key=lambda g: g.loss) for n in levels]
    score_model = saliency_model or _score_model(settings.saliency_clip, device, download)
    scores = (clip_scores(score_model, photo, [(g.points, g.widths) for g in winners])
              if score_model is not None else [None] * len(levels))
    for n, best, score in zip(levels, winners, scores):
        result_levels[n] = _to_photo_strokes(best.points, best.widths, canvas, init_strokes, locked)
        level_meta[n] = {"seed": best.seed, "loss": finite_or_none(best.loss),
                         "seed_losses": {str(g.seed): finite_or_none(g.loss) for g in run.groups if g.level == n},
                         "clip_score": score}
    random_weights = clip.random or (saliency_model is not None and saliency_model.random)
    return SketchResult(
        strokes=result_levels[main_level],
        levels=result_levels,
        width=canvas.width,
        height=canvas.height,
        loss=level_meta[main_level]["loss"],
        seed=level_meta[main_level]["seed"],
        history=run.history,
        level_meta=level_meta,
        engine={
            "name": "clipasso-inkscape",
            "version": __version__,
            "clip": clip.spec,
            "clip_source": clip.source,
            "saliency_clip": saliency_model.spec if saliency_model is not None else None,
            "score_clip": score_model.spec if score_model is not None else None,
            "clip_score": level_meta[main_level]["clip_score"],
            "random_weights": bool(random_weights),
            "device": str(device),
            "precision": precision,
            "preset": settings.preset,
            "iterations": run.iterations,
            "stopped": run.stopped,
            "seconds": round(time.perf_counter() - started, 3),
            "settings": settings.model_dump(mode="json"),
        },
    )


def _start_probabilities(photo: torch.Tensor, saliency_model: Optional[ClipImageModel], canvas: Canvas,
                         weights: Optional[torch.Tensor], min_pixels: int) -> torch.Tensor:
    """Where strokes start ``(C, C)``: saliency × edges (or uniform over the photo), times the
    regions' ``weights`` (0 outside the subject and in avoid zones, ``detail_weight`` in detail
    zones), renormalized."""
    device = photo.device
    if saliency_model is None:
        prob = canvas.valid.float() / canvas.valid.sum()
    else:
        allowed = None if weights is None else (weights > 0).to(device)
        prob = start_probabilities(photo, saliency_model, valid=canvas.valid.to(device), mask=allowed,
                                   min_pixels=min_pixels)
    if weights is None:
        return prob
    # positive somewhere: start_weights refuses regions that leave no pixel, and saliency's
    # distribution is positive somewhere inside ``allowed``
    prob = prob * weights.to(prob.device)
    return prob / prob.sum()


def _score_model(spec: str, device: torch.device, download: bool) -> Optional[ClipImageModel]:
    """The ViT for the CLIP score when the run did not load it for saliency (refinement, no
    saliency): None when its weights are missing, as only the score needs it then."""
    try:
        return get_clip(spec, device, download=download)
    except WeightsMissingError:
        return None


def _masked(canvas: Canvas, mask: Optional[ImageInput], use_mask: bool, regions: Optional[RegionMasks] = None) -> torch.Tensor:
    """The canvas photo, with the background made white where the mask image (when used) or the
    subject regions (when drawn) do not keep it; both together keep their intersection."""
    keep = None if regions is None or regions.subject is None else regions.subject.view(1, 1, *regions.subject.shape)
    if not use_mask:
        return canvas.pixels if keep is None else canvas.pixels * keep + (1.0 - keep)
    if mask is None:
        raise ImageError(
            "background removal (mask) needs a foreground mask: pass one (white = keep), or turn mask off; "
            "no background-removal model is installed"
        )
    m = load_image(mask)
    mw, mh = photo_size(m)
    if (mw, mh) != (canvas.width, canvas.height):
        raise ImageError(f"the mask is {mw}×{mh} but the photo is {canvas.width}×{canvas.height}")
    mask_keep = make_canvas(m).pixels.mean(1, keepdim=True)                  # (1, 1, C, C)
    keep = mask_keep * canvas.valid.float() * (1.0 if keep is None else keep)
    return canvas.pixels * keep + (1.0 - keep)


def _groups_from_strokes(strokes: Sequence[Stroke], locked: Sequence[int], canvas: Canvas, settings: SketchSettings) -> list[Group]:
    n = len(strokes)
    bad = [i for i in locked if not 0 <= i < n]
    if bad:
        raise SettingsError(f"locked stroke indices {bad} are out of range: there are {n} initial strokes")
    pts, widths = strokes_to_tensors(strokes)
    lock = torch.zeros(n, dtype=torch.bool)
    lock[list(locked)] = True
    return [Group(n, settings.seed, canvas.to_canvas(pts), widths / canvas.scale, lock)]


def _to_photo_strokes(
    points: torch.Tensor, widths: torch.Tensor, canvas: Canvas, init: Optional[Sequence[Stroke]], locked: Sequence[int]
) -> list[Stroke]:
    strokes = tensors_to_strokes(canvas.to_photo(points), widths * canvas.scale)
    if not init:
        return strokes
    # locked strokes come back exactly as given; refined ones keep the designer's colour and opacity
    return [
        o if i in locked else Stroke(points=s.points, width=o.width, color=o.color, opacity=o.opacity)
        for i, (s, o) in enumerate(zip(strokes, init))
    ]
