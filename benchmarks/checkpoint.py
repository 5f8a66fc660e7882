"""Cost of a job checkpoint vs the step it interrupts: prints a table.

    python benchmarks/checkpoint.py [--clip random:RN101] [--period 5] [--steps 2] [--dir .] [--threads 2]

For each batch shape ("fast": 1 seed × 16 strokes; "levels": 4,8,16,32 strokes × 3 seeds):

- save: what the engine does at a checkpoint (``JobQueue._checkpoint``): the loop's snapshot of
  its state (``LoopState``: clones of points, Adam moments, best so far, RNG state), serializing
  it, and two atomic writes (``checkpoint.pt`` and ``state.json``: temp file, fsync, rename, fsync
  of the folder) into a job folder under ``--dir`` (a real disk: fsync is the main cost; /tmp may
  be a RAM disk). Median of 20.
- step: one optimization step with the CLIP model on the CPU (median of ``--steps``, after a
  warm-up), 4 augmentations, as a job runs it. Random weights cost what real ones cost.
- overhead: a checkpoint every ``--period`` seconds costs save / (step × steps between
  checkpoints) of the run; "every step" is the worst case (``--checkpoint-seconds 0``).
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from clipasso_engine.clip_models import get_clip
from clipasso_engine.loss import ClipassoLoss
from clipasso_engine.optimize import Group, LoopState, optimize
from clipasso_engine.server.store import JobStore
from clipasso_engine.strokes import random_strokes

SHAPES = {"fast (1 × 16)": ([16], 1), "levels (4,8,16,32 × 3)": ([4, 8, 16, 32], 3)}
AUGS = 4


def groups_of(levels: list[int], seeds: int) -> list[Group]:
    gen = torch.Generator().manual_seed(0)
    return [Group(n, s, pts, torch.full((n,), 3.0), torch.zeros(n, dtype=torch.bool))
            for n in levels for s, pts in zip(range(seeds), random_strokes(seeds, n, 224, 224, gen))]


def run(clip_spec: str, levels: list[int], seeds: int, steps: int) -> tuple[list[float], LoopState]:
    """Seconds of each step after the first, and the loop's state at its last step."""
    clip = get_clip(clip_spec, torch.device("cpu"))
    loss_fn = ClipassoLoss(clip, {"layer2": 1.0, "layer3": 1.0}, 0.1, "fp32")
    stamps: list[float] = []
    states: list[LoopState] = []
    photo = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    optimize(photo, groups_of(levels, seeds), loss_fn, iterations=steps + 1, augmentations=AUGS, aug_bank=64,
             eval_every=10, lr=1.0, early_stop=False, patience=1, min_improvement=0.0, seed=0, main_level=max(levels),
             on_progress=lambda *_: stamps.append(time.perf_counter()), on_checkpoint=states.append,
             checkpoint_seconds=0)
    return [b - a for a, b in zip(stamps, stamps[1:])], states[-1]


def save_ms(state: LoopState, store: JobStore, job_id: str, repeats: int = 20) -> tuple[float, int]:
    """Median ms of snapshot + serialize + both atomic writes; bytes of the checkpoint file."""
    record = {"state": "running", "created": time.time(), "started": time.time(), "finished": None,
              "iteration": state.iteration, "loss": 0.1, "error": None, "cached": False, "resumed_from": None}
    times, size = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        snapshot = LoopState(                        # what the loop clones at a checkpoint
            iteration=state.iteration, points=state.points.clone(), adam=_clone(state.adam),
            best_points=state.best_points.clone(), best_loss=state.best_loss.clone(),
            ref_loss=state.ref_loss.clone(), stale=state.stale.clone(),
            history=[dict(h) for h in state.history], rng=state.rng.clone())
        data = snapshot.to_bytes()
        store.write_checkpoint(job_id, data)
        store.write_state(job_id, record)
        times.append(time.perf_counter() - t0)
        size = len(data)
    return statistics.median(times) * 1e3, size


def _clone(adam: dict) -> dict:
    return {"state": {k: {n: v.clone() for n, v in s.items()} for k, s in adam["state"].items()},
            "param_groups": [dict(g) for g in adam["param_groups"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="random:RN101")
    ap.add_argument("--period", type=float, default=5.0, help="seconds between checkpoints (the engine's default)")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per shape")
    ap.add_argument("--dir", default=".", help="where the job folder goes (a real disk)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    folder = Path(tempfile.mkdtemp(prefix="checkpoint-bench-", dir=args.dir))
    try:
        store, job_id = JobStore(folder), "0" * 32
        store.create(job_id, {"bench": True}, {"state": "queued"})
        print(f"{args.clip} on the CPU ({torch.get_num_threads()} threads), job folder in {folder.parent.resolve()}, "
              f"checkpoint every {args.period:g} s\n")
        print(f"{'batch':<24}{'groups':>7}{'ckpt bytes':>12}{'save ms':>9}{'step ms':>10}"
              f"{'every ' + format(args.period, 'g') + ' s':>12}{'every step':>12}")
        for name, (levels, seeds) in SHAPES.items():
            steps, state = run(args.clip, levels, seeds, args.steps)
            step = statistics.median(steps) * 1e3
            ms, size = save_ms(state, store, job_id)
            per = math.ceil(args.period * 1e3 / step)        # steps between two checkpoints
            print(f"{name:<24}{len(levels) * seeds:>7}{size:>12,}{ms:>9.2f}{step:>10.0f}"
                  f"{100 * ms / (per * step):>11.3f}%{100 * ms / step:>11.2f}%")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
