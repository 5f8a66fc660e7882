"""Cost of one optimization step vs the bare CLIP forward+backward it contains: prints tables.

    python benchmarks/iteration.py [--clip random:RN101] [--seeds 1,4] [--runs 5] [--threads 2]

Same batch for both: S seeds × (1 plain + 4 augmented) sketches of 16 strokes at 224².
"loop" is our whole step (render, augment, CLIP, loss, backward, Adam, bookkeeping), timed
between ``on_progress`` calls of a real ``optimize`` run; "bare CLIP" is only the image
tower's forward+backward on a batch of that size (fp32, default memory layout). The ratio is
what our machinery costs on top of CLIP (target ≤ 1.15 in fp32). Precision rows repeat the
loop with channels_last (our CPU default), bf16 and fp16 autocast where the device supports them.
Random weights: the same architecture costs the same as the real one.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from PIL import Image
from skimage import data

from clipasso_engine.api import resolve_precision
from clipasso_engine.clip_models import get_clip, normalize
from clipasso_engine.image import make_canvas
from clipasso_engine.loss import ClipassoLoss
from clipasso_engine.optimize import Group, optimize
from clipasso_engine.settings import PRESETS
from clipasso_engine.strokes import random_strokes

AUGS = 4


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def loop_ms(photo: torch.Tensor, clip, seeds: int, strokes: int, precision: str, runs: int) -> float:
    """Median ms per step of ``optimize`` over ``runs`` steps (after one warm-up step)."""
    device = photo.device
    gen = torch.Generator().manual_seed(0)
    start = random_strokes(seeds, strokes, 224, 224, gen)
    groups = [Group(strokes, s, start[s], torch.full((strokes,), 3.0), torch.zeros(strokes, dtype=torch.bool)) for s in range(seeds)]
    loss_fn = ClipassoLoss(clip, {"layer2": 1.0, "layer3": 1.0}, 0.1, precision)
    stamps: list[float] = []

    def tick(*_: object) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    optimize(photo, groups, loss_fn, iterations=runs + 2, augmentations=AUGS, aug_bank=64, eval_every=10, lr=1.0,
             early_stop=False, patience=1, min_improvement=0.0, seed=0, main_level=strokes, on_progress=tick)
    steps = [b - a for a, b in zip(stamps[1:], stamps[2:])]   # step i+1 timed from the end of step i
    return statistics.median(steps) * 1e3


def bare_clip_ms(clip, batch: int, device: torch.device, runs: int) -> float:
    """Median ms of the image tower's forward+backward on ``batch`` images (fp32)."""
    x = torch.rand(batch, 3, 224, 224, device=device)
    times = []
    for i in range(runs + 1):
        xi = x.clone().requires_grad_()
        _sync(device)
        t0 = time.perf_counter()
        emb, stages = clip.features(normalize(xi), ("layer2", "layer3"))
        (emb.sum() + sum(s.square().mean() for s in stages.values())).backward()
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="random:RN101")
    ap.add_argument("--seeds", default="1,4")
    ap.add_argument("--strokes", type=int, default=16)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--devices", default="cpu,cuda")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device(d) for d in args.devices.split(",") if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    canvas = make_canvas(Image.fromarray(data.astronaut()))
    print(f"torch {torch.__version__}, {args.clip}, {args.strokes} strokes, {AUGS}+1 images per seed, "
          f"CPU threads {args.threads}, median of {args.runs} steps")
    print("| device | seeds | images | precision | loop ms/step | bare CLIP fp32 fwd+bwd ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    per_step: dict[tuple[str, int], float] = {}
    for device in devices:
        clip = get_clip(args.clip, device)
        photo = canvas.pixels.to(device)
        precisions = ["fp32", "bf16"] if device.type == "cpu" else ["fp32", "fp16", "bf16"]
        for seeds in (int(s) for s in args.seeds.split(",")):
            batch = seeds * (AUGS + 1)
            bare = bare_clip_ms(clip, batch, device, args.runs)
            for precision in precisions:
                ms = loop_ms(photo, clip, seeds, args.strokes, precision, args.runs)
                label = precision + (" channels_last" if device.type == "cpu" else "")
                print(f"| {device.type} | {seeds} | {batch} | {label} | {ms:.0f} | {bare:.0f} | {ms / bare:.2f} |", flush=True)
                if precision == resolve_precision("auto", device):
                    per_step[(device.type, seeds)] = ms

    print("\nWhole sketch per preset (default precision, no early stop): iterations × ms/step; a seed count")
    print("that was not measured is interpolated linearly between the measured ones.")
    print("| device | preset | iterations | seeds | minutes |")
    print("|---|---|---|---|---|")
    for dev in sorted({d for d, _ in per_step}):
        measured = sorted((s, ms) for (d, s), ms in per_step.items() if d == dev)
        for name, p in PRESETS.items():
            ms = _interpolate(measured, p["seeds"])
            print(f"| {dev} | {name} | {p['iterations']} | {p['seeds']} | {p['iterations'] * ms / 60000:.1f} |")


def _interpolate(points: list[tuple[int, float]], x: int) -> float:
    """Piecewise-linear value at ``x`` through (seeds, ms) points, extended at the ends."""
    if len(points) == 1:
        return points[0][1] * x / points[0][0]
    (x0, y0), (x1, y1) = next(((a, b) for a, b in zip(points, points[1:]) if x <= b[0]), points[-2:])
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)

if __name__ == "__main__":
    main()
