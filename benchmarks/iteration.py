"""Cost of one optimization step vs the bare CLIP forward+backward it contains: prints tables.

    python benchmarks/iteration.py [--clip random:RN101] [--seeds 1,4] [--runs 5] [--threads 2]
    python benchmarks/iteration.py --devices cuda --sketch standard     # + one whole sketch, timed

Same batch for both: S seeds × (1 plain + 4 augmented) sketches of 16 strokes at 224².
"loop" is our whole step (render, augment, CLIP, loss, backward, Adam, bookkeeping), timed
between ``on_progress`` calls of a real ``optimize`` run; "bare CLIP" is only the image
tower's forward+backward on a batch of that size (fp32, default memory layout). The ratio is
what our machinery costs on top of CLIP (target ≤ 1.15 in fp32). Precision rows repeat the
loop with channels_last (our CPU default), bf16 and fp16 autocast where the device supports them.
Then the default precision (``precision="auto"``) per device: the set-up of a sketch (photo,
saliency start, the encoded augmentation bank, the first step), measured through ``sketch()``
with the models already loaded, and each preset's estimated time = set-up + iterations × step,
also as a multiple of the bare fp32 CLIP pass of one seed (the floor). ``--sketch PRESET`` also
runs one whole sketch of that preset (no early stop) per device and reports its wall time.
Random weights: the same architecture costs the same as the real one.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from PIL import Image
from skimage import data

from clipasso_engine import SketchSettings, sketch
from clipasso_engine.devices import cpu_has_native_bf16, resolve_precision
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
    """Milliseconds per step of a real ``optimize`` run, after one warm-up step: the median of
    ``runs`` steps on a CPU; on a GPU the mean over ``runs`` steps between two synchronizations,
    as the loop itself synchronizes only at evaluations."""
    device = photo.device
    gpu = device.type != "cpu"
    gen = torch.Generator().manual_seed(0)
    start = random_strokes(seeds, strokes, 224, 224, gen)
    groups = [Group(strokes, s, start[s], torch.full((strokes,), 3.0), torch.zeros(strokes, dtype=torch.bool)) for s in range(seeds)]
    loss_fn = ClipassoLoss(clip, {"layer2": 1.0, "layer3": 1.0}, 0.1, precision)
    stamps: list[tuple[int, float]] = []

    def tick(it: int, *_: object) -> None:
        _sync(device)
        stamps.append((it, time.perf_counter()))

    optimize(photo, groups, loss_fn, iterations=runs + 2, augmentations=AUGS, aug_bank=64,
             eval_every=runs + 10 if gpu else 10, lr=1.0, early_stop=False, patience=1, min_improvement=0.0, seed=0,
             main_level=strokes, on_progress=tick, progress_every=runs if gpu else 1)
    if gpu:                                   # ticks at step 0 (warm-up), step `runs` and the last step
        (i0, t0), (i1, t1) = stamps[0], stamps[1]
        return (t1 - t0) / (i1 - i0) * 1e3
    steps = [b - a for (_, a), (_, b) in zip(stamps[1:], stamps[2:])]   # step i+1 timed from the end of step i
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


def step_gflop(clip, batch: int, device: torch.device) -> float:
    """Arithmetic of the CLIP part of one step (forward + backward to the input, no weight
    gradients) on ``batch`` images, GFLOP, as torch's FLOP counter sees it (convs and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(batch, 3, 224, 224, device=device, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        emb, stages = clip.features(normalize(x), ("layer2", "layer3"))
        (emb.sum() + sum(s.square().mean() for s in stages.values())).backward()
    return counter.get_total_flops() / 1e9


