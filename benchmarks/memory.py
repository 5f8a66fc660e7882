"""Peak memory of a sketch, measured, next to the engine's estimate of it: prints a table.

    python benchmarks/memory.py [--clip random:RN101] [--devices cpu,cuda] [--steps 3]

Each configuration runs in a fresh process (peak RSS is a per-process high-water mark): the
models load, the photo's augmentation bank is encoded and ``--steps`` optimization steps run.
"peak RSS" is the process's whole resident memory (Python, torch, both CLIP models); on CUDA
"peak VRAM" is torch's peak allocation on the device. "estimate" is what the engine predicts
before a job starts (``clipasso_engine.memory.estimate_bytes``) and checks against the free
memory, refusing a job that would not fit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CONFIGS = {
    "fast (16 strokes × 1 seed)": {"preset": "fast", "strokes": 16},
    "standard (16 strokes × 3 seeds)": {"preset": "standard", "strokes": 16},
    "levels 4,8,16,32 × 3 seeds": {"preset": "standard", "levels": [4, 8, 16, 32]},
}

CHILD = r"""
import json, resource, sys, torch
from skimage import data
from clipasso_engine import SketchSettings, sketch
from clipasso_engine.memory import estimate_bytes
args = json.loads(sys.argv[1])
torch.set_num_threads(2)
s = SketchSettings(**args["settings"], iterations=args["steps"], early_stop=False, clip=args["clip"],
                   saliency_clip=args["saliency_clip"], device=args["device"])
sketch(data.astronaut(), s)
out = {"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "estimate": estimate_bytes(s, torch.device(args["device"]))}
if args["device"] == "cuda":
    out["vram"] = torch.cuda.max_memory_allocated()
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="random:RN101")
    ap.add_argument("--saliency-clip", default="random:ViT-B-32")
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    import torch

    devices = [d for d in args.devices.split(",") if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    print(f"{args.clip} + {args.saliency_clip}, {args.steps} steps, precision auto, astronaut photo")
    print("| device | configuration | images per step | peak RSS GiB | peak VRAM GiB | estimate GiB |")
    print("|---|---|---|---|---|---|")
    from clipasso_engine.settings import SketchSettings   # here only: the children's memory is measured

    for device in devices:
        for name, settings in CONFIGS.items():
            child = {"settings": settings, "steps": args.steps, "clip": args.clip, "saliency_clip": args.saliency_clip,
                     "device": device}
            proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(child)], capture_output=True, text=True)
            if proc.returncode:
                print(f"| {device} | {name} | | failed: {proc.stderr.strip().splitlines()[-1]} | | |", flush=True)
                continue
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            s = SketchSettings(**settings)
            images = len(s.stroke_counts) * s.seeds * (s.augmentations + 1)
            vram = f"{got['vram'] / 2**30:.2f}" if "vram" in got else "–"
            print(f"| {device} | {name} | {images} | {got['rss'] / 2**30:.2f} | {vram} | {got['estimate'] / 2**30:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
