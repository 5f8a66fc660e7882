"""Rasterizer speed and memory: prints a table (not a test).

    python benchmarks/raster.py [--runs 30] [--threads 2] [--sizes 224,512] [--strokes 4,8,16,32,64]

For each canvas size and stroke count: forward ms and forward+backward ms (median of ``--runs``),
peak memory of one forward+backward, and pixels evaluated per touched pixel (how well culling
works). Strokes have realistic size: each spans 10-50 % of the canvas, width 3 px at 224 scaled
with the canvas. Runs on CPU with ``--threads`` threads, and on CUDA when present. Adds a diffvg
column when ``pydiffvg`` imports.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from clipasso_engine.raster import diffvg_available, render, torch_raster
from clipasso_engine.strokes import random_strokes


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_render(pts: torch.Tensor, widths: torch.Tensor, size: int, device: str, runs: int, backend: str) -> tuple[float, float]:
    """Median forward ms and forward+backward ms."""
    fwd, both = [], []
    for i in range(runs + 3):
        p = pts.detach().clone().requires_grad_()
        _sync(device)
        t0 = time.perf_counter()
        img = render(p, widths, size, size, backend=backend)
        _sync(device)
        t1 = time.perf_counter()
        img.square().sum().backward()
        _sync(device)
        t2 = time.perf_counter()
        if i >= 3:                                     # warm-up runs are not counted
            fwd.append(t1 - t0)
            both.append(t2 - t0)
    return statistics.median(fwd) * 1e3, statistics.median(both) * 1e3


def peak_memory_mb(pts: torch.Tensor, widths: torch.Tensor, size: int, device: str) -> float:
    """Memory of one forward+backward: the CUDA allocator's peak, or on CPU the bytes of all
    tensors autograd keeps for the backward pass plus the image (the CPU allocator has no
    peak counter)."""
    p = pts.detach().clone().requires_grad_()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        render(p, widths, size, size).square().sum().backward()
        return torch.cuda.max_memory_allocated() / 2**20
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        img = render(p, widths, size, size)
    img.square().sum().backward()
    return (sum(saved) + img.numel() * img.element_size()) / 2**20


def evaluated_per_touched(pts: torch.Tensor, widths: torch.Tensor, size: int) -> float:
    """(chord, tile) pixels evaluated / pixels with ink: the culling's overhead factor."""
    a, b, owner = torch_raster.flatten(pts.reshape(-1, 4, 2))
    tile = torch_raster.DEFAULT_TILE
    n = -(-size // tile)
    chord, _ = torch_raster.chord_tile_pairs(a, b, (widths.reshape(-1) / 2)[owner], tile, n, n, size, size)
    touched = (render(pts, widths, size, size) > 0).sum().item()
    return chord.numel() * tile * tile / max(1, touched)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="224,512")
    ap.add_argument("--strokes", default="4,8,16,32,64")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    backends = ["torch"] + (["diffvg"] if diffvg_available() else [])
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(n) for n in args.strokes.split(",")]

    print(f"torch {torch.__version__}, CPU threads {args.threads}, median of {args.runs} runs")
    head = "| device | canvas | strokes | fwd ms | fwd+bwd ms | peak MiB | evaluated/touched px |"
    if "diffvg" in backends:
        head += " diffvg fwd+bwd ms |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for device in devices:
        for size in sizes:
            for n in counts:
                gen = torch.Generator().manual_seed(n * 1000 + size)
                pts = random_strokes(1, n, size, size, gen).to(device)
                widths = torch.full((1, n), 3.0 * size / 224, device=device)
                fwd, both = time_render(pts, widths, size, device, args.runs, "torch")
                mem = peak_memory_mb(pts, widths, size, device)
                ratio = evaluated_per_touched(pts.cpu(), widths.cpu(), size)
                row = f"| {device} | {size}² | {n} | {fwd:.2f} | {both:.2f} | {mem:.1f} | {ratio:.1f} |"
                if "diffvg" in backends:
                    row += f" {time_render(pts, widths, size, device, args.runs, 'diffvg')[1]:.1f} |"
                print(row, flush=True)


if __name__ == "__main__":
    main()
