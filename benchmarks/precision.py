"""Does a bf16 (or fp16) sketch optimize the way an fp32 one does? Prints two tables.

    python benchmarks/precision.py [--clip random:RN101] [--precision bf16] [--steps 50] [--long 200]

1. Gradient agreement along a run: an fp32 run of ``--steps`` steps; at every step the loss
   gradient with respect to the control points is computed in fp32 and in the reduced
   precision on the same strokes and the same augmentations, and their cosine is reported
   (what Adam sees: the direction of every point's move).
2. Where the strokes end: runs of ``--long`` steps from the same start strokes, in fp32 and in
   the reduced precision, and the mean distance between their final control points (canvas px,
   224 = the photo's long side). Next to it the spread that fp32 itself has: the same start with
   another augmentation stream, and another seed (another start).

Random weights (``random:RN101``) have the real architecture and a realistic scale of
activations (see clip_models._random_tower); run it with real weights to confirm.
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
from clipasso_engine.image import make_canvas
from clipasso_engine.loss import ClipassoLoss
from clipasso_engine.optimize import Group, optimize
from clipasso_engine.raster import render
from clipasso_engine.saliency import initial_strokes, start_probabilities

AUGS, BANK, WIDTH = 4, 64, 3.0


def start_strokes(photo: torch.Tensor, canvas, strokes: int, seed: int, saliency: str) -> torch.Tensor:
    """The saliency start of ``seed`` (``(N, 4, 2)`` canvas px), as a sketch would begin."""
    prob = start_probabilities(photo, get_clip(saliency, photo.device), valid=canvas.valid.to(photo.device), min_pixels=strokes)
    return initial_strokes(prob.cpu(), strokes, [seed], uniform=False, valid=canvas.valid)[0].to(photo.device)


def gradient_cosines(photo: torch.Tensor, start: torch.Tensor, clip, precision: str, steps: int, bank_size: int = BANK) -> list[float]:
    """Per-step cosine between the fp32 and the ``precision`` control-point gradient along an fp32 run
    (augmentations drawn from a bank of ``bank_size``, as a sketch does)."""
    exact = ClipassoLoss(clip, {"layer2": 1.0, "layer3": 1.0}, 0.1, "fp32")
    reduced = ClipassoLoss(clip, {"layer2": 1.0, "layer3": 1.0}, 0.1, precision)
    gen = torch.Generator().manual_seed(0)
    bank = augment.draw(bank_size, 224, gen)
    views = torch.cat([photo, augment.apply(photo, bank)])
    targets = {"fp32": exact.photo_targets(views), precision: reduced.photo_targets(views)}
    points = start.clone().unsqueeze(0).requires_grad_()                       # (1, N, 4, 2)
    widths = torch.full(points.shape[:2], WIDTH, device=points.device)
    opt = torch.optim.Adam([points], lr=1.0)
    cosines = []
    for _ in range(steps):
        pick = torch.randperm(bank_size, generator=gen)[:AUGS]
        index = torch.cat([torch.zeros(1, dtype=torch.long), pick + 1])
        grads = {}
        for name, loss_fn in (("fp32", exact), (precision, reduced)):
            p = points.detach().clone().requires_grad_()
            sketch = (1 - render(p, widths, 224, 224)).unsqueeze(1).expand(1, 3, 224, 224)
            batch = torch.cat([sketch, augment.apply(sketch, bank[pick])])
            scale = 1024.0 if name == "fp16" else 1.0
            (loss_fn(batch, targets[name].select(index)).mean() * scale).backward()
            grads[name] = p.grad.flatten()
        cosines.append(float(torch.cosine_similarity(grads["fp32"], grads[precision], dim=0)))
        opt.zero_grad()
        points.grad = grads["fp32"].view_as(points).clone()
        opt.step()
    return cosines


def final_points(photo: torch.Tensor, start: torch.Tensor, clip, precision: str, steps: int, aug_seed: int) -> torch.Tensor:
    """Best-eval control points ``(N, 4, 2)`` of a ``steps``-step run from ``start``."""
    n = start.shape[0]
    group = Group(n, aug_seed, start.clone(), torch.full((n,), WIDTH), torch.zeros(n, dtype=torch.bool))
    loss_fn = ClipassoLoss(clip, {"layer2": 1.0, "layer3": 1.0}, 0.1, precision)
    run = optimize(photo, [group], loss_fn, iterations=steps, augmentations=AUGS, aug_bank=BANK, eval_every=10,
                   lr=1.0, early_stop=False, patience=1, min_improvement=0.0, seed=aug_seed, main_level=n)
    return run.groups[0].points


def mean_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean Euclidean distance between corresponding control points, px."""
    return float((a.cpu() - b.cpu()).norm(dim=-1).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="random:RN101")
    ap.add_argument("--saliency-clip", default="random:ViT-B-32")
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp16"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--strokes", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--long", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    canvas = make_canvas(Image.fromarray(data.astronaut()))
    photo = canvas.pixels.to(device)
    clip = get_clip(args.clip, device)
    start = start_strokes(photo, canvas, args.strokes, 0, args.saliency_clip).to(device)
    print(f"torch {torch.__version__}, {args.clip}, {args.precision} vs fp32 on {device}, {args.strokes} strokes, "
          f"{AUGS}+1 images per step, astronaut photo")

    t0 = time.perf_counter()
    cos = gradient_cosines(photo, start, clip, args.precision, args.steps)
    print(f"\n1. Control-point gradient cosine, {args.precision} vs fp32, at each of {args.steps} steps of an fp32 run "
          f"({time.perf_counter() - t0:.0f} s)")
    print("| steps | min | 5th percentile | median | mean |")
    print("|---|---|---|---|---|")
    q = statistics.quantiles(cos, n=20)
    print(f"| {len(cos)} | {min(cos):.4f} | {q[0]:.4f} | {statistics.median(cos):.4f} | {statistics.mean(cos):.4f} |", flush=True)

    t0 = time.perf_counter()
    ref = final_points(photo, start, clip, "fp32", args.long, 0)
    reduced = final_points(photo, start, clip, args.precision, args.long, 0)
    other_stream = final_points(photo, start, clip, "fp32", args.long, 1)
    other_start = start_strokes(photo, canvas, args.strokes, 1000, args.saliency_clip).to(device)
    other_seed = final_points(photo, other_start, clip, "fp32", args.long, 1000)
    print(f"\n2. Mean distance of the final control points after {args.long} steps, canvas px of 224 "
          f"({time.perf_counter() - t0:.0f} s)")
    print("| compared with the fp32 run (same start, same augmentations) | mean px |")
    print("|---|---|")
    print(f"| start strokes (how far the optimization moved them) | {mean_distance(ref, start):.2f} |")
    print(f"| {args.precision}, same start, same augmentations | {mean_distance(ref, reduced):.2f} |")
    print(f"| fp32, same start, another augmentation stream | {mean_distance(ref, other_stream):.2f} |")
    print(f"| fp32, another seed (another start) | {mean_distance(ref, other_seed):.2f} |")


if __name__ == "__main__":
    main()
