"""What the reference's augmentation costs the `paper` preset (docs/method.md §3): prints a table.

    python benchmarks/augment.py [--clip random:RN101] [--seeds 3] [--runs 4] [--threads 2] [--device cpu]

One step of a real ``optimize`` run, fresh augmentations each step (``aug_bank = 0``, as in
`paper`), S seeds × (1 plain + 4 augmented) sketches of 16 strokes at 224², for each way of
augmenting: one resampling and one stream for the run (`paper` before), two resamplings, one
stream per seed, and both (`paper` now). A stream per seed encodes S × 5 photo views per step
instead of 5 (no gradient). Also the bare warp of the S × 4 sketch views, one pass vs two. The
`fast`/`standard` presets keep one resampling and one stream: their steps are unchanged.
Random weights: the same architecture costs the same as the real one. Median of ``runs`` steps
after a warm-up, ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from PIL import Image
from skimage import data

from clipasso_engine import augment
from clipasso_engine.clip_models import get_clip
from clipasso_engine.devices import resolve_precision
from clipasso_engine.image import make_canvas
from clipasso_engine.loss import ClipassoLoss
from clipasso_engine.optimize import Group, optimize
from clipasso_engine.strokes import random_strokes

AUGS = 4
STROKES = 16


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_ms(photo: torch.Tensor, loss_fn: ClipassoLoss, seeds: int, passes: int, streams: str, runs: int) -> float:
    """Median ms per step of ``optimize`` with fresh augmentations, after one warm-up step."""
    device = photo.device
    start = random_strokes(seeds, STROKES, 224, 224, torch.Generator().manual_seed(0))
    groups = [Group(STROKES, 1000 * s, start[s], torch.full((STROKES,), 3.0), torch.zeros(STROKES, dtype=torch.bool))
              for s in range(seeds)]
    stamps: list[float] = []

    def tick(*_: object) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    optimize(photo, groups, loss_fn, iterations=runs + 2, augmentations=AUGS, aug_bank=0, aug_passes=passes,
             aug_streams=streams, eval_every=1000, lr=1.0, early_stop=False, patience=1, min_improvement=0.0,
             seed=0, main_level=STROKES, on_progress=tick)
    return statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:])) * 1e3


def warp_ms(images: int, passes: int, device: torch.device, runs: int) -> float:
    """Median ms of warping ``images`` sketches by their own augmentation each (forward + backward)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(images, 3, 224, 224, device=device)
    mats = augment.draw(images, 224, gen, passes=passes).unsqueeze(1)
    times = []
    for i in range(runs + 1):
        xi = x.clone().requires_grad_()
        _sync(device)
        t0 = time.perf_counter()
        augment.apply_each(xi, mats).sum().backward()
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="random:RN101")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0, help="torch threads on the CPU (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    photo = make_canvas(Image.fromarray(data.astronaut())).pixels.to(device)
    loss_fn = ClipassoLoss(get_clip(args.clip, device), {"layer2": 1.0, "layer3": 1.0}, 0.1, precision)

    print(f"{args.clip} on {device} ({precision}, {torch.get_num_threads()} threads), {args.seeds} seeds × "
          f"(1 + {AUGS}) images, fresh augmentations; ms per step (median of {args.runs})\n")
    print("| resamplings | streams | ms / step | vs `paper` before |")
    print("|---|---|---|---|")
    step_ms(photo, loss_fn, args.seeds, 2, "seed", 1)          # warm-up: the kernels for every batch shape
    base = None
    for passes, streams in ((1, "run"), (2, "run"), (1, "seed"), (2, "seed")):
        ms = step_ms(photo, loss_fn, args.seeds, passes, streams, args.runs)
        base = base or ms
        print(f"| {passes} | {'one per seed' if streams == 'seed' else 'one per run'} | {ms:.0f} | {ms / base:.2f} |")
    images = args.seeds * AUGS
    one, two = warp_ms(images, 1, device, args.runs), warp_ms(images, 2, device, args.runs)
    print(f"\nwarp of {images} sketch views, forward + backward: one pass {one:.1f} ms, two passes {two:.1f} ms")


if __name__ == "__main__":
    main()