def matmul_gflops(dtype: torch.dtype, runs: int, n: int = 2048) -> float:
    """This CPU's own rate for a large square matrix product in ``dtype``, GFLOP/s: the most a
    step made of convolutions (lowered to the same kind of kernels) can hope for."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(max(runs, 3)):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e9


def sketch_seconds(settings: SketchSettings) -> float:
    """Wall time of one whole ``sketch()`` of the astronaut photo, s."""
    t0 = time.perf_counter()
    sketch(data.astronaut(), settings)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="random:RN101")
    ap.add_argument("--saliency-clip", default="random:ViT-B-32")
    ap.add_argument("--seeds", default="1,4")
    ap.add_argument("--strokes", type=int, default=16)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--sketch", choices=sorted(PRESETS), help="also time one whole sketch of this preset per device")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device(d) for d in args.devices.split(",") if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    canvas = make_canvas(Image.fromarray(data.astronaut()))
    gpus = ", ".join(torch.cuda.get_device_name(d) for d in range(torch.cuda.device_count())) or "none"
    print(f"torch {torch.__version__}, {args.clip}, {args.strokes} strokes, {AUGS}+1 images per seed, "
          f"CPU threads {args.threads}, native CPU bf16: {cpu_has_native_bf16()}, GPU: {gpus}; {args.runs} steps per row")
    print("| device | seeds | images | precision | loop ms/step | bare CLIP fp32 fwd+bwd ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    per_step: dict[tuple[str, int], float] = {}
    floor: dict[tuple[str, int], float] = {}
    for device in devices:
        clip = get_clip(args.clip, device)
        photo = canvas.pixels.to(device)
        precisions = ["fp32", "bf16"] if device.type == "cpu" else ["fp32", "fp16", "bf16"]
        for seeds in (int(s) for s in args.seeds.split(",")):
            batch = seeds * (AUGS + 1)
            bare = floor[(device.type, seeds)] = bare_clip_ms(clip, batch, device, args.runs)
            for precision in precisions:
                ms = loop_ms(photo, clip, seeds, args.strokes, precision, args.runs)
                label = precision + (" channels_last" if device.type == "cpu" else "")
                print(f"| {device.type} | {seeds} | {batch} | {label} | {ms:.0f} | {bare:.0f} | {ms / bare:.2f} |", flush=True)
                if precision == resolve_precision("auto", device):
                    per_step[(device.type, seeds)] = ms

    if any(d.type == "cpu" for d in devices):
        cpu = torch.device("cpu")
        clip = get_clip(args.clip, cpu)
        precision = resolve_precision("auto", cpu)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        peak = matmul_gflops(dtype, args.runs)
        print(f"\nHow close the CPU loop runs to this CPU's own {precision} matrix-product rate ({peak:.0f} GFLOP/s on "
              f"{args.threads} threads, {2048}² matmul): the CLIP part of a step is fixed arithmetic (forward + backward to "
              "the pixels, per image), so a faster step needs less arithmetic, not better kernels.")
        print("| seeds | images | GFLOP per step | loop ms/step | achieved GFLOP/s | % of matmul rate | fastest step the rate allows, ms |")
        print("|---|---|---|---|---|---|---|")
        for (dev, seeds), ms in sorted(per_step.items()):
            if dev != "cpu":
                continue
            gflop = step_gflop(clip, seeds * (AUGS + 1), cpu)
            rate = gflop / (ms / 1e3)
            print(f"| {seeds} | {seeds * (AUGS + 1)} | {gflop:.0f} | {ms:.0f} | {rate:.0f} | {100 * rate / peak:.0f} % | "
                  f"{gflop / peak * 1e3:.0f} |", flush=True)

    print("\nWhole sketch per preset at the default precision, no early stop: set-up + iterations × ms/step (a seed")
    print("count that was not measured is interpolated linearly). Set-up: photo, saliency start, augmentation bank")
    print("and first step, measured through sketch() with the models loaded; the floor is the bare fp32 pass of one seed.")
    print("| device | precision | models load s | set-up s | preset | iterations | seeds | estimate | × floor |")
    print("|---|---|---|---|---|---|---|---|---|")
    for device in devices:
        dev = device.type
        quick = SketchSettings(preset="fast", iterations=1, clip=args.clip, saliency_clip=args.saliency_clip, device=dev,
                               early_stop=False, strokes=args.strokes)
        first = sketch_seconds(quick)                 # loads the saliency model too
        setup = sketch_seconds(quick)                 # its one step (the slowest, warming up) counts as set-up
        measured = sorted((s, ms) for (d, s), ms in per_step.items() if d == dev)
        for name, p in PRESETS.items():
            total = setup + (p["iterations"] - 1) * _interpolate(measured, p["seeds"]) / 1e3
            print(f"| {dev} | {resolve_precision('auto', device)} | {first - setup:.1f} | {setup:.1f} | {name} | "
                  f"{p['iterations']} | {p['seeds']} | {_minutes(total)} | {total * 1e3 / floor[(dev, 1)]:.0f}× |", flush=True)
        if args.sketch:
            p = PRESETS[args.sketch]
            whole = sketch_seconds(SketchSettings(preset=args.sketch, clip=args.clip, saliency_clip=args.saliency_clip,
                                                  device=dev, early_stop=False, strokes=args.strokes))
            print(f"| {dev} | measured: one whole `{args.sketch}` sketch | | | {args.sketch} | {p['iterations']} | "
                  f"{p['seeds']} | {_minutes(whole)} | {whole * 1e3 / floor[(dev, 1)]:.0f}× |", flush=True)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _interpolate(points: list[tuple[int, float]], x: int) -> float:
    """Piecewise-linear value at ``x`` through (seeds, ms) points, extended at the ends."""
    if len(points) == 1:
        return points[0][1] * x / points[0][0]
    (x0, y0), (x1, y1) = next(((a, b) for a, b in zip(points, points[1:]) if x <= b[0]), points[-2:])
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)

if __name__ == "__main__":
    main()
