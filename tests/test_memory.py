"""A sketch that cannot fit in the free memory is refused before it starts, with what to lower."""

from __future__ import annotations

import pytest
import torch
from skimage import data

from clipasso_engine import SketchSettings, sketch
from clipasso_engine.memory import PER_IMAGE, MemoryBudgetError, free_bytes, job_bytes

TINY = {"clip": "random:tiny-RN", "saliency_clip": "random:tiny-ViT", "device": "cpu", "preset": "fast"}


def test_a_job_beyond_the_free_memory_is_refused_before_any_step():
    free = free_bytes(torch.device("cpu"))
    if free is None:
        pytest.skip("this system does not tell its free memory")
    levels = list(range(1, 25))
    # 24 levels × 16 seeds × 17 images per step: far beyond any machine's memory
    assert job_bytes(24 * 16 * 17, 64, "bf16") > free
    steps = []
    with pytest.raises(MemoryBudgetError, match="fewer seeds, levels or augmentations") as err:
        sketch(data.chelsea(), SketchSettings(**TINY, levels=levels, seeds=16, augmentations=16, iterations=3),
               on_progress=lambda *a: steps.append(a))
    assert steps == []
    assert "GB free" in str(err.value) and "24 level(s) × 16 seed(s)" in str(err.value)


def test_a_usual_job_fits_and_the_estimate_grows_with_the_batch():
    result = sketch(data.chelsea(), SketchSettings(**TINY, levels=[2, 4], seeds=2, iterations=2))
    assert sorted(result.levels) == [2, 4]
    assert job_bytes(10, 64, "fp32") - job_bytes(5, 64, "fp32") == 5 * PER_IMAGE["fp32"]
    assert job_bytes(5, 64, "bf16") < job_bytes(5, 64, "fp32")


def test_a_bank_per_seed_is_counted_in_the_job_and_the_process_estimate():
    """With ``aug_streams="seed"`` each seed draws its own bank of views: both the refusal check
    (``job_bytes``) and the benchmark's whole-process estimate count one bank per seed."""
    from clipasso_engine.memory import PER_VIEW, estimate_bytes

    assert job_bytes(5, 64, "fp32", streams=3) - job_bytes(5, 64, "fp32") >= 2 * 64 * PER_VIEW
    cpu = torch.device("cpu")
    per_seed, per_run = (estimate_bytes(SketchSettings(**TINY, seeds=3, aug_bank=64, aug_streams=streams), cpu)
                         for streams in ("seed", "run"))
    assert per_seed - per_run == job_bytes(15, 64, "fp32", streams=3) - job_bytes(15, 64, "fp32")
    assert per_seed - per_run >= 2 * 64 * PER_VIEW
