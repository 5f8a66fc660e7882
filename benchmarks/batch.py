"""Images per hour of ``clipasso batch``: one machine, through Ray, several sketches per device.

    python benchmarks/batch.py [--images 4] [--iterations 15] [--seeds 1] [--repeats 2]
                               [--clip random:RN101] [--saliency-clip random:ViT-B-32] [--device cpu]
                               [--configs local,ray:2,ray:1]

Each configuration runs the real command end to end, as a user would, on the same photos into a
fresh output folder, and is timed from start to exit: process start, imports, model loading, the
sketches, writing files. Configurations:

- ``local``: ``clipasso batch`` in one process, the photos one after the other.
- ``ray:C``: ``clipasso batch --ray --cpus-per-sketch C``: a local Ray started for the batch with
  every core of the machine, so ``cores / C`` workers. With C = all cores it has the parallelism
  of ``local`` and the difference is Ray's overhead (its start, one more process per worker,
  moving photos and results through its object store).
- ``ray-gpu:F``: ``--ray --gpus-per-sketch F`` (``1 / F`` sketches share each GPU).
- ``procs:K``: K ``clipasso batch`` processes on K slices of the photos at once (K sketches on one
  device, what ``--gpus-per-sketch 1/K`` amounts to without Ray).

``--ray-costs`` also measures what Ray adds, apart from the sketches (its start, a worker's start
with the models loaded, one photo's round trip through a worker that does nothing with it): the
end-to-end table cannot resolve a few seconds on a noisy machine, these parts can.

The sketches have a fixed cost (``--no-early-stop``; random towers of the real architectures cost
what the real weights cost). Configurations are interleaved ``--repeats`` times; the table gives
the fastest run (on a shared machine the steadiest estimate) and the spread of the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parent.parent


def make_photos(folder: Path, n: int) -> list[Path]:
    """``n`` different photos (skimage's, flipped for more)."""
    sources = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    paths = []
    for i in range(n):
        img = sources[i % len(sources)]
        if (i // len(sources)) % 2:
            img = np.ascontiguousarray(img[:, ::-1])
        path = folder / f"photo{i:03d}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def run(config: str, photos: list[Path], work: Path, common: list[str]) -> tuple[float, list[float]]:
    """Wall seconds of one configuration, and the seconds of each sketch from its reports."""
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    base = [sys.executable, "-m", "clipasso_engine", "batch"]
    kind, _, arg = config.partition(":")
    if kind == "procs":
        slices = [photos[i::int(arg)] for i in range(int(arg))]
        extra: list[str] = []
    else:
        slices = [photos]
        extra = {"local": [], "ray": ["--ray", "--cpus-per-sketch", arg or "1"],
                 "ray-gpu": ["--ray", "--gpus-per-sketch", arg or "1"]}[kind]
    outs = [Path(tempfile.mkdtemp(dir=work)) for _ in slices]
    started = time.perf_counter()
    procs = [subprocess.Popen([*base, *map(str, part), "-o", str(out), *common, *extra], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for part, out in zip(slices, outs)]
    errors = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - started
    seconds = []
    for p, err, out in zip(procs, errors, outs):
        if p.returncode != 0:
            raise SystemExit(f"{config} failed (exit {p.returncode}):\n{err[-3000:]}")
        images = json.loads((out / "batch.json").read_text())["images"]
        seconds += [e["seconds"] for e in images.values()]
    return wall, seconds


class _Echo:
    """A worker that loads the models like a batch worker, then hands each photo straight back."""

    def __init__(self, recipe) -> None:
        self.recipe = recipe

    def ready(self) -> None:
        from clipasso_engine.batch import warm_models

        warm_models(self.recipe)

    def run(self, name: str, data: bytes) -> bytes:
        return data


def ray_costs(photo: Path, args: argparse.Namespace) -> None:
    """Ray's fixed costs, each timed alone: start, a worker ready, a photo's round trip."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from clipasso_engine.batch import Recipe, warm_models
    from clipasso_engine.settings import SketchSettings

    recipe = Recipe(SketchSettings(clip=args.clip, saliency_clip=args.saliency_clip, device=args.device))
    t = time.perf_counter()
    warm_models(recipe)
    local_load = time.perf_counter() - t
    t = time.perf_counter()
    ray.init(address="local", include_dashboard=False, logging_level="WARNING")
    start = time.perf_counter() - t
    try:
        t = time.perf_counter()
        worker = ray.remote(_Echo).options(num_cpus=1).remote(recipe)
        ray.get(worker.ready.remote())
        ready = time.perf_counter() - t
        data = photo.read_bytes()
        trips = []
        for _ in range(20):
            t = time.perf_counter()
            ray.get(worker.run.remote("p", data))
            trips.append(time.perf_counter() - t)
    finally:
        ray.shutdown()
    print(f"\nRay's fixed costs ({args.clip} + {args.saliency_clip}):")
    print("| part | seconds |\n|---|---:|")
    print(f"| start a local Ray | {start:.2f} |")
    print(f"| one worker ready (process, imports, models) | {ready:.2f} |")
    print(f"| the same models loaded in this process (the local batch pays it too) | {local_load:.2f} |")
    print(f"| one photo ({len(data) / 1024:.0f} KiB) there and back, median of 20 | {statistics.median(trips):.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--clip", default="random:RN101")
    ap.add_argument("--saliency-clip", default="random:ViT-B-32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--configs", default=f"local,ray:{os.cpu_count()},ray:1")
    ap.add_argument("--ray-costs", action="store_true", help="also time Ray's fixed costs, part by part")
    args = ap.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    common = ["--clip", args.clip, "--saliency-clip", args.saliency_clip, "--device", args.device, "--preset", "fast",
              "--iterations", str(args.iterations), "--seeds", str(args.seeds), "--no-early-stop", "-q"]

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"{args.images} photos × {args.iterations} steps × {args.seeds} seed(s), {args.clip} + {args.saliency_clip}, "
          f"--device {args.device}; {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, {gpu}; "
          f"{args.repeats} interleaved runs each", flush=True)
    results: dict[str, list[tuple[float, list[float]]]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        photo_dir = work / "photos"
        photo_dir.mkdir()
        photos = make_photos(photo_dir, args.images)
        if args.ray_costs:
            ray_costs(photos[0], args)
        for r in range(args.repeats):
            for c in configs:
                wall, secs = run(c, photos, work, common)
                results[c].append((wall, secs))
                print(f"  run {r + 1} {c:10s} {wall:7.1f} s", flush=True)

    if not configs or not args.repeats:
        return
    base = min(w for w, _ in results[configs[0]])
    print(f"\n| configuration | wall s (best) | spread | images / hour | s per sketch (median) | vs {configs[0]} |")
    print("|---|---:|---:|---:|---:|---:|")
    for c in configs:
        walls = [w for w, _ in results[c]]
        best = min(walls)
        secs = [s for _, ss in results[c] for s in ss]
        print(f"| {c} | {best:.1f} | {100 * (max(walls) - best) / best:.0f} % | {3600 * args.images / best:.0f} | "
              f"{statistics.median(secs):.1f} | {100 * (best - base) / base:+.1f} % |")


if __name__ == "__main__":
    main()
